/* The admin page's webhooks: endpoints (URL and the event types each gets; the secret that
 * signs its requests), and the delivery log — each delivery's status and its last tries
 * (time, answer or error, duration) — with 「重新发送」 to send one again. It loads when the
 * admin page opens and follows the log every few seconds while it is shown. */
'use strict';

(function () {
  var h = kefu.h;
  var $ = function (id) { return document.getElementById(id); };
  // The admin page keeps the token it logged in with; before that, the form holds it.
  var call = kefu.api(function () { return sessionStorage.getItem('kefu-admin-token') || $('admin-token').value.trim(); });
  var STATUS = { pending: '等待发送', delivered: '已送达', failed: '已放弃' };
  var events = [];

  function load() {
    return call('GET', '/admin/webhooks').then(function (r) {
      events = r.events;
      drawEvents();
      drawEndpoints(r.endpoints);
      return log();
    }, function (err) { $('wh-error').textContent = '加载 Webhook 失败：' + err.message; });
  }

  function drawEvents() {
    var box = $('wh-events');
    if (box.childNodes.length) return;
    events.forEach(function (e) {
      box.appendChild(h('label', { class: 'check', title: e.when }, [h('input', { type: 'checkbox', value: e.name, checked: 'checked' }), ' ' + e.name]));
    });
  }

  function drawEndpoints(list) {
    var body = $('wh-endpoints');
    body.textContent = '';
    if (!list.length) body.appendChild(h('tr', {}, [h('td', { colspan: '4', class: 'muted', text: '还没有 Webhook' })]));
    list.forEach(function (e) {
      var del = h('button', { type: 'button', text: '删除' });
      del.addEventListener('click', function () {
        call('DELETE', '/admin/webhooks/' + encodeURIComponent(e.id)).then(load, function (err) { kefu.toast('删除失败：' + err.message, true); });
      });
      body.appendChild(h('tr', { 'data-endpoint': e.id }, [
        h('td', { text: e.url }),
        h('td', { text: e.events.join('、') }),
        h('td', {}, [h('code', { class: 'secret', text: e.secret })]),
        h('td', {}, [del]),
      ]));
    });
  }

  function log() {
    return call('GET', '/admin/webhooks/deliveries?limit=50').then(function (list) {
      var body = $('wh-log');
      body.textContent = '';
      if (!list.length) body.appendChild(h('tr', {}, [h('td', { colspan: '5', class: 'muted', text: '暂无投递' })]));
      list.forEach(function (d) {
        var again = h('button', { type: 'button', class: 'resend', text: '重新发送' });
        again.addEventListener('click', function () {
          again.disabled = true;
          call('POST', '/admin/webhooks/deliveries/' + encodeURIComponent(d.id) + '/resend').then(function () {
            kefu.toast('已重新排队：' + d.event);
            return log();
          }, function (err) { again.disabled = false; kefu.toast('重新发送失败：' + err.message, true); });
        });
        var tries = d.attempts.slice().reverse().map(function (a) {
          var what = a.error ? a.error + (a.status ? '（' + a.status + '）' : '') : String(a.status);
          return h('li', { text: kefu.clock(a.at_ms) + ' · ' + what + ' · ' + a.duration_ms + ' ms' });
        });
        body.appendChild(h('tr', { 'data-delivery': d.id, 'data-status': d.status }, [
          h('td', { text: d.event }),
          h('td', { text: STATUS[d.status] || d.status }),
          h('td', { text: String(d.tries) }),
          h('td', {}, [h('ul', { class: 'attempts' }, tries)]),
          h('td', {}, [again]),
        ]));
      });
    }, function (err) { $('wh-error').textContent = '加载投递记录失败：' + err.message; });
  }

  $('wh-form').addEventListener('submit', function (e) {
    e.preventDefault();
    $('wh-error').textContent = '';
    var chosen = Array.prototype.filter.call($('wh-events').querySelectorAll('input'), function (i) { return i.checked; }).map(function (i) { return i.value; });
    call('POST', '/admin/webhooks', { url: $('wh-url').value.trim(), events: chosen }).then(function (ep) {
      $('wh-url').value = '';
      kefu.toast('已添加 Webhook，签名密钥：' + ep.secret);
      return load();
    }, function (err) { $('wh-error').textContent = '添加失败：' + err.message; });
  });
  $('wh-refresh').addEventListener('click', function () { log(); });

  // Loads when the admin page opens (admin.js shows #app once the token is accepted), then
  // follows the log while the page is visible.
  var shown = false;
  new MutationObserver(function () {
    if (!$('app').hidden && !shown) { shown = true; load(); }
  }).observe($('app'), { attributes: true, attributeFilter: ['hidden'] });
  setInterval(function () { if (shown && !document.hidden) log(); }, 5000);
})();
