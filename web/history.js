/* The agent console's history page: search past conversations (text, visitor, agent,
 * channel, dates, outcome), open one read-only, export the search as CSV. It shares the
 * console's session (the token agent.js keeps) and shows every text only as text. */
'use strict';

(function () {
  var h = kefu.h;
  var token = function () { return sessionStorage.getItem('kefu-agent-token'); };
  var call = kefu.api(token);
  var $ = function (id) { return document.getElementById(id); };
  var form = $('history-form');
  var body = $('history-table').querySelector('tbody');
  var next = null, shown = 0;
  var CHANNELS = { web: '网页', app: 'App', wechat_mp: '微信公众号', wechat_mini: '微信小程序' };
  var WHO = { visitor: '访客', bot: '机器人', system: '系统' };

  $('history-toggle').addEventListener('click', function () {
    var open = $('history').hidden;
    $('history').hidden = !open;
    $('app').hidden = open;
    this.setAttribute('aria-expanded', String(open));
    this.textContent = open ? '返回接待' : '历史会话';
    if (open && !shown) search();
  });

  function params(extra) {
    var p = new URLSearchParams();
    new FormData(form).forEach(function (v, k) { if (String(v).trim()) p.set(k, String(v).trim()); });
    Object.keys(extra || {}).forEach(function (k) { p.set(k, extra[k]); });
    return p.toString();
  }

  function when(ms) {
    var d = new Date(ms);
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return d.getFullYear() + '-' + two(d.getMonth() + 1) + '-' + two(d.getDate()) + ' ' + two(d.getHours()) + ':' + two(d.getMinutes());
  }

  function outcomes(s) {
    var out = [];
    if (s.bot_answered) out.push('机器人已回答');
    if (s.handed_off) out.push('转人工');
    if (s.ticket) out.push('留言');
    if (s.rating) out.push('评价 ' + s.rating + ' 分');
    return out.join('、') || '—';
  }

  function search(more) {
    $('history-error').textContent = '';
    var q = params(more && next ? { before: next } : {});
    call('GET', '/agent/history?' + q).then(function (page) {
      if (!more) { body.textContent = ''; shown = 0; }
      page.conversations.forEach(function (s) {
        var row = h('tr', { 'data-conversation': s.id, tabindex: '0' }, [
          h('td', { text: when(s.created_ms) }),
          h('td', { text: CHANNELS[s.channel] || s.channel }),
          h('td', { text: s.visitor_name || s.user_id || s.id.slice(0, 8) }),
          h('td', { text: s.first_question || '—' }),
          h('td', { text: s.agents.join('、') || '—' }),
          h('td', { text: outcomes(s) })
        ]);
        row.addEventListener('click', function () { view(s.id, row); });
        row.addEventListener('keydown', function (e) { if (e.key === 'Enter') view(s.id, row); });
        body.appendChild(row);
      });
      shown += page.conversations.length;
      next = page.next;
      $('history-more').hidden = !next;
      // An incomplete page stopped at the server's scan budget: more may match further back.
      var partial = !page.complete ? '，更早的会话还没有搜索，点「加载更多」继续' : next ? '（还有更多）' : '';
      $('history-count').textContent = (shown ? '共显示 ' + shown + ' 个会话' : '暂未找到符合条件的会话') + partial;
    }, function (err) { $('history-error').textContent = '搜索失败：' + err.message; });
  }

  function view(id, row) {
    body.querySelectorAll('tr[aria-selected]').forEach(function (r) { r.removeAttribute('aria-selected'); });
    row.setAttribute('aria-selected', 'true');
    call('GET', '/agent/history/' + encodeURIComponent(id)).then(function (v) {
      var panel = $('history-view');
      panel.textContent = '';
      var s = v.summary || {};
      panel.appendChild(h('h3', { text: '会话记录（只读）' }));
      panel.appendChild(h('p', { class: 'muted', text: when(v.conversation.created_ms) + ' · ' + (CHANNELS[v.conversation.visitor.channel] || v.conversation.visitor.channel) + ' · ' + outcomes(s) }));
      var list = h('ol', { class: 'transcript' });
      v.messages.forEach(function (m) {
        var kind = m.internal ? 'agent note' : m.from.kind;
        var who = m.from.kind === 'agent' ? (m.internal ? '备注 · ' : '客服 ') + m.from.name : WHO[m.from.kind];
        list.appendChild(h('li', { class: 'm ' + kind, 'data-seq': String(m.seq) }, [
          h('span', { class: 'who', text: who + ' · ' + when(m.at_ms) }), h('span', { class: 'text', text: m.text })
        ]));
      });
      panel.appendChild(list);
      panel.hidden = false;
    }, function (err) { $('history-error').textContent = '打开失败：' + err.message; });
  }

  form.addEventListener('submit', function (e) { e.preventDefault(); search(false); });
  $('history-more').addEventListener('click', function () { search(true); });
  // A download needs the bearer header, so the file is fetched and handed over as a blob.
  $('history-export').addEventListener('click', function () {
    $('history-error').textContent = '';
    fetch('/api/v1/agent/history.csv?' + params(), { headers: { Authorization: 'Bearer ' + token() } }).then(function (r) {
      if (!r.ok) return r.json().then(function (j) { throw new Error((j.error && j.error.message) || r.statusText); });
      return r.blob();
    }).then(function (blob) {
      var a = h('a', { href: URL.createObjectURL(blob), download: 'kefu-history.csv' });
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    }, function (err) { $('history-error').textContent = '导出失败：' + err.message; });
  });
})();
