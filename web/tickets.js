/* The agent console's tickets (工单) page: the list with filters and search, one ticket's
 * view (details, SLA, complaint steps, history, notes, replies, status and assignee
 * changes), new tickets announced over the console's socket (agent.js hands every event on
 * as a `kefu-agent-event`), and a ticket made from an open conversation (`kefu-new-ticket`).
 * Every text is shown only as text. */
'use strict';

(function () {
  var h = kefu.h;
  var token = function () { return sessionStorage.getItem('kefu-agent-token'); };
  var call = kefu.api(token);
  var $ = function (id) { return document.getElementById(id); };
  var STATUS = { new: '新建', open: '处理中', pending_customer: '待客户回复', resolved: '已解决', closed: '已关闭' };
  // The moves the server allows (handoff/ticket.rs), as buttons.
  var MOVES = { new: ['open', 'pending_customer', 'resolved'], open: ['pending_customer', 'resolved'], pending_customer: ['open', 'resolved'], resolved: ['open', 'closed'], closed: [] };
  var MOVE_TEXT = { open: '开始处理', pending_customer: '等待客户', resolved: '解决', closed: '关闭' };
  var PRIORITY = { low: '低', normal: '普通', high: '高', urgent: '紧急' };
  var STEPS = [['accept', '受理'], ['investigate', '调查'], ['negotiate', '协商'], ['feedback', '反馈']];
  var VIA = { channel: '会话渠道', phone: '电话', mail: '邮件' };
  var form = $('tickets-form');
  var body = $('tickets-table').querySelector('tbody');
  var openId = null, fresh = 0, agents = [];

  function when(ms) {
    if (!ms) return '—';
    var d = new Date(ms);
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return (d.getMonth() + 1) + '-' + two(d.getDate()) + ' ' + two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  function show(open) {
    if (open && !$('history').hidden) $('history-toggle').click();
    $('tickets').hidden = !open;
    $('app').hidden = open;
    $('tickets-toggle').setAttribute('aria-expanded', String(open));
    if (open) { fresh = 0; badge(); list(); }
  }
  $('tickets-toggle').addEventListener('click', function () { show($('tickets').hidden); });
  // The history page takes the screen the same way: one page at a time.
  $('history-toggle').addEventListener('click', function () { if (!$('tickets').hidden) { $('tickets').hidden = true; $('tickets-toggle').setAttribute('aria-expanded', 'false'); } }, true);

  function badge() {
    var b = $('tickets-new');
    b.textContent = String(fresh);
    b.hidden = !fresh;
  }

  function params() {
    var p = new URLSearchParams();
    new FormData(form).forEach(function (v, k) { if (String(v).trim()) p.set(k, String(v).trim()); });
    return p.toString();
  }
  form.addEventListener('submit', function (e) { e.preventDefault(); list(); });
  form.addEventListener('change', function () { list(); });

  function slaText(t) {
    var out = [];
    if (t.sla.first_response_breached) out.push('首次响应已超时');
    if (t.sla.resolution_breached) out.push('解决已超时');
    return out;
  }

  function list() {
    $('tickets-error').textContent = '';
    return call('GET', '/agent/tickets?' + params()).then(function (rows) {
      body.textContent = '';
      rows.forEach(function (t) {
        var breaches = slaText(t);
        var row = h('tr', { 'data-ticket': String(t.id), tabindex: '0', 'aria-selected': t.id === openId ? 'true' : null }, [
          h('td', { text: '#' + t.id }),
          h('td', { text: STATUS[t.status] || t.status }),
          h('td', { text: PRIORITY[t.priority] || t.priority }),
          h('td', { text: t.category + (t.complaint ? '（投诉流程）' : '') }),
          h('td', { text: t.message }),
          h('td', { text: t.assignee || '未分配' }),
          h('td', { class: breaches.length ? 'breach' : '', text: breaches.join('、') || (t.sla.first_response_due_ms ? '响应截止 ' + when(t.sla.first_response_due_ms) : '—') })
        ]);
        row.addEventListener('click', function () { view(t.id); });
        row.addEventListener('keydown', function (e) { if (e.key === 'Enter') view(t.id); });
        body.appendChild(row);
      });
      $('tickets-count').textContent = rows.length ? '共 ' + rows.length + ' 个工单' : '没有符合条件的工单';
    }, function (err) { $('tickets-error').textContent = '加载工单失败：' + err.message; });
  }

  function act(id, path, method, payload, done) {
    return call(method, '/agent/tickets/' + id + path, payload).then(function (t) {
      if (done) kefu.toast(done);
      draw(t); list();
    }, function (err) { kefu.toast('操作失败：' + err.message, true); });
  }

  function view(id) {
    openId = id;
    body.querySelectorAll('tr').forEach(function (r) { if (r.getAttribute('data-ticket') === String(id)) r.setAttribute('aria-selected', 'true'); else r.removeAttribute('aria-selected'); });
    return call('GET', '/agent/tickets/' + id).then(draw, function (err) { kefu.toast('打开工单失败：' + err.message, true); });
  }

  function field(label, el) { return h('label', { class: 'field' }, [label + ' ', el]); }

  function draw(t) {
    if (t.id !== openId) return;
    var panel = $('ticket-view');
    panel.hidden = false;
    panel.textContent = '';
    panel.setAttribute('data-ticket', String(t.id));
    var done = t.status === 'closed';
    panel.appendChild(h('h2', { text: '工单 #' + t.id + ' · ' + (STATUS[t.status] || t.status) }));
    panel.appendChild(h('p', { class: 'ticket-message', text: t.message }));
    panel.appendChild(h('p', { class: 'muted', text: '联系方式：' + (t.contact || '—') + ' · 访客：' + (t.visitor.name || t.conversation.slice(0, 8)) + ' · 创建于 ' + when(t.created_ms) + (t.source === 'agent' ? '（客服创建）' : '（访客留言）') }));

    var breaches = slaText(t);
    panel.appendChild(h('div', { class: 'sla' + (breaches.length ? ' breached' : ''), 'aria-label': 'SLA' }, [
      h('span', { text: '首次响应截止：' + when(t.sla.first_response_due_ms) + (t.first_response_ms ? '（已于 ' + when(t.first_response_ms) + ' 响应）' : '') }),
      h('span', { text: '解决截止：' + when(t.sla.resolution_due_ms) }),
      breaches.length ? h('strong', { class: 'breach', text: breaches.join('、') }) : null
    ]));

    // Status moves the lifecycle allows, as buttons.
    var moves = h('div', { class: 'actions', 'aria-label': '状态' });
    (MOVES[t.status] || []).forEach(function (to) {
      moves.appendChild(h('button', { type: 'button', class: to === 'resolved' ? 'primary' : '', 'data-status': to, text: MOVE_TEXT[to], onclick: function () { act(t.id, '', 'PATCH', { status: to }, '状态已改为「' + STATUS[to] + '」'); } }));
    });
    panel.appendChild(moves);

    if (t.complaint) {
      var next = STEPS[t.complaint_steps.length];
      var steps = h('ol', { class: 'steps', 'aria-label': '投诉流程' });
      STEPS.forEach(function (s) {
        var at = t.history.filter(function (e) { return e.kind === 'complaint' && e.step === s[0]; })[0];
        steps.appendChild(h('li', { class: at ? 'done' : '', text: s[1] + (at ? '：' + at.by + ' ' + when(at.at_ms) : '') }));
      });
      panel.appendChild(h('div', { class: 'complaint' }, [h('h3', { text: '投诉流程（受理 → 调查 → 协商 → 反馈）' }), steps,
        next && !done ? h('button', { type: 'button', class: 'primary', 'data-step': next[0], text: '完成「' + next[1] + '」', onclick: function () { act(t.id, '', 'PATCH', { complaint_step: next[0] }, '已记录「' + next[1] + '」'); } }) : null]));
    }

    if (!done) {
      var priority = h('select', { 'aria-label': '优先级' });
      Object.keys(PRIORITY).forEach(function (p) { priority.appendChild(h('option', { value: p, text: PRIORITY[p], selected: p === t.priority ? 'selected' : null })); });
      var assignee = h('select', { 'aria-label': '处理人' }, [h('option', { value: '', text: '未分配' })]);
      agents.forEach(function (a) { assignee.appendChild(h('option', { value: a.id, text: a.name + '（' + a.id + '）', selected: a.id === t.assignee ? 'selected' : null })); });
      var category = h('input', { value: t.category, 'aria-label': '分类' });
      var tags = h('input', { value: t.tags.join('，'), 'aria-label': '标签', placeholder: '用逗号分隔' });
      panel.appendChild(h('div', { class: 'ticket-fields' }, [
        field('优先级', priority), field('处理人', assignee), field('分类', category), field('标签', tags),
        h('button', { type: 'button', text: '保存', onclick: function () {
          act(t.id, '', 'PATCH', {
            priority: priority.value, category: category.value.trim(), assignee: assignee.value || null,
            tags: tags.value.split(/[,，]/).map(function (s) { return s.trim(); }).filter(Boolean)
          }, '已保存');
        } })
      ]));
      var reply = h('textarea', { id: 'ticket-reply', rows: '3', 'aria-label': '回复客户', placeholder: '回复客户' });
      var via = h('select', { 'aria-label': '回复方式' });
      Object.keys(VIA).forEach(function (k) {
        // A closed conversation cannot take a message: the agent calls or writes instead.
        if (k === 'channel' && !t.reachable) return;
        via.appendChild(h('option', { value: k, text: k === 'channel' ? VIA[k] + '（' + (t.visitor.channel === 'web' ? '网页' : t.visitor.channel) + '）' : '已通过' + VIA[k] + '联系' }));
      });
      var note = h('textarea', { id: 'ticket-note', rows: '2', 'aria-label': '内部备注', placeholder: '内部备注（客户看不到）' });
      panel.appendChild(h('div', { class: 'composer' }, [reply, h('div', { class: 'row' }, [via,
        h('button', { type: 'button', class: 'primary', text: '回复客户', onclick: function () {
          if (!reply.value.trim()) return;
          act(t.id, '/replies', 'POST', { text: reply.value, via: via.value }, via.value === 'channel' ? '已发送给客户' : '已记录联系');
        } })])]));
      panel.appendChild(h('div', { class: 'composer' }, [note, h('div', { class: 'row' }, [
        h('button', { type: 'button', text: '添加备注', onclick: function () { if (note.value.trim()) act(t.id, '/notes', 'POST', { text: note.value }, '备注已添加'); } })])]));
      if (!t.complaint) panel.appendChild(h('div', { class: 'actions' }, [h('button', { type: 'button', text: '转为投诉流程', onclick: function () { act(t.id, '', 'PATCH', { complaint: true }, '已转为投诉'); } })]));
    }

    var history = h('ol', { class: 'ticket-history', 'aria-label': '工单记录' });
    t.history.forEach(function (e) { history.appendChild(h('li', { 'data-kind': e.kind }, [h('span', { class: 'muted', text: when(e.at_ms) + ' ' + (e.by === 'system' ? '系统' : e.by === 'visitor' ? '访客' : e.by) + '：' }), h('span', { text: describe(e) })])); });
    panel.appendChild(h('h3', { text: '记录' }));
    panel.appendChild(history);
    var transcript = h('ol', { class: 'transcript' });
    t.transcript.forEach(function (m) { transcript.appendChild(h('li', { text: (m.from.kind === 'visitor' ? '访客' : m.from.kind === 'agent' ? m.from.name : '机器人') + '：' + m.text })); });
    panel.appendChild(h('details', {}, [h('summary', { text: '留言时的对话' }), transcript]));
  }

  function describe(e) {
    switch (e.kind) {
      case 'created': return e.source === 'agent' ? '创建工单' : '访客留言，工单创建';
      case 'status': return '状态：' + (STATUS[e.from] || e.from) + ' → ' + (STATUS[e.to] || e.to);
      case 'assignee': return '处理人：' + (e.from || '未分配') + ' → ' + (e.to || '未分配');
      case 'priority': return '优先级：' + PRIORITY[e.from] + ' → ' + PRIORITY[e.to];
      case 'category': return '分类：' + e.from + ' → ' + e.to;
      case 'tags': return '标签：' + (e.tags.join('、') || '无');
      case 'note': return '备注：' + e.text;
      case 'reply': return '回复客户（' + (VIA[e.via] || e.via) + '）：' + e.text;
      case 'complaint': return '投诉流程：' + (STEPS.filter(function (s) { return s[0] === e.step; })[0] || [0, e.step])[1];
      case 'breach': return (e.clock === 'first_response' ? '首次响应' : '解决') + '已超时（截止 ' + when(e.due_ms) + '）';
      default: return e.kind;
    }
  }

  // The console's socket events: a new ticket is announced like a handoff; any change
  // refreshes the list and the open ticket.
  document.addEventListener('kefu-agent-event', function (ev) {
    var e = ev.detail;
    if (e.type === 'ready') {
      $('tickets-toggle').hidden = false;
      call('GET', '/agent/agents').then(function (a) { agents = a; }, function () {});
      return;
    }
    if (e.type !== 'ticket' && e.type !== 'resync') return;
    if (e.type === 'ticket' && e.created) {
      kefu.toast('新工单 #' + e.ticket.id + '：' + e.ticket.message);
      if ($('tickets').hidden) { fresh += 1; badge(); }
    }
    if (!$('tickets').hidden) list();
    if (openId !== null && (e.type === 'resync' || e.ticket.id === openId)) view(openId);
  });

  // A ticket made from an open conversation (the conversation view's button).
  document.addEventListener('kefu-new-ticket', function (ev) {
    var d = $('ticket-new');
    d.querySelector('[name=conversation]').value = ev.detail.conversation;
    d.querySelector('[name=message]').value = ev.detail.message || '';
    $('ticket-new-error').textContent = '';
    d.showModal();
  });
  $('ticket-new-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = new FormData(this);
    var payload = {
      conversation: f.get('conversation'), message: String(f.get('message')).trim(), contact: String(f.get('contact')).trim() || null,
      category: String(f.get('category')).trim() || null, priority: f.get('priority'), complaint: f.get('complaint') === 'on'
    };
    call('POST', '/agent/tickets', payload).then(function (t) {
      $('ticket-new').close();
      kefu.toast('已创建工单 #' + t.id);
      show(true);
      view(t.id);
    }, function (err) { $('ticket-new-error').textContent = '创建失败：' + err.message; });
  });
  $('ticket-new-cancel').addEventListener('click', function () { $('ticket-new').close(); });
})();
