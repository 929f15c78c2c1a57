/* Shared by the agent console and the admin page: the API client (one error shape), DOM
 * building with textContent only (message text is never parsed as HTML), a safe Markdown
 * subset, and time formatting. */
'use strict';

var kefu = (function () {
  function h(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    (kids || []).forEach(function (c) { if (c !== null && c !== undefined && c !== false) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }

  function svg(tag, attrs, kids) {
    var e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (var k in attrs || {}) { if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]); }
    (kids || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  function inline(text, into) {
    var re = /\*\*([^*]+)\*\*|`([^`]+)`|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g;
    var at = 0, m;
    while ((m = re.exec(text))) {
      if (m.index > at) into.appendChild(document.createTextNode(text.slice(at, m.index)));
      if (m[1]) into.appendChild(h('strong', { text: m[1] }));
      else if (m[2]) into.appendChild(h('code', { text: m[2] }));
      else into.appendChild(h('a', { href: m[4], target: '_blank', rel: 'noopener noreferrer', text: m[3] }));
      at = re.lastIndex;
    }
    if (at < text.length) into.appendChild(document.createTextNode(text.slice(at)));
  }

  function markdown(src) {
    var root = h('div', { class: 'md' });
    var list = null, para = null;
    src.split(/\r?\n/).forEach(function (line) {
      var item = /^\s*(?:[-*•]|(\d+)[.、)])\s+(.*)$/.exec(line);
      if (item) {
        var tag = item[1] ? 'ol' : 'ul';
        if (!list || list.tagName.toLowerCase() !== tag) { list = h(tag); root.appendChild(list); }
        var li = h('li'); inline(item[2], li); list.appendChild(li);
        para = null;
      } else if (!line.trim()) { list = null; para = null; }
      else {
        list = null;
        if (para) para.appendChild(h('br')); else { para = h('p'); root.appendChild(para); }
        inline(line.replace(/^#+\s*/, ''), para);
      }
    });
    return root;
  }

  function api(token) {
    return function call(method, path, body) {
      var headers = {};
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (token()) headers.Authorization = 'Bearer ' + token();
      return fetch('/api/v1' + path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) }).then(function (r) {
        if (r.status === 204) return null;
        return r.json().then(function (j) {
          if (!r.ok) { var e = new Error((j.error && j.error.message) || r.statusText); e.status = r.status; e.code = j.error && j.error.code; throw e; }
          return j;
        });
      });
    };
  }

  function duration(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' 秒';
    if (s < 3600) return Math.floor(s / 60) + ' 分 ' + (s % 60) + ' 秒';
    return Math.floor(s / 3600) + ' 小时 ' + Math.floor((s % 3600) / 60) + ' 分';
  }

  function clock(ms) {
    var d = new Date(ms);
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  var toastTimer;
  function toast(text, bad) {
    var t = document.getElementById('toast');
    t.textContent = text;
    t.className = bad ? 'toast bad' : 'toast';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.hidden = true; }, 4000);
  }

  return { h: h, svg: svg, markdown: markdown, api: api, duration: duration, clock: clock, toast: toast };
})();
