/* The admin page's people section: every account with its role, skills and capacity edited in
 * place, a new password set (the account's sessions end), disabling and enabling (a disabled
 * account cannot log in and its sessions end at once), and a form for a new account. admin.js
 * calls kefuPeople.show(call) once the page has loaded with an admin's credentials. */
'use strict';

var kefuPeople = (function () {
  var h = kefu.h;
  var call = null;
  var $ = function (id) { return document.getElementById(id); };
  var ROLES = { agent: '客服', supervisor: '主管', admin: '管理员' };

  function skills(text) { return text.split(/[,，、\s]+/).map(function (s) { return s.trim(); }).filter(Boolean); }
  function roleSelect(value, label) {
    var sel = h('select', { 'aria-label': label });
    Object.keys(ROLES).forEach(function (r) { sel.appendChild(h('option', { value: r, text: ROLES[r] })); });
    sel.value = value;
    return sel;
  }
  function failed(err) { $('people-error').textContent = '操作失败：' + err.message; kefu.toast('操作失败：' + err.message, true); }

  function list() {
    return call('GET', '/admin/agents').then(function (agents) {
      var body = $('people-list');
      body.textContent = '';
      agents.forEach(function (a) { body.appendChild(row(a)); });
      if (!agents.length) body.appendChild(h('tr', {}, [h('td', { colspan: '7', class: 'muted', text: '还没有账号' })]));
    }, failed);
  }

  function row(a) {
    var name = h('input', { value: a.name, maxlength: '64', 'aria-label': '姓名：' + a.id });
    var role = roleSelect(a.role, '角色：' + a.id);
    var sk = h('input', { value: a.skills.join(', '), 'aria-label': '技能：' + a.id });
    var max = h('input', { type: 'number', min: '1', max: '100', value: String(a.max_concurrent), 'aria-label': '同时接待：' + a.id });
    var save = h('button', { type: 'button', text: '保存', onclick: function () {
      $('people-error').textContent = '';
      call('POST', '/admin/agents/' + encodeURIComponent(a.id), { name: name.value, role: role.value, skills: skills(sk.value), max_concurrent: Number(max.value) })
        .then(function () { kefu.toast('已保存 ' + a.id); return list(); }, failed);
    } });
    var reset = h('button', { type: 'button', text: '重置密码', onclick: function () {
      var pw = window.prompt('为 ' + a.name + '（' + a.id + '）设置新密码（至少 8 个字符）：');
      if (!pw) return;
      call('POST', '/admin/agents/' + encodeURIComponent(a.id) + '/password', { password: pw })
        .then(function () { kefu.toast('已重置 ' + a.id + ' 的密码，其登录已失效'); }, failed);
    } });
    var toggle = h('button', { type: 'button', text: a.disabled ? '启用' : '停用', onclick: function () {
      call('POST', '/admin/agents/' + encodeURIComponent(a.id) + (a.disabled ? '/enable' : '/disable'))
        .then(function () { kefu.toast(a.disabled ? '已启用 ' + a.id : '已停用 ' + a.id + '，其登录已结束'); return list(); }, failed);
    } });
    var state = a.disabled ? '已停用' : a.status === 'online' ? '在线 · 接待 ' + a.active : '离开';
    return h('tr', { 'data-agent': a.id, class: a.disabled ? 'disabled' : '' }, [
      h('td', { text: a.id }), h('td', {}, [name]), h('td', {}, [role]), h('td', {}, [sk]), h('td', {}, [max]),
      h('td', { class: 'state', text: state }), h('td', {}, [h('span', { class: 'group' }, [save, reset, toggle])])
    ]);
  }

  $('people-new').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = e.target.elements;
    $('people-error').textContent = '';
    call('POST', '/admin/agents', {
      id: f.id.value.trim(), name: f.name.value.trim(), password: f.password.value,
      skills: skills(f.skills.value), max_concurrent: Number(f.max_concurrent.value), role: f.role.value
    }).then(function (a) {
      kefu.toast('已新建' + ROLES[a.role] + ' ' + a.name + '（' + a.id + '）');
      e.target.reset();
      return list();
    }, failed);
  });

  return { show: function (c) { call = c; return list(); } };
})();
