/* The console's people features (agent.js calls in through kefuSupervision): every agent
 * changes their own password and reads their quality reviews (质检), live as they arrive; a
 * supervisor also sees every live conversation (queued or with an agent, the latest message
 * of each as it is written), takes one over, and scores a resolved one on the rubric. */
'use strict';

var kefuSupervision = (function () {
  var h = kefu.h;
  var con = null; // { call, me(), open(id), reload(view) } from agent.js
  var rubric = [];
  var live = {}; // conversation id → its list item's preview line
  var $ = function (id) { return document.getElementById(id); };
  var SUPERVISES = { supervisor: true, admin: true };

  function supervisor() { return SUPERVISES[con.me().role] === true; }

  function start(c) {
    con = c;
    if ($('my-reviews')) return; // a second start after a re-login: the panels are there
    var side = document.querySelector('aside.side');
    if (supervisor()) {
      var list = h('ul', { id: 'live', class: 'list', 'aria-label': '全部进行中的会话', 'aria-live': 'polite' });
      side.insertBefore(list, side.firstChild);
      side.insertBefore(h('h2', { text: '全部进行中的会话（主管）' }), list);
      con.call('GET', '/agent/rubric').then(function (r) { rubric = r.criteria; }, function () {});
      refreshLive();
    }
    side.appendChild(h('h2', { text: '我的质检' }));
    side.appendChild(h('ul', { id: 'my-reviews', class: 'reviews', 'aria-label': '我的质检评分' }));
    side.appendChild(passwordForm());
    refreshReviews();
  }

  // ---- own password ----------------------------------------------------------------------
  function passwordForm() {
    var current = h('input', { type: 'password', autocomplete: 'current-password', required: 'required', 'aria-label': '当前密码' });
    var next = h('input', { type: 'password', autocomplete: 'new-password', required: 'required', minlength: '8', maxlength: '128', 'aria-label': '新密码' });
    var again = h('input', { type: 'password', autocomplete: 'new-password', required: 'required', 'aria-label': '再次输入新密码' });
    var error = h('p', { class: 'error', role: 'alert' });
    var form = h('form', { id: 'password-form', class: 'password-form' }, [
      h('label', {}, ['当前密码 ', current]), h('label', {}, ['新密码 ', next]), h('label', {}, ['再次输入 ', again]),
      h('button', { type: 'submit', text: '修改密码' }), error
    ]);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      error.textContent = '';
      if (next.value !== again.value) { error.textContent = '两次输入的新密码不一致'; return; }
      con.call('POST', '/agent/password', { current: current.value, new: next.value }).then(function () {
        form.reset();
        kefu.toast('密码已修改，其他设备上的登录已结束');
      }, function (err) { error.textContent = '修改失败：' + err.message; });
    });
    return h('details', { class: 'password' }, [h('summary', { text: '修改密码' }), form]);
  }

  // ---- reviews ---------------------------------------------------------------------------
  function refreshReviews() {
    return con.call('GET', '/agent/reviews').then(function (list) {
      var ul = $('my-reviews');
      ul.textContent = '';
      list.forEach(function (r) {
        ul.appendChild(h('li', { 'data-conversation': r.conversation }, [
          h('div', {}, [h('span', { class: 'total', text: r.total.toFixed(1) + ' 分' }), ' · ' + r.reviewer_name + ' · 会话 ' + r.conversation.slice(0, 6) + ' · ' + new Date(r.at_ms).toLocaleString('zh-CN')]),
          h('div', { class: 'muted', text: r.scores.map(function (s) { return s.criterion + ' ' + s.score + '/5' + (s.comment ? '（' + s.comment + '）' : ''); }).join('；') }),
          r.comment ? h('div', { text: r.comment }) : null
        ]));
      });
      if (!list.length) ul.appendChild(h('li', { class: 'muted', text: '暂无质检评分' }));
    }, function () {});
  }

  function reviewForm(v, agents) {
    var who = h('select', { 'aria-label': '被质检的客服' });
    agents.forEach(function (a) { who.appendChild(h('option', { value: a, text: a })); });
    var rows = rubric.map(function (c) {
      var score = h('select', { 'aria-label': c.name + ' 评分' });
      [5, 4, 3, 2, 1].forEach(function (n) { score.appendChild(h('option', { value: String(n), text: n + ' 分' })); });
      var note = h('input', { maxlength: '500', placeholder: '点评（可选）', 'aria-label': c.name + ' 点评' });
      return { c: c, score: score, note: note, el: h('div', { class: 'criterion' }, [h('span', { text: c.name + '（' + c.weight + '）' }), score, note]) };
    });
    var overall = h('input', { maxlength: '500', placeholder: '总评（可选）', 'aria-label': '总评' });
    var out = h('p', { class: 'result', 'aria-live': 'polite' });
    var form = h('form', { class: 'review-form', 'aria-label': '质检评分' }, [h('h3', { text: '质检评分' }), h('label', {}, ['客服 ', who])]
      .concat(rows.map(function (r) { return r.el; })).concat([overall, h('button', { type: 'submit', class: 'primary', text: '提交评分' }), out]));
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      con.call('POST', '/agent/reviews', {
        conversation: v.id, agent: who.value, comment: overall.value,
        scores: rows.map(function (r) { return { criterion: r.c.name, score: Number(r.score.value), comment: r.note.value }; })
      }).then(function (r) {
        out.textContent = '已提交：' + r.agent + ' 得分 ' + r.total.toFixed(1);
        kefu.toast('质检评分已提交：' + r.total.toFixed(1) + ' 分');
      }, function (err) { kefu.toast('提交失败：' + err.message, true); });
    });
    return form;
  }

  // Buttons a supervisor gets on a conversation's view (agent.js draws the rest).
  function actions(v) {
    if (!con || !supervisor()) return;
    var conv = v.data.conversation, hf = v.data.handoff, me = con.me();
    if (!hf) return;
    var live = hf.status === 'queued' || hf.status === 'assigned';
    if (live && !(conv.state.kind === 'with_agent' && conv.state.agent === me.id)) {
      v.actions.appendChild(h('button', { type: 'button', class: 'takeover', text: '接管', onclick: function () {
        con.call('POST', '/agent/conversations/' + encodeURIComponent(v.id) + '/takeover').then(function () {
          kefu.toast('已接管会话'); con.reload(v);
        }, function (err) { kefu.toast('接管失败：' + err.message, true); });
      } }));
    }
    var old = v.el.querySelector('.review-form');
    if (old) old.remove();
    if ((hf.status === 'resolved' || hf.status === 'returned') && rubric.length) {
      // Who took part (held it or wrote in it, as the history summary has it), but not the
      // reviewer: a supervisor who took over reviews the agent before them.
      con.call('GET', '/agent/history/' + encodeURIComponent(v.id)).then(function (r) {
        var agents = ((r.summary && r.summary.agents) || []).filter(function (a) { return a !== me.id; });
        if (agents.length && !v.el.querySelector('.review-form')) v.actions.parentNode.insertBefore(reviewForm(v, agents), v.actions.nextSibling);
      }, function () {});
    }
  }

  // ---- every live conversation -------------------------------------------------------------
  var refreshing = null;
  function refreshLive() {
    if (!$('live') || refreshing) return;
    refreshing = con.call('GET', '/agent/supervision').then(function (list) {
      refreshing = null;
      var ul = $('live');
      ul.textContent = '';
      live = {};
      list.forEach(function (c) {
        var preview = h('span', { class: 'line muted preview' });
        live[c.conversation] = preview;
        ul.appendChild(h('li', {}, [h('button', { type: 'button', class: 'item', 'data-conversation': c.conversation, onclick: function () { con.open(c.conversation); } }, [
          h('strong', { text: ((c.visitor && c.visitor.name) || '访客') + ' · ' + c.conversation.slice(0, 6) }),
          h('span', { class: 'line', text: c.status === 'queued' ? '排队中' : '客服 ' + (c.agent_name || c.agent) }),
          preview
        ])]));
      });
      if (!list.length) ul.appendChild(h('li', { class: 'muted', text: '暂无进行中的会话' }));
    }, function () { refreshing = null; });
  }

  // Every agent event, as the console's WebSocket delivers it.
  function event(e) {
    if (!con) return;
    var me = con.me();
    if (e.type === 'message' && live[e.conversation] && !e.message.internal) live[e.conversation].textContent = e.message.text.slice(0, 40);
    if (e.type === 'handoff' || e.type === 'changed' || e.type === 'resync') refreshLive();
    if (e.type === 'taken_over') {
      refreshLive();
      if (e.from === me.id) kefu.toast('主管 ' + e.by_name + ' 接管了会话 ' + e.conversation.slice(0, 6));
    }
    if (e.type === 'reviewed' && e.agent === me.id) { kefu.toast('您收到了新的质检评分'); refreshReviews(); }
  }

  return { start: start, actions: actions, event: event };
})();
