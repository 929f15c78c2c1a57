/* The admin page: the knowledge base's state (a failed reload's error shown, not only logged),
 * auto-resolution, handoffs by reason, messages per hour, ratings and answer feedback drawn as
 * small SVG charts, and the most frequent unanswered questions, each of which can be added to
 * an article as a similar question (live: the server reloads). Below, a report over any date
 * range (the bot, the team and each agent, charts per day) and its tables as CSV. */
'use strict';

(function () {
  var h = kefu.h, svg = kefu.svg;
  var TOKEN_KEY = 'kefu-admin-token';
  // An admin's session from the console in this tab works here too; an agent's is refused
  // with a clear message, not a broken page.
  var token = sessionStorage.getItem(TOKEN_KEY) || sessionStorage.getItem('kefu-agent-token');
  var call = kefu.api(function () { return token; });
  var articles = [];
  var $ = function (id) { return document.getElementById(id); };
  var REASONS = { requested: '访客要求', complaint: '投诉', repeated_misses: '多次未答', low_confidence: '把握不足', slot_failed: '信息收集失败' };
  var COLOR = '#e4393c', MUTED = '#c9ccd1';

  // A person with the admin role logs in with their account; automation uses the token.
  $('login').addEventListener('submit', function (e) {
    e.preventDefault();
    $('login-error').textContent = '';
    var id = $('admin-id').value.trim();
    var signedIn = id
      ? call('POST', '/agent/login', { id: id, password: $('admin-password').value }).then(function (r) { token = r.token; }, function (err) {
        $('login-error').textContent = '登录失败：' + err.message; throw err;
      })
      : Promise.resolve(token = $('admin-token').value.trim());
    signedIn.then(load).then(function () { sessionStorage.setItem(TOKEN_KEY, token); }, function () {});
  });
  $('logout').addEventListener('click', function () { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
  $('refresh').addEventListener('click', function () { load(); });
  $('kb-reload').addEventListener('click', function () {
    var btn = $('kb-reload');
    btn.disabled = true;
    call('POST', '/admin/reload').then(function (r) {
      knowledge(r);
      kefu.toast('知识库已重新加载：' + r.articles + ' 篇文章');
    }, function (err) {
      // 422: the files do not load; the status now holds the error to show.
      kefu.toast('重新加载失败', true);
      return reloadStatus().then(null, function () { knowledge({ error: err.message }); });
    }).then(function () { btn.disabled = false; });
  });
  // The file watcher reloads by itself: a page left open learns of a failure without a click.
  var POLL_MS = 15000;
  setInterval(function () { if (token && !$('app').hidden) reloadStatus().then(null, function () {}); }, POLL_MS);

  // Reports: local dates as the browser sees them; the offset is the browser's too, so the
  // days match the ones the reader means.
  function ymd(d) { return d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0'); }
  var today = new Date();
  $('report-to').value = ymd(today);
  $('report-from').value = ymd(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6));
  function rangeQuery() {
    return 'from=' + encodeURIComponent($('report-from').value) + '&to=' + encodeURIComponent($('report-to').value) +
      '&utc_offset_minutes=' + String(-new Date().getTimezoneOffset());
  }
  $('report-form').addEventListener('submit', function (e) { e.preventDefault(); report(); });
  $('report-csv').addEventListener('click', function () {
    var table = $('report-table').value;
    // A plain link cannot carry the bearer token: fetch, then save the body.
    fetch('/api/v1/admin/reports/csv?' + rangeQuery() + '&table=' + table, { headers: { Authorization: 'Bearer ' + token } }).then(function (r) {
      if (!r.ok) return r.json().then(function (b) { throw new Error(b.error ? b.error.message : r.statusText); });
      return r.blob().then(function (blob) {
        var a = h('a', { href: URL.createObjectURL(blob), download: 'kefu-' + table + '-' + $('report-from').value + '-to-' + $('report-to').value + '.csv' });
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
      });
    }).then(null, function (err) { $('report-error').textContent = '导出失败：' + err.message; });
  });

  function report() {
    $('report-error').textContent = '';
    return call('GET', '/admin/reports?' + rangeQuery()).then(drawReport, function (err) {
      $('report-error').textContent = '报表失败：' + err.message;
    });
  }

  function drawReport(r) {
    var b = r.bot, cards = $('report-cards');
    cards.textContent = '';
    cards.setAttribute('data-range', r.from + '/' + r.to);
    function card(key, label, value) { cards.appendChild(h('div', { class: 'card', 'data-key': key }, [h('span', { class: 'value', text: value }), h('span', { class: 'label', text: label })])); }
    card('conversations', '会话', String(b.conversations));
    card('engaged', '有提问的会话', String(b.engaged));
    card('auto_resolved', '自动解决', String(b.auto_resolved));
    card('auto_resolution_rate', '自动解决率', pct(b.auto_resolution_rate));
    card('escalated', '转人工或留言', String(b.escalated));
    card('abandoned_after_decline', '婉拒后离开', String(b.abandoned_after_decline));
    card('handoffs', '转人工次数', String(b.handoffs));
    card('handoff_rate', '转人工率', pct(b.handoff_rate));
    card('unanswered', '未解答提问', String(b.unanswered));
    card('csat', '满意度', r.team.csat_mean === null ? '—' : r.team.csat_mean.toFixed(2) + ' / 5');
    card('images_received', '收到图片', String(r.images_received));
    card('images_sent', '发出图片', String(r.team.images_sent));
    dayColumns($('chart-days'), r.days);
    donut($('chart-outcomes'), [
      { label: '自动解决', value: b.auto_resolved, color: COLOR },
      { label: '转人工或留言', value: b.escalated, color: '#f0a020' },
      { label: '婉拒后离开', value: b.abandoned_after_decline, color: '#7a7f87' },
      { label: '其他', value: b.unresolved, color: MUTED },
    ], pct(b.auto_resolution_rate));
    bars($('chart-articles'), b.top_articles.slice(0, 8).map(function (a) { return { label: (a.title || a.name).slice(0, 7), value: a.count }; }), false);
    columns($('chart-unanswered-days'), r.days.map(function (d) { return { label: d.date.slice(5), value: d.unanswered, title: d.date + '：' + d.unanswered + ' 次' }; }), Math.max(1, Math.ceil(r.days.length / 10)));
    var agents = $('report-agents');
    agents.textContent = '';
    [r.team].concat(r.agents).forEach(function (a) {
      agents.appendChild(h('tr', { 'data-agent': a.agent || '' }, [
        h('td', { text: a.agent || '全体' }),
        h('td', { text: String(a.conversations) }),
        h('td', { text: a.first_response_mean_ms === null ? '—' : kefu.duration(a.first_response_mean_ms) }),
        h('td', { text: a.handle_mean_ms === null ? '—' : kefu.duration(a.handle_mean_ms) }),
        h('td', { text: a.csat_mean === null ? '—' : a.csat_mean.toFixed(2) + '（' + a.csat_count + '）' }),
        h('td', { text: String(a.sla_breaches) }),
      ]));
    });
    var qs = $('report-questions');
    qs.textContent = '';
    if (!b.unanswered_questions.length) qs.appendChild(h('tr', {}, [h('td', { colspan: '2', class: 'muted', text: '暂无' })]));
    b.unanswered_questions.forEach(function (q) { qs.appendChild(h('tr', {}, [h('td', { text: q.name }), h('td', { text: String(q.count) })])); });
  }

  // Per day, all conversations as a pale column and the auto-resolved ones over it.
  function dayColumns(fig, days) {
    reset(fig);
    var max = Math.max.apply(null, days.map(function (d) { return d.conversations; }).concat([1]));
    var w = 720, ht = 160, bottom = 20, step = w / days.length, every = Math.ceil(days.length / 10);
    var g = svg('svg', { viewBox: '0 0 ' + w + ' ' + (ht + bottom), role: 'img', 'aria-label': '每日会话，最多 ' + max + ' 个' });
    g.appendChild(svg('line', { x1: 0, y1: ht, x2: w, y2: ht, stroke: '#ccc' }));
    days.forEach(function (d, i) {
      var all = (ht - 14) * d.conversations / max, auto = (ht - 14) * d.auto_resolved / max, x = i * step + 1, bw = Math.max(step - 2, 1);
      var tip = d.date + '：会话 ' + d.conversations + '，自动解决 ' + d.auto_resolved + '，转人工或留言 ' + d.escalated;
      g.appendChild(svg('rect', { x: x, y: ht - all, width: bw, height: all, fill: MUTED, class: 'day', 'data-date': d.date, 'data-value': String(d.conversations) }, [svg('title', { text: tip })]));
      g.appendChild(svg('rect', { x: x, y: ht - auto, width: bw, height: auto, fill: COLOR, class: 'bar' }, [svg('title', { text: tip })]));
      if (d.conversations) g.appendChild(svg('text', { x: x + bw / 2, y: ht - all - 3, 'text-anchor': 'middle', 'font-size': 10, fill: '#222', text: String(d.conversations) }));
      if (i % every === 0) g.appendChild(svg('text', { x: x, y: ht + 14, 'font-size': 10, fill: '#666', text: d.date.slice(5) }));
    });
    fig.appendChild(g);
  }

  function reloadStatus() { return call('GET', '/admin/reload').then(knowledge); }

  function load() {
    $('login-error').textContent = '';
    return Promise.all([call('GET', '/admin/stats'), call('GET', '/admin/articles'), call('GET', '/admin/reload')]).then(function (r) {
      articles = r[1].articles;
      knowledge(r[2]);
      $('login').hidden = true;
      $('app').hidden = false;
      $('refresh').hidden = $('logout').hidden = false;
      draw(r[0]);
      report();
      $('updated').textContent = '更新于 ' + kefu.clock(Date.now());
      $('need-admin').hidden = true;
      if (window.kefuPeople) kefuPeople.show(call);
    }, function (err) {
      if (err.status === 401 || err.code === 'role_required') { sessionStorage.removeItem(TOKEN_KEY); token = null; $('login').hidden = false; $('app').hidden = true; }
      $('need-admin').hidden = err.code !== 'role_required';
      $('need-admin-text').textContent = err.code === 'role_required' ? '这个账号没有管理员角色，不能使用管理页面（' + err.message + '）。请换管理员账号登录，或填写管理令牌。' : '';
      $('login-error').textContent = err.code === 'role_required' ? '' : err.status === 401 ? '账号或令牌不正确' : '加载失败：' + err.message;
      throw err;
    });
  }

  // What is serving, and the last reload's error while there is one (the previous knowledge
  // keeps serving meanwhile, so the page says that too).
  function knowledge(st) {
    var parts = [];
    if (st.articles !== undefined) parts.push((st.error ? '仍在使用 ' : '') + st.articles + ' 篇文章', st.intents + ' 个意图');
    if (st.generation) parts.push('版本 ' + st.generation);
    if (st.at_ms) parts.push((st.error ? '最近一次重新加载于 ' : '加载于 ') + new Date(st.at_ms).toLocaleString('zh-CN'));
    $('kb-status').textContent = parts.join(' · ');
    $('kb-error').hidden = !st.error;
    $('kb-error-text').textContent = st.error || '';
  }

  function draw(s) {
    var cards = $('cards');
    cards.textContent = '';
    function card(label, value) { cards.appendChild(h('div', { class: 'card' }, [h('span', { class: 'value', text: value }), h('span', { class: 'label', text: label })])); }
    card('会话', String(s.conversations));
    card('自动解决率', pct(s.auto_resolution_rate));
    card('转人工', String(s.handoffs));
    card('排队中', String(s.queued_now));
    card('留言', String(s.tickets));
    card('图片（收 / 发）', s.images_received + ' / ' + s.images_sent);
    card('等待中位数', s.wait_p50_ms === null ? '—' : kefu.duration(s.wait_p50_ms));
    card('平均满意度', s.csat_mean === null ? '—' : s.csat_mean.toFixed(2) + ' / 5');

    donut($('chart-auto'), [{ label: '自动解决', value: s.auto_resolved, color: COLOR }, { label: '需要人工或留言', value: Math.max(0, s.engaged - s.auto_resolved), color: MUTED }], pct(s.auto_resolution_rate));
    bars($('chart-reasons'), Object.keys(s.handoffs_by_reason).map(function (k) { return { label: REASONS[k] || k, value: s.handoffs_by_reason[k] }; }), true);
    columns($('chart-hours'), hours(s.messages_per_hour));
    bars($('chart-ratings'), s.ratings.map(function (n, i) { return { label: (i + 1) + ' 分', value: n }; }), false);
    donut($('chart-feedback'), [{ label: '有帮助', value: s.feedback_helpful, color: '#2e7d32' }, { label: '没帮助', value: s.feedback_unhelpful, color: MUTED }],
      s.feedback_helpful + s.feedback_unhelpful ? pct(s.feedback_helpful / (s.feedback_helpful + s.feedback_unhelpful)) : '—');
    unanswered(s.unanswered);
  }
  // The server lists only the hours that had messages; the chart shows all 48, empty ones too.
  function hours(list) {
    var HOUR = 3600000, now = Math.floor(Date.now() / HOUR) * HOUR, counts = {};
    list.forEach(function (p) { counts[p[0]] = p[1]; });
    var out = [];
    for (var t = now - 47 * HOUR; t <= now; t += HOUR) {
      var n = counts[t] || 0;
      out.push({ label: new Date(t).getHours() + '时', value: n, title: new Date(t).toLocaleString('zh-CN') + '：' + n + ' 条' });
    }
    return out;
  }
  function pct(x) { return Math.round(x * 1000) / 10 + '%'; }

  function reset(fig) {
    while (fig.lastChild && fig.lastChild.tagName !== 'FIGCAPTION') fig.removeChild(fig.lastChild);
    var empty = fig.querySelector('.empty'); if (empty) empty.remove();
  }
  function describe(items) { return items.map(function (d) { return d.label + ' ' + d.value; }).join('，'); }

  // A ring of arcs, one per part, with the headline figure in the middle.
  function donut(fig, parts, center) {
    reset(fig);
    var total = parts.reduce(function (a, p) { return a + p.value; }, 0);
    var r = 60, c = 2 * Math.PI * r, at = 0;
    var g = svg('svg', { viewBox: '0 0 300 160', role: 'img', 'aria-label': describe(parts) });
    g.appendChild(svg('circle', { cx: 80, cy: 80, r: r, fill: 'none', stroke: '#eef0f2', 'stroke-width': 22 }));
    parts.forEach(function (p) {
      if (!total || !p.value) return;
      var len = c * p.value / total;
      g.appendChild(svg('circle', { cx: 80, cy: 80, r: r, fill: 'none', stroke: p.color, 'stroke-width': 22, 'stroke-dasharray': len + ' ' + (c - len), 'stroke-dashoffset': String(-at), transform: 'rotate(-90 80 80)' }, [svg('title', { text: p.label + '：' + p.value })]));
      at += len;
    });
    g.appendChild(svg('text', { x: 80, y: 86, 'text-anchor': 'middle', 'font-size': 18, 'font-weight': 'bold', fill: '#222', text: center }));
    parts.forEach(function (p, i) {
      g.appendChild(svg('rect', { x: 160, y: 58 + i * 24, width: 10, height: 10, fill: p.color }));
      g.appendChild(svg('text', { x: 175, y: 67 + i * 24, 'font-size': 11, fill: '#444', text: p.label + ' ' + p.value }));
    });
    fig.appendChild(g);
  }

  // Horizontal bars with their labels and counts.
  function bars(fig, items, sort) {
    reset(fig);
    if (sort) items.sort(function (a, b) { return b.value - a.value; });
    if (!items.length) { fig.appendChild(h('p', { class: 'empty muted', text: '暂无数据' })); return; }
    var max = Math.max.apply(null, items.map(function (d) { return d.value; }).concat([1]));
    var row = 26, w = 320, left = 90;
    var g = svg('svg', { viewBox: '0 0 ' + w + ' ' + (items.length * row + 6), role: 'img', 'aria-label': describe(items) });
    items.forEach(function (d, i) {
      var y = 4 + i * row, bw = (w - left - 40) * d.value / max;
      g.appendChild(svg('text', { x: left - 6, y: y + 15, 'text-anchor': 'end', 'font-size': 12, fill: '#444', text: d.label }));
      g.appendChild(svg('rect', { x: left, y: y + 3, width: Math.max(bw, d.value ? 2 : 0), height: 16, rx: 3, fill: COLOR, class: 'bar' }, [svg('title', { text: d.label + '：' + d.value })]));
      g.appendChild(svg('text', { x: left + bw + 5, y: y + 15, 'font-size': 12, fill: '#222', text: String(d.value) }));
    });
    fig.appendChild(g);
  }

  // Vertical columns over time, a label every six hours.
  function columns(fig, items, labelEvery) {
    reset(fig);
    if (!items.length) { fig.appendChild(h('p', { class: 'empty muted', text: '暂无数据' })); return; }
    var max = Math.max.apply(null, items.map(function (d) { return d.value; }).concat([1]));
    var w = 720, ht = 160, bottom = 20, step = w / items.length;
    var g = svg('svg', { viewBox: '0 0 ' + w + ' ' + (ht + bottom), role: 'img', 'aria-label': '每小时消息数，最多 ' + max + ' 条' });
    g.appendChild(svg('line', { x1: 0, y1: ht, x2: w, y2: ht, stroke: '#ccc' }));
    items.forEach(function (d, i) {
      var bh = (ht - 14) * d.value / max;
      g.appendChild(svg('rect', { x: i * step + 1, y: ht - bh, width: Math.max(step - 2, 1), height: bh, fill: COLOR, class: 'bar' }, [svg('title', { text: d.title })]));
      if (d.value === max && max > 0) g.appendChild(svg('text', { x: i * step + step / 2, y: ht - bh - 3, 'text-anchor': 'middle', 'font-size': 10, fill: '#222', text: String(d.value) }));
      if (i % (labelEvery || 6) === 0) g.appendChild(svg('text', { x: i * step, y: ht + 14, 'font-size': 10, fill: '#666', text: d.label }));
    });
    fig.appendChild(g);
  }

  function unanswered(list) {
    var body = $('unanswered');
    body.textContent = '';
    if (!list.length) { body.appendChild(h('tr', {}, [h('td', { colspan: '3', class: 'muted', text: '暂无未解答的问题' })])); return; }
    list.slice(0, 20).forEach(function (q) {
      var sel = h('select', { 'aria-label': '选择文章：' + q.question }, [h('option', { value: '', text: '选择文章…' })]);
      articles.forEach(function (a) { sel.appendChild(h('option', { value: a.id, text: (a.category ? a.category + ' / ' : '') + a.title })); });
      var btn = h('button', { type: 'button', text: '添加', onclick: function () {
        if (!sel.value) { kefu.toast('请先选择一篇文章', true); sel.focus(); return; }
        btn.disabled = true;
        call('POST', '/admin/similar', { article: sel.value, question: q.question }).then(function (r) {
          cell.textContent = '已加入 ' + sel.options[sel.selectedIndex].text + '（知识库已更新，' + r.articles + ' 篇文章）';
          kefu.toast('已添加为相似问法，机器人现在能回答这个问题了');
        }, function (err) { btn.disabled = false; kefu.toast('添加失败：' + err.message, true); });
      } });
      var cell = h('td', { class: 'add' }, [sel, btn]);
      body.appendChild(h('tr', {}, [h('td', { text: q.question }), h('td', { text: String(q.count) }), cell]));
    });
  }

  if (token) load().then(null, function () {});
})();
