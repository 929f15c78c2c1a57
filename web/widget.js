/* kefu chat widget: one self-contained script, embedded with
 *   <script src="https://KEFU_HOST/widget.js" data-title="在线客服" data-color="#e4393c"
 *           data-greeting="您好！" data-user-id="…" data-signature="…" async></script>
 * The UI lives in a Shadow DOM, so the host page's styles neither leak in nor out. Message text
 * is only ever put into the page with textContent (and a small Markdown subset that builds DOM
 * nodes): HTML in a message shows as text and never runs. */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || window.__kefuWidget) return;
  window.__kefuWidget = true;

  var base = new URL(script.src, location.href).origin;
  var api = base + '/api/v1';
  var ds = script.dataset;
  var opt = {
    title: ds.title || '在线客服',
    color: /^#[0-9a-fA-F]{3,8}$/.test(ds.color || '') ? ds.color : '#e4393c',
    greeting: ds.greeting || '您好！有什么可以帮您？',
    userId: ds.userId || null,
    signature: ds.signature || null,
    name: ds.name || null
  };
  // One conversation per kefu host (and per signed-in customer) in this browser.
  var KEY = 'kefu:' + base + (opt.userId ? ':' + opt.userId : '');
  var OPEN_KEY = KEY + ':open';

  var session = load(); // {id, token, rated: {seq: 1}}
  var lastSeq = 0;
  var seen = {}; // seq → true: a message is shown once, whatever the socket replays
  var pending = {}; // client_id → {el, text, sent}
  var outbox = []; // client_ids not yet acknowledged, resent after a reconnect (idempotent)
  var ws = null;
  var attempt = 0;
  var retryTimer = null;
  var composing = false;
  var state = { state: 'bot' };
  var unread = 0;
  var lastClarify = null;
  var typingTimer = null;
  var lastTypingSent = 0;
  var starting = null;

  function load() {
    try { return JSON.parse(localStorage.getItem(KEY)) || null; } catch (e) { return null; }
  }
  function save() {
    try { session ? localStorage.setItem(KEY, JSON.stringify(session)) : localStorage.removeItem(KEY); } catch (e) { /* private mode: the conversation lasts as long as the page */ }
  }
  function uid() {
    var a = new Uint8Array(12);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }

  // ---- DOM helpers ---------------------------------------------------------------------
  var h = kefuMd.h, markdown = kefuMd.markdown;

  // ---- the UI --------------------------------------------------------------------------
  var host = h('div', { id: 'kefu-widget' });
  var shadow = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
  var css = ':host{all:initial}*{box-sizing:border-box;font-family:-apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif}' +
    '.launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:60px;height:60px;border-radius:50%;border:0;background:var(--c);color:#fff;cursor:pointer;box-shadow:0 4px 16px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center}' +
    '.launcher:focus-visible,button:focus-visible,textarea:focus-visible,input:focus-visible{outline:3px solid #1a73e8;outline-offset:2px}' +
    '.badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;border-radius:10px;background:#fff;color:var(--c);font:bold 12px/20px sans-serif;text-align:center;padding:0 5px}' +
    '.panel{position:fixed;right:20px;bottom:92px;z-index:2147483001;width:370px;height:560px;max-height:calc(100vh - 110px);background:#fff;border-radius:12px;box-shadow:0 8px 32px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden;color:#222;font-size:14px}' +
    '.panel[hidden]{display:none}' +
    'header{background:var(--c);color:#fff;padding:12px 14px;display:flex;align-items:center;gap:8px}header h2{margin:0;font-size:16px;flex:1}header .sub{display:block;font-size:12px;font-weight:normal;opacity:.9}' +
    'header button{background:transparent;border:0;color:#fff;font-size:22px;cursor:pointer;width:32px;height:32px;border-radius:6px}' +
    '.log{flex:1;overflow-y:auto;padding:12px;background:#f5f6f8;display:flex;flex-direction:column;gap:8px}' +
    '.msg{max-width:82%;padding:8px 11px;border-radius:10px;line-height:1.55;word-wrap:break-word;overflow-wrap:anywhere;white-space:normal}' +
    '.visitor{align-self:flex-end;background:var(--c);color:#fff;border-bottom-right-radius:3px;white-space:pre-wrap}' +
    '.bot,.agent{align-self:flex-start;background:#fff;border:1px solid #e3e5e8;border-bottom-left-radius:3px}' +
    '.system{align-self:center;background:transparent;color:#777;font-size:12px;padding:2px}' +
    '.who{display:block;font-size:12px;color:#888;margin-bottom:2px}.msg.pending{opacity:.6}.msg.failed{background:#fdecea;color:#b3261e;border:1px solid #f5c2c0}' +
    '.md p{margin:0 0 6px}.md p:last-child{margin:0}.md ul,.md ol{margin:4px 0;padding-left:20px}.md code{background:#f0f0f0;padding:0 3px;border-radius:3px}.md a{color:#1a5fb4}' +
    '.opts{display:flex;flex-direction:column;gap:6px;margin-top:8px}.opts button,.fb button,.stars button,.form button{border:1px solid var(--c);color:var(--c);background:#fff;border-radius:16px;padding:5px 10px;cursor:pointer;font-size:13px;text-align:left}' +
    '.opts button:disabled,.fb button:disabled{opacity:.5;cursor:default}.fb{display:flex;gap:6px;align-items:center;margin-top:6px;font-size:12px;color:#888}.fb button{padding:2px 8px;font-size:12px}' +
    '.status{padding:6px 12px;font-size:12px;color:#555;background:#fff8e1;border-top:1px solid #f0e0a0}.status[hidden]{display:none}' +
    '.typing{align-self:flex-start;color:#888;font-size:12px}' +
    '.card{align-self:stretch;background:#fff;border:1px solid #e3e5e8;border-radius:10px;padding:10px}.card p{margin:0 0 8px}.stars{display:flex;gap:6px}.stars button{border-radius:6px;font-size:18px;padding:2px 8px}' +
    '.form{display:flex;flex-direction:column;gap:6px}.form input,.form textarea{border:1px solid #ccc;border-radius:6px;padding:6px;font-size:14px}' +
    'footer{border-top:1px solid #e3e5e8;padding:8px;display:flex;flex-direction:column;gap:6px;background:#fff}.row{display:flex;gap:6px;align-items:flex-end}' +
    'textarea.input{flex:1;resize:none;border:1px solid #ccc;border-radius:8px;padding:8px;font-size:14px;height:40px;max-height:120px}' +
    '.send{background:var(--c);color:#fff;border:0;border-radius:8px;padding:0 14px;height:40px;cursor:pointer;font-size:14px}' +
    '.human{align-self:flex-start;background:#fff;border:1px solid #ccc;border-radius:14px;padding:3px 10px;font-size:12px;cursor:pointer;color:#333}.human:disabled{cursor:default;color:#888}' +
    '.photo{display:block;max-width:100%;max-height:240px;height:auto;width:auto;border-radius:6px;background:#eee}.pic{background:#fff;color:var(--c);border:1px solid var(--c);border-radius:8px;height:40px;padding:0 10px;cursor:pointer;font-size:13px}.pic[hidden]{display:none}' +
    '.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}' +
    '@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100%;max-height:none;border-radius:0}.launcher{right:14px;bottom:14px}}';
  if (shadow.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    // A constructed sheet is not an inline <style>, so a host page's CSP does not block it.
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    shadow.appendChild(h('style', { text: css }));
  }
  host.style.setProperty('--c', opt.color);

  var badge = h('span', { class: 'badge', hidden: '' });
  var icon = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  icon.setAttribute('viewBox', '0 0 24 24'); icon.setAttribute('width', '28'); icon.setAttribute('height', '28'); icon.setAttribute('aria-hidden', 'true');
  var path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('d', 'M12 3C6.5 3 2 6.6 2 11c0 2.4 1.3 4.6 3.4 6.1L4.5 21l4.2-2.3c1 .3 2.1.4 3.3.4 5.5 0 10-3.6 10-8s-4.5-8-10-8z');
  icon.appendChild(path);
  var launcher = h('button', { class: 'launcher', type: 'button', 'aria-label': '打开' + opt.title, 'aria-expanded': 'false', 'aria-controls': 'kefu-panel', onclick: toggle }, [icon, badge]);
  var titleEl = h('h2', { id: 'kefu-title', text: opt.title });
  var subEl = h('span', { class: 'sub', text: '智能客服 · 随时为您解答' });
  titleEl.appendChild(subEl);
  var closeBtn = h('button', { type: 'button', 'aria-label': '关闭对话窗口', text: '×', onclick: function () { setOpen(false); } });
  var log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': '对话记录', tabindex: '0' });
  var typingEl = h('div', { class: 'typing', text: '对方正在输入…', hidden: '', 'aria-hidden': 'true' });
  var statusEl = h('div', { class: 'status', role: 'status', hidden: '' });
  var input = h('textarea', { class: 'input', rows: '1', placeholder: '请输入您的问题，Enter 发送', 'aria-label': '输入消息', maxlength: '2000' });
  var sendBtn = h('button', { class: 'send', type: 'button', text: '发送', onclick: function () { send(input.value); } });
  // Photos: pick a file, take one with a phone's camera (shown on touch screens), or paste.
  var fileInput = h('input', { type: 'file', accept: 'image/jpeg,image/png,image/webp,image/*', class: 'sr', tabindex: '-1', 'aria-hidden': 'true', onchange: function () { pickFiles(fileInput); } });
  var cameraInput = h('input', { type: 'file', accept: 'image/*', capture: 'environment', class: 'sr', tabindex: '-1', 'aria-hidden': 'true', onchange: function () { pickFiles(cameraInput); } });
  var picBtn = h('button', { class: 'pic', type: 'button', text: '图片', 'aria-label': '发送图片', onclick: function () { fileInput.click(); } });
  var camBtn = h('button', { class: 'pic', type: 'button', text: '拍照', 'aria-label': '拍照发送', onclick: function () { cameraInput.click(); } });
  camBtn.hidden = !(window.matchMedia && matchMedia('(pointer: coarse)').matches);
  var humanBtn = h('button', { class: 'human', type: 'button', text: '转人工', 'aria-label': '转人工客服', onclick: askHuman });
  var panel = h('div', { class: 'panel', id: 'kefu-panel', role: 'dialog', 'aria-labelledby': 'kefu-title', hidden: '' }, [
    h('header', {}, [titleEl, closeBtn]), log, statusEl,
    h('footer', {}, [humanBtn, h('div', { class: 'row' }, [picBtn, camBtn, input, sendBtn, fileInput, cameraInput])])
  ]);
  shadow.appendChild(launcher);
  shadow.appendChild(panel);
  log.appendChild(h('div', { class: 'msg bot' }, [h('span', { class: 'who', text: opt.title }), markdown(opt.greeting)]));

  // ---- input: Chinese input methods confirm candidates with Enter, which must not send ----
  input.addEventListener('compositionstart', function () { composing = true; });
  input.addEventListener('compositionend', function () { composing = false; });
  input.addEventListener('keydown', function (e) {
    if (e.key !== 'Enter' || e.shiftKey) return;
    if (e.isComposing || composing || e.keyCode === 229) return;
    e.preventDefault();
    send(input.value);
  });
  input.addEventListener('input', function () {
    var now = Date.now();
    if (ws && ws.readyState === 1 && now - lastTypingSent > 3000 && input.value) {
      lastTypingSent = now;
      ws.send(JSON.stringify({ type: 'typing' }));
    }
  });
  panel.addEventListener('keydown', function (e) { if (e.key === 'Escape') setOpen(false); });
  input.addEventListener('paste', function (e) {
    var files = [];
    var items = (e.clipboardData && e.clipboardData.files) || [];
    for (var i = 0; i < items.length; i++) files.push(items[i]);
    if (!files.length) return; // text pastes as text
    e.preventDefault();
    files.forEach(sendImage);
  });

  function toggle() { setOpen(panel.hidden); }
  function setOpen(open) {
    panel.hidden = !open;
    launcher.setAttribute('aria-expanded', String(open));
    launcher.setAttribute('aria-label', (open ? '关闭' : '打开') + opt.title);
    try { sessionStorage.setItem(OPEN_KEY, open ? '1' : ''); } catch (e) { /* ignore */ }
    if (open) {
      unread = 0; badge.hidden = true;
      ensure().then(connect, fail);
      input.focus();
      scroll();
    } else {
      launcher.focus();
    }
  }
  function scroll() { log.scrollTop = log.scrollHeight; }

  // ---- the conversation ----------------------------------------------------------------
  var call = kefuMd.request(api, function () { return session && session.token; });
  function ensure() {
    if (session) return Promise.resolve(session);
    if (!starting) {
      var body = { page: location.href.slice(0, 500) };
      if (opt.name) body.name = opt.name;
      if (opt.userId && opt.signature) { body.user_id = opt.userId; body.signature = opt.signature; }
      starting = call('POST', '/conversations', body).then(function (s) {
        session = { id: s.id, token: s.token, rated: {} };
        save();
        starting = null;
        return session;
      }, function (e) { starting = null; throw e; });
    }
    return starting;
  }
  function fail(e) { showStatus('连接失败：' + e.message + '，请稍后重试'); }

  function connect() {
    if (!session || (ws && ws.readyState <= 1)) return;
    clearTimeout(retryTimer);
    var url = api.replace(/^http/, 'ws') + '/conversations/' + encodeURIComponent(session.id) + '/ws?token=' + encodeURIComponent(session.token) + '&after=' + lastSeq;
    var sock = new WebSocket(url);
    var opened = false;
    ws = sock;
    sock.onopen = function () {
      opened = true; attempt = 0;
      // Resend whatever was not acknowledged: the same client_id is stored once.
      outbox.forEach(function (id) { var p = pending[id]; if (p) sock.send(JSON.stringify({ type: 'message', text: p.text, client_id: id })); });
    };
    sock.onmessage = function (ev) {
      var e; try { e = JSON.parse(ev.data); } catch (x) { return; }
      if (e.type === 'message') render(e.message);
      else if (e.type === 'state') setState(e);
      else if (e.type === 'typing') showTyping();
      else if (e.type === 'ack') ack(e.client_id, e.seq);
      else if (e.type === 'error') failed(e.client_id, e.error);
      else if (e.type === 'resync') history();
    };
    sock.onclose = function () {
      if (ws === sock) ws = null;
      if (!opened) {
        // Never opened: the token may be revoked or the conversation gone. Ask over HTTP,
        // which says why; 401 means start afresh instead of retrying forever.
        call('GET', '/conversations/' + encodeURIComponent(session.id)).then(retry, function (e) {
          if (e.status === 401 || e.status === 404) restart(); else retry();
        });
      } else retry();
    };
  }
  function retry() {
    // Exponential back-off with jitter: 0.5 s, 1 s, 2 s … at most 30 s.
    var delay = Math.min(30000, 500 * Math.pow(2, attempt++)) * (0.75 + Math.random() * 0.5);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }
  function restart() {
    session = null; save();
    lastSeq = 0; seen = {}; outbox = []; pending = {};
    ratingCard = ticketCard = lastClarify = null;
    while (log.children.length > 1) log.removeChild(log.lastChild);
    setState({ state: 'bot' });
    ensure().then(connect, fail);
  }
  function history() {
    call('GET', '/conversations/' + encodeURIComponent(session.id) + '/messages?after=' + lastSeq).then(function (v) {
      v.messages.forEach(render);
      setState(v);
    }, function () { /* the socket's own retry covers it */ });
  }

  function send(text) {
    text = (text || '').trim();
    if (!text) return;
    if (state.state === 'closed') { restart(); }
    input.value = '';
    var id = uid();
    var el = bubble('visitor', null, text);
    el.classList.add('pending');
    pending[id] = { el: el, text: text };
    outbox.push(id);
    ensure().then(function () {
      if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: 'message', text: text, client_id: id }));
      else connect();
    }, fail);
  }
  function pickFiles(el) {
    Array.prototype.forEach.call(el.files || [], sendImage);
    el.value = '';
  }
  var photos = kefuMd.images(api, function () { return session && session.token; });
  function photoPath(m) { return '/conversations/' + encodeURIComponent(session.id) + '/images/' + m.image.hash; }
  // A photo goes over HTTP (the socket carries text): shown pending at once, then as the
  // server's clean copy; refused, the bubble says why (the server's message).
  function sendImage(file) {
    if (state.state === 'closed') { restart(); }
    var id = uid();
    var el = bubble('visitor', null, '正在发送图片…');
    el.classList.add('pending');
    pending[id] = { el: el, image: true };
    ensure().then(function () {
      return photos.upload('/conversations/' + encodeURIComponent(session.id) + '/images?client_id=' + id, file);
    }).then(function (x) {
      render(x.message);
      x.replies.forEach(render);
      connect(); // state changes arrive on the socket (a first message opens it)
    }, function (e) {
      el.firstChild.textContent = '图片' + (file.name ? '「' + file.name + '」' : '');
      failed(id, { message: PHOTO_REFUSED[e.code] || e.message });
      el.setAttribute('title', e.message); // the server's own words, naming the problem
    });
  }
  var PHOTO_REFUSED = {
    not_an_image: '这个文件不是图片，只能发送 JPEG、PNG 或 WebP 格式的照片',
    too_large: '图片太大了，请压缩后再发送',
    image_too_big: '图片的尺寸太大了，请缩小后再发送'
  };
  function showPhoto(el, m) {
    el.textContent = '';
    el.appendChild(photos.img(photoPath(m), m));
  }
  function ack(id, seq) {
    var p = pending[id];
    outbox = outbox.filter(function (x) { return x !== id; });
    if (!p) return;
    p.el.classList.remove('pending');
    delete pending[id];
    if (seq) { seen[seq] = true; lastSeq = Math.max(lastSeq, seq); p.el.setAttribute('data-seq', seq); }
  }
  function failed(id, err) {
    var p = pending[id];
    if (!p) { showStatus((err && err.message) || '发送失败'); return; }
    outbox = outbox.filter(function (x) { return x !== id; });
    p.el.classList.remove('pending');
    p.el.classList.add('failed');
    p.el.setAttribute('title', '未发送：' + (err && err.message));
    p.el.appendChild(h('span', { class: 'who', text: '未发送：' + ((err && err.message) || '') }));
    delete pending[id];
  }
  function askHuman() {
    ensure().then(function () {
      return call('POST', '/conversations/' + encodeURIComponent(session.id) + '/handoff', { client_id: uid() });
    }).then(function (x) { if (x) connect(); }, fail);
    if (panel.hidden) setOpen(true);
  }

  function bubble(kind, who, text, md) {
    var el = h('div', { class: 'msg ' + kind });
    if (who) el.appendChild(h('span', { class: 'who', text: who }));
    if (md) el.appendChild(markdown(text)); else el.appendChild(document.createTextNode(text));
    log.insertBefore(el, typingEl.parentNode === log ? typingEl : null);
    scroll();
    return el;
  }

  function render(m) {
    if (!m || seen[m.seq]) { if (m) lastSeq = Math.max(lastSeq, m.seq); return; }
    seen[m.seq] = true;
    lastSeq = Math.max(lastSeq, m.seq);
    var from = m.from.kind;
    if (from === 'visitor') {
      var p = m.client_id && pending[m.client_id];
      if (p) {
        p.el.classList.remove('pending'); p.el.setAttribute('data-seq', m.seq); delete pending[m.client_id]; outbox = outbox.filter(function (x) { return x !== m.client_id; });
        if (m.image) showPhoto(p.el, m);
        return;
      }
      var mine = bubble('visitor', null, m.text);
      mine.setAttribute('data-seq', m.seq);
      if (m.image) showPhoto(mine, m);
      return;
    }
    if (from === 'system') { bubble('system', null, m.text).setAttribute('data-seq', m.seq); return; }
    var bot = m.bot || {};
    var choices = bot.kind === 'clarify' && bot.options && bot.options.length;
    // The stored text numbers the choices and asks for a number, for channels without
    // buttons (WeChat); here the buttons are the choices: the intro line and each choice once.
    var text = choices ? m.text.split('\n')[0] : m.text;
    var el = from === 'agent' ? bubble('agent', '客服 ' + m.from.name, m.text, true) : bubble('bot', opt.title, text, true);
    el.setAttribute('data-seq', m.seq);
    if (m.image) { el.removeChild(el.lastChild); el.appendChild(photos.img(photoPath(m), m)); }
    typingEl.hidden = true;
    if (choices) {
      if (lastClarify) lastClarify.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
      var opts = h('div', { class: 'opts', role: 'group', 'aria-label': '您是不是想问' });
      bot.options.forEach(function (o) {
        opts.appendChild(h('button', { type: 'button', text: o.question, onclick: function () { opts.querySelectorAll('button').forEach(function (b) { b.disabled = true; }); send(o.question); } }));
      });
      el.appendChild(opts);
      lastClarify = opts;
    }
    if (bot.kind === 'answer') el.appendChild(feedback(m.seq));
    if (panel.hidden && from !== 'visitor') { unread++; badge.textContent = String(unread); badge.hidden = false; }
  }

  function feedback(seq) {
    var box = h('div', { class: 'fb' });
    if (session.rated && session.rated[seq]) { box.textContent = '感谢您的反馈'; return box; }
    function vote(helpful) {
      box.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
      call('POST', '/conversations/' + encodeURIComponent(session.id) + '/feedback', { seq: seq, helpful: helpful }).then(function () {
        session.rated = session.rated || {}; session.rated[seq] = helpful ? 1 : -1; save();
        box.textContent = '感谢您的反馈';
      }, function (e) { box.textContent = '反馈失败：' + e.message; });
    }
    box.appendChild(document.createTextNode('这个回答有帮助吗？'));
    box.appendChild(h('button', { type: 'button', text: '有帮助', 'aria-label': '这个回答有帮助', onclick: function () { vote(true); } }));
    box.appendChild(h('button', { type: 'button', text: '没帮助', 'aria-label': '这个回答没有帮助', onclick: function () { vote(false); } }));
    return box;
  }

  function showTyping() {
    if (typingEl.parentNode !== log) log.appendChild(typingEl);
    typingEl.hidden = false;
    scroll();
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typingEl.hidden = true; }, 4000);
  }
  function showStatus(text) {
    statusEl.textContent = text || '';
    statusEl.hidden = !text;
    scroll(); // the status line shrinks the log: keep the last message in view
  }

  var ratingCard = null, ticketCard = null;
  function setState(s) {
    state = s;
    if (s.state === 'queued') {
      var ahead = Math.max(0, (s.queue_position || 1) - 1);
      // The server estimates from the queue's recent pace (position × time between the
      // last visitors taken); shown rounded up to whole minutes.
      var wait = s.estimated_wait_ms ? '，预计等待约 ' + Math.max(1, Math.ceil(s.estimated_wait_ms / 60000)) + ' 分钟' : '';
      showStatus('正在为您转接人工客服，您排在第 ' + (s.queue_position || 1) + ' 位（前面还有 ' + ahead + ' 位）' + wait);
    } else if (s.state === 'with_agent') {
      showStatus('');
    } else if (s.state === 'closed') {
      showStatus('对话已结束，发送消息将开始新的对话');
    } else showStatus('');
    subEl.textContent = s.state === 'with_agent' && s.agent ? '人工客服 ' + s.agent + ' 为您服务' :
      s.state === 'queued' ? '排队中…' : '智能客服 · 随时为您解答';
    // Always visible; while a human is coming or here it only says so.
    var human = s.state === 'queued' || s.state === 'with_agent';
    humanBtn.disabled = human;
    humanBtn.textContent = s.state === 'queued' ? '已转人工，排队中' : s.state === 'with_agent' ? '人工客服服务中' : '转人工';
    if (s.rating_requested && !ratingCard) ratingCard = rating();
    if (!s.rating_requested && ratingCard && !ratingCard.done) { ratingCard.remove(); ratingCard = null; }
    if (s.state === 'leaving_message' && !ticketCard) ticketCard = ticket();
    if (s.state !== 'leaving_message' && ticketCard) { if (!ticketCard.done) ticketCard.remove(); ticketCard = null; }
  }

  function rating() {
    var card = h('div', { class: 'card', role: 'group', 'aria-label': '服务评价' }, [h('p', { text: '本次服务已结束，请为我们的服务打分：' })]);
    var stars = h('div', { class: 'stars' });
    [1, 2, 3, 4, 5].forEach(function (n) {
      stars.appendChild(h('button', { type: 'button', text: n + '★', 'aria-label': n + ' 分', onclick: function () {
        stars.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
        call('POST', '/conversations/' + encodeURIComponent(session.id) + '/rating', { score: n }).then(function () {
          card.done = true;
          card.textContent = '感谢您的评价（' + n + ' 分）！';
        }, function (e) { card.appendChild(h('p', { text: '评价失败：' + e.message })); });
      } }));
    });
    card.appendChild(stars);
    log.appendChild(card);
    scroll();
    return card;
  }

  function ticket() {
    var contact = h('input', { type: 'text', 'aria-label': '联系方式（手机或邮箱）', placeholder: '手机或邮箱' });
    var text = h('textarea', { 'aria-label': '留言内容', placeholder: '请描述您的问题', rows: '3' });
    var card = h('div', { class: 'card form', role: 'form', 'aria-label': '留言' }, [
      h('p', { text: '现在没有客服在线，请留言，我们会尽快联系您：' }), contact, text,
      h('button', { type: 'button', text: '提交留言', onclick: function () {
        call('POST', '/conversations/' + encodeURIComponent(session.id) + '/ticket', { contact: contact.value, message: text.value }).then(function () {
          card.done = true;
          card.textContent = '留言已提交，我们会尽快联系您。';
        }, function (e) { showStatus('留言失败：' + e.message); });
      } })
    ]);
    log.appendChild(card);
    scroll();
    return card;
  }

  function mount() {
    document.body.appendChild(host);
    // A returning visitor: reconnect at once so replies that arrive while the panel is closed
    // show as unread; reopen the panel if it was open before a reload.
    var wasOpen = false;
    try { wasOpen = sessionStorage.getItem(OPEN_KEY) === '1'; } catch (e) { /* ignore */ }
    if (wasOpen) setOpen(true); else if (session) connect();
  }
  if (document.body) mount(); else document.addEventListener('DOMContentLoaded', mount);
})();
