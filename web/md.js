/* Shared by the chat widget and the console pages: DOM building with textContent only
 * (message text is never parsed as HTML), a safe Markdown subset, and the API client with its
 * one error shape. The server prepends this file to widget.js inside one closure, so the
 * widget stays a single script and adds no global to the host page; the consoles load it as
 * /assets/md.js before console.js. */
var kefuMd = (function () {
  'use strict';

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

  // A safe Markdown subset: paragraphs, line breaks, - and 1. lists, **bold**, `code` and
  // [links](https://…). Everything becomes DOM nodes; no HTML string is ever parsed.
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

  // A client for the API under `base` with the bearer token `token()` returns (if any). An
  // error answer rejects with the server's message, its status and its code.
  function request(base, token) {
    return function call(method, path, body) {
      var headers = {};
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (token()) headers.Authorization = 'Bearer ' + token();
      return fetch(base + path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) }).then(function (r) {
        if (r.status === 204) return null;
        return r.json().then(function (j) {
          if (!r.ok) { var e = new Error((j.error && j.error.message) || r.statusText); e.status = r.status; e.code = j.error && j.error.code; throw e; }
          return j;
        });
      });
    };
  }

  // Photos, both ways with the bearer header (never a token in a URL): `upload(path, file)`
  // posts the file's bytes as they are (the server decides by the bytes what they are) and
  // resolves with the JSON answer; `image(path)` resolves with a blob: URL of the image, one
  // fetch per path for the life of the page.
  function images(base, token) {
    var urls = {};
    function auth() { return token() ? { Authorization: 'Bearer ' + token() } : {}; }
    function upload(path, file) {
      var headers = auth();
      headers['Content-Type'] = file.type || 'application/octet-stream';
      return fetch(base + path, { method: 'POST', headers: headers, body: file }).then(function (r) {
        return r.json().then(function (j) {
          if (!r.ok) { var e = new Error((j.error && j.error.message) || r.statusText); e.status = r.status; e.code = j.error && j.error.code; throw e; }
          return j;
        });
      });
    }
    function image(path) {
      if (!urls[path]) {
        urls[path] = fetch(base + path, { headers: auth() }).then(function (r) {
          if (!r.ok) { delete urls[path]; throw new Error('图片加载失败（' + r.status + '）'); }
          return r.blob();
        }).then(function (b) { return URL.createObjectURL(b); });
      }
      return urls[path];
    }
    // An <img> for message `m`'s photo, filled once its bytes arrive.
    function img(path, m) {
      var el = h('img', { class: 'photo', alt: '图片', width: m.image.width, height: m.image.height, 'data-hash': m.image.hash });
      image(path).then(function (u) { el.src = u; }, function (e) { el.alt = e.message; });
      return el;
    }
    return { upload: upload, image: image, img: img };
  }

  return { h: h, markdown: markdown, request: request, images: images };
})();
