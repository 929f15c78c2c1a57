/* The agent console: log in, presence, the queue, several conversations open at once (each a
 * tab with the handoff summary above the full transcript), live chat with canned replies
 * (/shortcut), knowledge articles and internal notes; claim, resolve, transfer, return to the
 * bot; a sound and a flashing title when a conversation is handed off. */
'use strict';

(function () {
  var h = kefu.h;
  var TOKEN_KEY = 'kefu-agent-token';
  var token = sessionStorage.getItem(TOKEN_KEY);
  var call = kefu.api(function () { return token; });
  var photos = kefuMd.images('/api/v1', function () { return token; });
  var me = null;
  var canned = [];
  var agents = [];
  var views = {}; // conversation id → view
  var current = null;
  var ws = null, attempt = 0;
  var audio = null;
  var baseTitle = document.title;
  var flashTimer = null;
  var $ = function (id) { return document.getElementById(id); };

  var REASONS = { requested: '访客要求转人工', complaint: '投诉', repeated_misses: '机器人多次未能回答', low_confidence: '机器人把握不足', slot_failed: '信息收集失败' };
  var STATES = { bot: '机器人', clarifying: '澄清中', collecting: '收集信息', leaving_message: '留言', queued: '排队中', with_agent: '人工服务中', closed: '已关闭' };

  $('login').addEventListener('submit', function (e) {
    e.preventDefault();
    unlockSound();
    $('login-error').textContent = '';
    call('POST', '/agent/login', { id: $('login-id').value.trim(), password: $('login-password').value }).then(function (r) {
      token = r.token;
      sessionStorage.setItem(TOKEN_KEY, token);
      start();
    }, function (err) { $('login-error').textContent = '登录失败：' + err.message; });
  });
  $('logout').addEventListener('click', function () {
    call('POST', '/agent/logout').then(null, function () {}).then(function () {
      sessionStorage.removeItem(TOKEN_KEY);
      location.reload();
    });
  });
  $('status').addEventListener('change', function () {
    call('POST', '/agent/status', { status: $('status').value }).then(function (a) {
      me = a; showMe(); kefu.toast(a.status === 'online' ? '已上线，可以接待访客' : '已设为离开');
    }, function (err) { kefu.toast('状态切换失败：' + err.message, true); });
  });
  document.addEventListener('click', stopFlash);
  // Browsers allow sound only after a user gesture: any click (also after a reload, when no
  // login click happened) unlocks it.
  document.addEventListener('click', unlockSound);
  document.addEventListener('keydown', stopFlash);
  // Input in the console tells the server the agent is here (idle agents go away); at most
  // one notice every 15 s.
  var lastActive = 0;
  ['keydown', 'pointerdown', 'mousemove'].forEach(function (t) {
    document.addEventListener(t, function () {
      var now = Date.now();
      if (ws && ws.readyState === 1 && now - lastActive > 15000) { lastActive = now; ws.send(JSON.stringify({ type: 'active' })); }
    }, { passive: true });
  });

  function start() {
    Promise.all([call('GET', '/agent/me'), call('GET', '/agent/canned'), call('GET', '/agent/agents')]).then(function (r) {
      me = r[0]; canned = r[1]; agents = r[2];
      $('login').hidden = true;
      $('app').hidden = false;
      $('logout').hidden = false;
      $('status-box').hidden = false;
      $('history-toggle').hidden = false;
      document.dispatchEvent(new CustomEvent('kefu-agent-event', { detail: { type: 'ready' } }));
      showMe();
      if (window.kefuSupervision) kefuSupervision.start({ call: call, me: function () { return me; }, open: open, reload: reload });
      connect();
      refresh();
    }, function (err) {
      if (err.status === 401) { sessionStorage.removeItem(TOKEN_KEY); token = null; }
      $('login-error').textContent = err.status === 401 ? '登录已过期，请重新登录' : '加载失败：' + err.message;
    });
  }
  function showMe() {
    $('me').textContent = me.name + '（' + me.id + '）';
    $('status').value = me.status;
  }

  // ---- live events ---------------------------------------------------------------------
  function connect() {
    var sock = new WebSocket(location.origin.replace(/^http/, 'ws') + '/api/v1/agent/ws?token=' + encodeURIComponent(token));
    ws = sock;
    sock.onopen = function () { attempt = 0; refresh(); };
    sock.onmessage = function (ev) {
      var e; try { e = JSON.parse(ev.data); } catch (x) { return; }
      // Other pages of the console (tickets.js) follow the same socket.
      document.dispatchEvent(new CustomEvent('kefu-agent-event', { detail: e }));
      if (window.kefuSupervision) kefuSupervision.event(e);
      if (e.type === 'handoff') { alertHandoff(e.handoff); refresh(); }
      else if (e.type === 'message') { var v = views[e.conversation]; if (v) { append(v, e.message); if (v !== current) v.tab.classList.add('unread'); } }
      else if (e.type === 'changed') { refresh(); if (views[e.conversation]) reload(views[e.conversation]); }
      else if (e.type === 'typing') { if (views[e.conversation]) typing(views[e.conversation]); }
      else if (e.type === 'presence') { if (me && e.agent === me.id) { me.status = e.status; $('status').value = e.status; if (e.status === 'away') kefu.toast('您已离开（长时间未操作或控制台已关闭）'); } }
      else if (e.type === 'resync') { refresh(); Object.keys(views).forEach(function (id) { reload(views[id]); }); }
    };
    sock.onclose = function () {
      if (ws === sock) ws = null;
      if (!token) return;
      // The server closes the socket when the session ends (logout elsewhere, a password
      // reset, a disabled account): a refresh finds out (401 shows the login again).
      refresh();
      setTimeout(connect, Math.min(30000, 500 * Math.pow(2, attempt++)));
    };
  }

  function unlockSound() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === 'suspended') audio.resume();
    } catch (e) { audio = null; }
  }
  function beep() {
    if (!audio) return;
    [0, 0.18].forEach(function (at) {
      var o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880; o.connect(g); g.connect(audio.destination);
      g.gain.setValueAtTime(0.2, audio.currentTime + at);
      g.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + at + 0.15);
      o.start(audio.currentTime + at); o.stop(audio.currentTime + at + 0.16);
    });
  }
  function alertHandoff(hf) {
    beep();
    document.body.setAttribute('data-alerts', String(Number(document.body.getAttribute('data-alerts') || 0) + 1));
    var on = false, n = 0;
    clearInterval(flashTimer);
    flashTimer = setInterval(function () {
      on = !on;
      document.title = on ? '【新转人工】' + (hf.visitor.name || '访客') + ' · ' + baseTitle : baseTitle;
      if (++n > 30) stopFlash();
    }, 700);
    document.title = '【新转人工】' + (hf.visitor.name || '访客') + ' · ' + baseTitle;
  }
  function stopFlash() {
    if (!flashTimer) return;
    clearInterval(flashTimer); flashTimer = null; document.title = baseTitle;
  }

  // ---- lists ---------------------------------------------------------------------------
  var refreshing = null;
  function refresh() {
    if (refreshing) return refreshing;
    refreshing = Promise.all([call('GET', '/agent/queue'), call('GET', '/agent/conversations')]).then(function (r) {
      refreshing = null;
      drawQueue(r[0]); drawMine(r[1]);
    }, function (err) { refreshing = null; if (err.status === 401) location.reload(); });
    return refreshing;
  }
  function who(hf) {
    var v = hf.visitor || {};
    return (v.name || '访客') + (v.user_id ? '（' + v.user_id + (v.verified ? ' ✓' : '') + '）' : '') + ' · ' + hf.conversation.slice(0, 6);
  }
  function drawQueue(list) {
    var ul = $('queue');
    ul.textContent = '';
    $('queue-count').textContent = String(list.length);
    list.forEach(function (q) {
      var waiting = h('span', { class: 'wait', 'data-since': String(Date.now() - q.waiting_ms), text: '已等待 ' + kefu.duration(q.waiting_ms) });
      ul.appendChild(h('li', {}, [h('button', { type: 'button', class: 'item', 'data-conversation': q.conversation, onclick: function () { open(q.conversation); } }, [
        h('span', { class: 'line' }, [h('strong', { text: who(q) }), q.priority === 'high' ? h('span', { class: 'tag high', text: '高优先' }) : null]),
        h('span', { class: 'line muted', text: (REASONS[q.reason] || q.reason) + ' · 第 ' + q.position + ' 位 · ' + channel(q.visitor.channel) }),
        waiting
      ])]));
    });
    if (!list.length) ul.appendChild(h('li', { class: 'muted', text: '暂无排队' }));
  }
  function drawMine(list) {
    var ul = $('mine');
    ul.textContent = '';
    list.forEach(function (hf) {
      ul.appendChild(h('li', {}, [h('button', { type: 'button', class: 'item', 'data-conversation': hf.conversation, onclick: function () { open(hf.conversation); } }, [
        h('strong', { text: who(hf) }), h('span', { class: 'line muted', text: REASONS[hf.reason] || hf.reason })
      ])]));
    });
    if (!list.length) ul.appendChild(h('li', { class: 'muted', text: '暂无' }));
  }
  setInterval(function () {
    document.querySelectorAll('.wait[data-since]').forEach(function (e) {
      e.textContent = '已等待 ' + kefu.duration(Date.now() - Number(e.getAttribute('data-since')));
    });
  }, 1000);
  function channel(c) { return { web: '网页', app: 'App', wechat_mp: '微信公众号', wechat_mini: '微信小程序' }[c] || c || '未知'; }

  // ---- one open conversation -----------------------------------------------------------
  function open(id) {
    if (views[id]) { select(views[id]); return; }
    call('GET', '/agent/conversations/' + encodeURIComponent(id)).then(function (data) {
      if (views[id]) { select(views[id]); return; }
      var v = build(id);
      views[id] = v;
      update(v, data);
      select(v);
    }, function (err) { kefu.toast('打开会话失败：' + err.message, true); });
  }
  function reload(v) {
    return call('GET', '/agent/conversations/' + encodeURIComponent(v.id)).then(function (data) { update(v, data); }, function () {});
  }
  function select(v) {
    current = v;
    Object.keys(views).forEach(function (id) {
      var o = views[id];
      o.el.hidden = o !== v;
      o.tab.setAttribute('aria-selected', String(o === v));
    });
    v.tab.classList.remove('unread');
    $('empty').hidden = true;
    // The summary card comes first: keep it in view rather than scrolling to the input.
    $('views').scrollTop = 0;
    v.input.focus({ preventScroll: true });
  }
  function closeView(v) {
    v.el.remove(); v.tab.remove(); delete views[v.id];
    var ids = Object.keys(views);
    if (ids.length) select(views[ids[0]]); else { current = null; $('empty').hidden = false; }
  }

  function build(id) {
    var v = { id: id, seen: {}, composing: false, lastTyping: 0, matches: [], active: 0 };
    v.tab = h('button', { type: 'button', role: 'tab', class: 'tab', 'data-conversation': id, onclick: function () { select(v); } }, [
      v.tabLabel = h('span', { text: '会话 ' + id.slice(0, 6) }),
      h('span', { class: 'x', role: 'button', 'aria-label': '关闭标签', text: '×', onclick: function (e) { e.stopPropagation(); closeView(v); } })
    ]);
    $('tabs').appendChild(v.tab);
    v.actions = h('div', { class: 'actions' });
    v.summary = h('section', { class: 'summary', 'aria-label': '转人工摘要' });
    v.log = h('ol', { class: 'transcript', role: 'log', 'aria-live': 'polite', 'aria-label': '对话记录' });
    v.typing = h('p', { class: 'typing muted', text: '访客正在输入…', hidden: true });
    v.input = h('textarea', { class: 'compose', rows: '3', 'aria-label': '回复内容（输入 / 使用快捷回复）', placeholder: '输入回复，Enter 发送，Shift+Enter 换行；输入 / 使用快捷回复' });
    v.suggest = h('ul', { class: 'suggest', role: 'listbox', 'aria-label': '快捷回复', hidden: true });
    v.note = h('input', { type: 'checkbox', class: 'note-toggle' });
    v.send = h('button', { type: 'button', class: 'primary send', text: '发送', onclick: function () { submit(v); } });
    v.file = h('input', { type: 'file', accept: 'image/jpeg,image/png,image/webp', hidden: true, onchange: function () {
      Array.prototype.forEach.call(v.file.files, function (f) { sendImage(v, f); });
      v.file.value = '';
    } });
    v.pic = h('button', { type: 'button', class: 'pic', text: '发送图片', onclick: function () { v.file.click(); } });
    v.input.addEventListener('paste', function (e) {
      var files = Array.prototype.slice.call((e.clipboardData && e.clipboardData.files) || []);
      if (!files.length) return;
      e.preventDefault();
      files.forEach(function (f) { sendImage(v, f); });
    });
    v.search = h('input', { type: 'search', class: 'kb-q', 'aria-label': '搜索知识库', placeholder: '搜索知识库，插入答案' });
    v.results = h('ul', { class: 'kb-results' });
    v.search.addEventListener('keydown', function (e) { if (e.key === 'Enter' && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); searchKb(v); } });
    v.input.addEventListener('compositionstart', function () { v.composing = true; });
    v.input.addEventListener('compositionend', function () { v.composing = false; });
    v.input.addEventListener('input', function () { suggest(v); sendTyping(v); });
    v.input.addEventListener('keydown', function (e) {
      if (e.isComposing || v.composing || e.keyCode === 229) return;
      var open = !v.suggest.hidden && v.matches.length;
      if (open && (e.key === 'Tab' || e.key === 'Enter')) { e.preventDefault(); pick(v, v.matches[v.active]); return; }
      if (open && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) { e.preventDefault(); v.active = (v.active + (e.key === 'ArrowDown' ? 1 : v.matches.length - 1)) % v.matches.length; drawSuggest(v); return; }
      if (e.key === 'Escape') { v.suggest.hidden = true; return; }
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); submit(v); }
    });
    v.el = h('article', { class: 'view', role: 'tabpanel', 'data-conversation': id }, [
      v.actions, v.summary,
      h('h3', { text: '完整对话（含机器人消息与内部备注）' }), v.log, v.typing,
      h('div', { class: 'composer' }, [
        v.suggest, v.input,
        h('div', { class: 'row' }, [h('label', { class: 'note-label' }, [v.note, ' 内部备注（访客看不到）']), v.pic, v.file, v.send])
      ]),
      h('details', { class: 'kb' }, [h('summary', { text: '插入知识库文章' }), h('div', { class: 'row' }, [v.search, h('button', { type: 'button', text: '搜索', onclick: function () { searchKb(v); } })]), v.results])
    ]);
    $('views').appendChild(v.el);
    return v;
  }

  function update(v, data) {
    v.data = data;
    var conv = data.conversation, hf = data.handoff;
    v.tabLabel.textContent = ((conv.visitor && conv.visitor.name) || '访客') + ' ' + conv.id.slice(0, 6);
    drawActions(v);
    drawSummary(v);
    data.messages.forEach(function (m) { append(v, m); });
    var mine = conv.state.kind === 'with_agent' && conv.state.agent === me.id;
    v.input.disabled = v.send.disabled = !mine && !(hf && hf.status === 'queued');
    v.el.setAttribute('data-state', conv.state.kind);
  }

  function drawActions(v) {
    var conv = v.data.conversation, hf = v.data.handoff;
    var mine = conv.state.kind === 'with_agent' && conv.state.agent === me.id;
    v.actions.textContent = '';
    v.actions.appendChild(h('span', { class: 'state', text: '状态：' + (STATES[conv.state.kind] || conv.state.kind) + (conv.state.agent ? '（' + conv.state.agent + '）' : '') }));
    v.actions.appendChild(h('button', { type: 'button', text: '建工单', onclick: function () {
      var first = (v.data.messages || []).filter(function (m) { return m.from.kind === 'visitor'; })[0];
      document.dispatchEvent(new CustomEvent('kefu-new-ticket', { detail: { conversation: conv.id, message: first ? first.text : '' } }));
    } }));
    if (hf && hf.status === 'queued') v.actions.appendChild(h('button', { type: 'button', class: 'primary', text: '认领', onclick: function () { act(v, 'claim', '已认领'); } }));
    if (mine) {
      v.actions.appendChild(h('button', { type: 'button', text: '解决', onclick: function () { act(v, 'resolve', '已解决，已邀请访客评价'); } }));
      var sel = h('select', { 'aria-label': '转接给' });
      agents.filter(function (a) { return a.id !== me.id; }).forEach(function (a) { sel.appendChild(h('option', { value: a.id, text: a.name + (a.status === 'online' ? '' : '（离开）') })); });
      if (sel.options.length) v.actions.appendChild(h('span', { class: 'group' }, [sel, h('button', { type: 'button', text: '转接', onclick: function () { act(v, 'transfer', '已转接', { to: sel.value }); } })]));
      v.actions.appendChild(h('button', { type: 'button', text: '退回机器人', onclick: function () { act(v, 'return', '已退回机器人'); } }));
    }
    if (window.kefuSupervision) kefuSupervision.actions(v);
  }

  function drawSummary(v) {
    var hf = v.data.handoff, conv = v.data.conversation;
    var s = v.summary;
    s.textContent = '';
    s.appendChild(h('h3', { text: '转人工摘要' }));
    if (!hf) { s.appendChild(h('p', { class: 'muted', text: '这个会话没有转人工记录。' })); return; }
    var vis = hf.visitor || conv.visitor || {};
    var dl = h('dl');
    function row(k, val) { if (val === null || val === undefined || val === '') return; dl.appendChild(h('dt', { text: k })); dl.appendChild(typeof val === 'string' ? h('dd', { text: val }) : h('dd', {}, [val])); }
    row('原因', (REASONS[hf.reason] || hf.reason) + (hf.detail ? ' — ' + hf.detail : ''));
    row('优先级', hf.priority === 'high' ? '高' : '普通');
    row('意图', hf.intent || '（无）');
    var slots = Object.keys(hf.slots || {});
    row('已收集信息', slots.length ? slots.map(function (k) { return k + '：' + hf.slots[k]; }).join('；') : '（无）');
    row('渠道', channel(vis.channel));
    row('访客', (vis.name || '匿名访客') + (vis.user_id ? '，用户 ' + vis.user_id + (vis.verified ? '（已验证）' : '') : ''));
    if (vis.page) row('来源页面', vis.page);
    if (v.data.waiting_ms !== null && v.data.waiting_ms !== undefined && hf.status === 'queued') row('已等待', kefu.duration(v.data.waiting_ms));
    s.appendChild(dl);
    if (hf.candidates && hf.candidates.length) {
      var ol = h('ol', { class: 'candidates', 'aria-label': '机器人的候选答案' });
      hf.candidates.forEach(function (c) {
        var pct = Math.round(c.confidence * 100);
        var bar = h('span', { class: 'bar' }, [h('span', {})]);
        bar.firstChild.style.width = pct + '%';
        ol.appendChild(h('li', {}, [h('span', { class: 'title', text: c.title }), bar, h('span', { class: 'pct', text: pct + '%' })]));
      });
      s.appendChild(h('h4', { text: '机器人的候选答案（置信度）' }));
      s.appendChild(ol);
    }
  }

  var SENDER = { visitor: '访客', bot: '机器人', system: '系统' };
  var BOT_KINDS = { answer: '回答', clarify: '澄清', none: '未答', intent: '意图', prompt: '追问', handoff: '转人工', ticket: '留言', rating: '评价' };
  function append(v, m) {
    if (v.seen[m.seq]) return;
    v.seen[m.seq] = true;
    var kind = m.from.kind;
    var label = m.internal ? '内部备注 · ' + (m.from.name || '') : kind === 'agent' ? '客服 ' + m.from.name : SENDER[kind] || kind;
    if (kind === 'bot' && m.bot) label += ' · ' + (BOT_KINDS[m.bot.kind] || m.bot.kind) + (m.bot.confidence !== undefined ? ' ' + Math.round(m.bot.confidence * 100) + '%' : '');
    var body = m.image ? photos.img('/agent/conversations/' + encodeURIComponent(v.id) + '/images/' + m.image.hash, m) :
      kind === 'visitor' ? h('div', { class: 'text', text: m.text }) : kefu.markdown(m.text);
    var li = h('li', { class: 'm ' + kind + (m.internal ? ' note' : ''), 'data-seq': String(m.seq) }, [
      h('span', { class: 'who', text: label + ' · ' + kefu.clock(m.at_ms) }), body
    ]);
    // Keep the transcript in sequence order even when a live event overtakes a reload.
    var after = null;
    for (var i = v.log.children.length - 1; i >= 0; i--) {
      if (Number(v.log.children[i].getAttribute('data-seq')) < m.seq) { after = v.log.children[i]; break; }
    }
    v.log.insertBefore(li, after ? after.nextSibling : v.log.firstChild);
    v.typing.hidden = true;
    v.log.scrollTop = v.log.scrollHeight;
  }
  function typing(v) {
    v.typing.hidden = false;
    clearTimeout(v.typingTimer);
    v.typingTimer = setTimeout(function () { v.typing.hidden = true; }, 4000);
  }
  function sendTyping(v) {
    var now = Date.now();
    if (ws && ws.readyState === 1 && !v.note.checked && now - v.lastTyping > 3000 && v.input.value && v.input.value[0] !== '/') {
      v.lastTyping = now;
      ws.send(JSON.stringify({ type: 'typing', conversation: v.id }));
    }
  }

  function act(v, what, done, body) {
    call('POST', '/agent/conversations/' + encodeURIComponent(v.id) + '/' + what, body === undefined ? undefined : body).then(function (r) {
      kefu.toast(done);
      if (r && r.conversation) update(v, r); else reload(v);
      refresh();
    }, function (err) { kefu.toast('操作失败：' + err.message, true); });
  }

  function submit(v) {
    var text = v.input.value.trim();
    if (!text) return;
    var note = v.note.checked;
    v.send.disabled = true;
    call('POST', '/agent/conversations/' + encodeURIComponent(v.id) + (note ? '/notes' : '/messages'), { text: text }).then(function (m) {
      v.send.disabled = false;
      v.input.value = '';
      v.suggest.hidden = true;
      append(v, m);
      v.input.focus();
    }, function (err) { v.send.disabled = false; kefu.toast('发送失败：' + err.message, true); });
  }

  function sendImage(v, file) {
    v.pic.disabled = true;
    photos.upload('/agent/conversations/' + encodeURIComponent(v.id) + '/images', file).then(function (m) {
      v.pic.disabled = false;
      append(v, m);
    }, function (err) { v.pic.disabled = false; kefu.toast('图片发送失败：' + err.message, true); });
  }

  // ---- canned replies: "/hi" + Tab or Enter ---------------------------------------------
  function suggest(v) {
    var m = /^\/([\w-]*)$/.exec(v.input.value);
    v.matches = m ? canned.filter(function (c) { return c.shortcut.toLowerCase().indexOf(m[1].toLowerCase()) === 0; }) : [];
    v.active = 0;
    drawSuggest(v);
  }
  function drawSuggest(v) {
    v.suggest.textContent = '';
    v.suggest.hidden = !v.matches.length;
    v.matches.forEach(function (c, i) {
      v.suggest.appendChild(h('li', { role: 'option', 'aria-selected': String(i === v.active), class: i === v.active ? 'active' : '', onmousedown: function (e) { e.preventDefault(); pick(v, c); } }, [
        h('strong', { text: '/' + c.shortcut }), ' ' + c.title + ' — ', h('span', { class: 'muted', text: c.text })
      ]));
    });
  }
  function pick(v, c) {
    v.input.value = c.text;
    v.suggest.hidden = true;
    v.matches = [];
    v.input.focus();
  }

  // ---- knowledge articles --------------------------------------------------------------
  function searchKb(v) {
    var q = v.search.value.trim();
    call('GET', '/agent/articles?q=' + encodeURIComponent(q)).then(function (r) {
      v.results.textContent = '';
      r.articles.forEach(function (a) {
        v.results.appendChild(h('li', {}, [
          h('span', { class: 'title', text: a.title }),
          a.confidence !== null ? h('span', { class: 'pct', text: Math.round(a.confidence * 100) + '%' }) : null,
          h('button', { type: 'button', text: '插入', 'aria-label': '插入文章：' + a.title, onclick: function () {
            v.input.value = (v.input.value ? v.input.value + '\n' : '') + a.answer;
            v.input.focus();
          } })
        ]));
      });
      if (!r.articles.length) v.results.appendChild(h('li', { class: 'muted', text: '没有找到相关文章' }));
    }, function (err) { kefu.toast('搜索失败：' + err.message, true); });
  }

  if (token) start();
})();
