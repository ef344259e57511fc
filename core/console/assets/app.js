// Sextant's console: one page, routed by its URL's fragment (#/services,
// #/service?..., #/namespaces, #/clients, #/client?id=..., #/members,
// #/plugins, #/login). It reads and writes through the server's HTTP API
// only, refreshes what it shows every few seconds while the tab is shown,
// and renders every value from the API as text (never as markup).
'use strict';

const POLL_MS = 3000;
const TOKEN_KEY = 'sextant.console.token';
const USER_KEY = 'sextant.console.user';
const EXPIRY_KEY = 'sextant.console.expiry';
const PAGE_SIZES = [20, 50, 100];
const MAX_TEXT = 300; // longest error message shown

// ---- DOM helpers: everything from the API goes in as text nodes ----

// el builds an element: props are attributes (class, text, on<event>,
// dataset, and plain attributes); children are nodes or text.
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// href returns the fragment of a route with its parameters.
function href(name, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return '#/' + name + (s ? '?' + s : '');
}

function link(name, params, text) {
  return el('a', { href: href(name, params) }, text);
}

function badge(text, kind) {
  return el('span', { class: 'badge' + (kind ? ' ' + kind : '') }, text);
}

function yesNo(v, good) {
  if (v === undefined || v === null) return '–';
  return badge(v ? 'yes' : 'no', v === good ? 'ok' : 'bad');
}

function fmtNum(n) {
  return typeof n === 'number' && isFinite(n) ? n.toLocaleString('en-US') : '–';
}

// fmtTime writes a time in Unix milliseconds: the time alone when it is
// today.
function fmtTime(ms) {
  if (typeof ms !== 'number' || ms <= 0) return '–';
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

// nowrap keeps a short value on one line.
function nowrap(text) {
  return el('span', { class: 'nowrap' }, text);
}

function metadataChips(md) {
  if (!md || typeof md !== 'object') return [];
  return Object.keys(md).sort().map(k => el('span', { class: 'meta mono' }, k + '=' + String(md[k])));
}

// table builds a table whose body the caller fills: columns are
// [title, numeric?] pairs.
function table(id, columns) {
  const body = el('tbody');
  const t = el('table', { id },
    el('thead', null, el('tr', null, columns.map(([title, num]) => el('th', { class: num ? 'num' : null }, title)))),
    body);
  return { table: t, body, columns: columns.length };
}

// fill replaces a table body's rows; each row is a list of cells (a cell
// is text, a node, or {num: value}, right-aligned, with thousands
// separators unless plain is set).
function fill(t, rows, emptyText) {
  if (rows.length === 0) {
    t.body.replaceChildren(el('tr', null, el('td', { class: 'empty', colspan: t.columns }, emptyText)));
    return;
  }
  t.body.replaceChildren(...rows.map(cells => el('tr', null, cells.map(c =>
    c !== null && typeof c === 'object' && !(c instanceof Node) && 'num' in c
      ? el('td', { class: 'num' }, c.plain && typeof c.num === 'number' ? String(c.num) : fmtNum(c.num))
      : el('td', null, c)))));
}

function clip(s) {
  s = String(s);
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) + '…' : s;
}

// ---- the API ----

// ApiError is a refused or failed call.
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const session = {
  token() {
    const exp = Number(sessionStorage.getItem(EXPIRY_KEY) || 0);
    if (exp && Date.now() > exp) {
      session.clear();
      return '';
    }
    return sessionStorage.getItem(TOKEN_KEY) || '';
  },
  user() { return sessionStorage.getItem(USER_KEY) || ''; },
  save(token, user, ttlSeconds) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(USER_KEY, user);
    if (ttlSeconds > 0) sessionStorage.setItem(EXPIRY_KEY, String(Date.now() + ttlSeconds * 1000));
    else sessionStorage.removeItem(EXPIRY_KEY);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    sessionStorage.removeItem(EXPIRY_KEY);
  },
};

// errorText reads the message of a refusal: Nacos's JSON envelopes, or text.
function errorText(status, text) {
  try {
    const j = JSON.parse(text);
    if (j && typeof j === 'object') {
      const m = (typeof j.data === 'string' && j.data) || j.message;
      if (m) return clip(m);
    }
  } catch (_) { /* not JSON */ }
  return clip(text.trim() || 'HTTP ' + status);
}

// api calls the server: GET with params in the query, other methods with
// them as a form. It sends the session's token, unwraps Nacos's v2
// envelope and parses JSON.
async function api(method, path, params) {
  const url = new URL(path, location.origin);
  const headers = { Accept: 'application/json' };
  const token = session.token();
  if (token) headers.accessToken = token;
  const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null) form.set(k, String(v));
  }
  if (method === 'GET') {
    url.search = form.toString();
  } else {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    init.body = form.toString();
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, 'the server cannot be reached (' + clip(e.message) + ')');
  }
  const text = await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, errorText(resp.status, text));
  if (!(resp.headers.get('Content-Type') || '').includes('json')) return text;
  let body;
  try {
    body = JSON.parse(text);
  } catch (_) {
    throw new ApiError(resp.status, 'the server answered malformed JSON for ' + path);
  }
  if ((path.startsWith('/nacos/v2/') || path.startsWith('/v1/sextant/')) && body && typeof body === 'object' && 'code' in body && 'data' in body) {
    if (body.code !== 0) throw new ApiError(resp.status, clip(body.message || 'error ' + body.code));
    return body.data;
  }
  return body;
}

// arr returns v if it is an array, else an empty one: what the pages
// iterate over is never trusted to have the expected shape.
function arr(v) { return Array.isArray(v) ? v : []; }

// ---- the shell: live indicator, errors, namespaces, the router ----

const state = {
  page: null,     // the mounted page: {name, refresh}
  seq: 0,         // bumped on every mount and refresh: only the latest refresh shows what it read
  busy: false,    // a refresh is in flight
  namespaces: [], // [{id, name}]
  loginReason: '', // why the login page is shown, when a token was refused
};

function setLive(kind, text) {
  const live = document.getElementById('live');
  live.className = 'live' + (kind === 'ok' ? '' : ' ' + kind);
  live.textContent = text;
}

function showError(msg) {
  const box = document.getElementById('error');
  box.textContent = msg;
  box.hidden = !msg;
}

function showUser() {
  const user = session.user(), token = session.token();
  document.getElementById('user').textContent = token ? 'signed in as ' + user : '';
  document.getElementById('logout').hidden = !token;
}

// selectedNamespace is the namespace the header's picker shows ("" is public).
function selectedNamespace() {
  return document.getElementById('ns-select').value || '';
}

function namespaceName(id) {
  const ns = state.namespaces.find(n => n.id === id);
  return ns ? ns.name : (id || 'public');
}

async function loadNamespaces() {
  const body = await api('GET', '/nacos/v1/console/namespaces');
  const list = arr(body && body.data).map(n => ({ id: String(n.namespace ?? ''), name: String(n.namespaceShowName || n.namespace || 'public') }));
  state.namespaces = list.length ? list : [{ id: '', name: 'public' }];
  const sel = document.getElementById('ns-select');
  const current = sel.value;
  sel.replaceChildren(...state.namespaces.map(n => el('option', { value: n.id }, n.name + (n.id ? ' (' + n.id + ')' : ''))));
  sel.value = state.namespaces.some(n => n.id === current) ? current : '';
  return body;
}

function parseRoute() {
  const h = location.hash.replace(/^#\/?/, '');
  const i = h.indexOf('?');
  return { name: (i < 0 ? h : h.slice(0, i)) || 'services', params: new URLSearchParams(i < 0 ? '' : h.slice(i + 1)) };
}

// replaceRoute records a page's own state in the URL without remounting it.
function replaceRoute(name, params) {
  history.replaceState(null, '', href(name, params));
}

function mount() {
  const { name, params } = parseRoute();
  const make = pages[name] || pages.notfound;
  state.seq++;
  showError('');
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('current', a.dataset.page === name);
  document.body.classList.toggle('signed-out', name === 'login');
  const main = document.getElementById('main');
  main.replaceChildren();
  state.page = { name, refresh: make(main, params) };
  refresh();
}

// refresh reloads what the mounted page shows. What a refresh reads is
// dropped when another refresh, or another page, started meanwhile: an
// older answer never overwrites a newer one.
async function refresh() {
  const page = state.page, seq = ++state.seq;
  if (!page || !page.refresh) return;
  const current = () => seq === state.seq;
  state.busy = true;
  try {
    await page.refresh(current);
    if (current()) {
      showError('');
      setLive('ok', 'live · ' + new Date().toLocaleTimeString());
    }
  } catch (e) {
    if (current()) await failed(e);
  } finally {
    state.busy = false;
  }
}

// failed shows a refusal; a 403 whose token does not even list the
// namespaces (which any signed-in user may) means signing in (again: then
// the login page says why).
async function failed(e) {
  if (e instanceof ApiError && e.status === 403) {
    const hadToken = session.token() !== '';
    let authenticated = false;
    try {
      await api('GET', '/nacos/v1/console/namespaces');
      authenticated = true;
    } catch (_) { /* not signed in, or the token is no longer good */ }
    if (!authenticated) {
      session.clear();
      showUser();
      state.loginReason = hadToken ? e.message : '';
      location.hash = href('login', { next: location.hash.slice(1) });
      return;
    }
  }
  setLive(e instanceof ApiError && e.status === 0 ? 'down' : 'stale', e instanceof ApiError && e.status === 0 ? 'server unreachable' : 'error');
  showError(e.message);
}

function tick() {
  if (document.hidden || state.busy || (state.page && state.page.name === 'login')) return;
  refresh();
}

// ---- pages: each mounts its static parts and returns its refresh ----

const pages = {};

pages.notfound = main => {
  main.append(el('h1', null, 'No such page'), el('p', null, link('services', null, 'Go to the services')));
  return null;
};

pages.login = (main, params) => {
  const why = state.loginReason;
  state.loginReason = '';
  const user = el('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true });
  const pass = el('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const msg = el('p', { id: 'login-error', class: 'error', role: 'alert', hidden: !why }, why || '');
  const submit = el('button', { id: 'login-submit', type: 'submit', class: 'primary' }, 'Log in');
  const form = el('form', { id: 'login', class: 'login' },
    el('h1', null, 'Log in to Sextant'),
    el('p', { class: 'muted' }, 'This server requires a token: log in as a user of its auth configuration.'),
    el('label', null, 'User', user), el('label', null, 'Password', pass), msg, submit);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    submit.disabled = true;
    try {
      const ans = await api('POST', '/nacos/v1/auth/login', { username: user.value, password: pass.value });
      if (!ans || typeof ans.accessToken !== 'string') throw new ApiError(0, 'the server answered no token');
      session.save(ans.accessToken, String(ans.username || user.value), Number(ans.tokenTtl) || 0);
      showUser();
      await loadNamespaces().catch(() => {});
      const next = params.get('next') || '';
      location.hash = next.startsWith('/') && !next.startsWith('/login') ? '#' + next : href('services');
    } catch (e) {
      msg.textContent = e.status === 403 ? 'Wrong user or password.' : e.message;
      msg.hidden = false;
      submit.disabled = false;
    }
  });
  main.append(form);
  setLive('stale', 'signed out');
  user.focus();
  return null;
};

// pageNo reads a page number of a route (1 if it is not one).
function pageNo(v) {
  const n = parseInt(v || '1', 10);
  return n >= 1 && n < 1e7 ? n : 1;
}

// pageSize reads a page size of a route (one of PAGE_SIZES).
function pageSize(v) {
  const n = parseInt(v || '', 10);
  return PAGE_SIZES.includes(n) ? n : PAGE_SIZES[0];
}

// pager renders page controls; onGo(-1) and onGo(+1) move back and forth.
function pager(id, onGo) {
  const info = el('span', { class: 'muted', id: id + '-info' });
  const prev = el('button', { type: 'button', id: id + '-prev', onclick: () => onGo(-1) }, '‹ Previous');
  const next = el('button', { type: 'button', id: id + '-next', onclick: () => onGo(+1) }, 'Next ›');
  return {
    node: el('div', { class: 'pager', id }, prev, info, next),
    // update shows page of total items (noun: what one item is).
    update(page, size, total, noun) {
      const pages = Math.max(1, Math.ceil(total / size));
      info.textContent = 'Page ' + fmtNum(page) + ' of ' + fmtNum(pages) + ' · ' + fmtNum(total) + ' ' + noun + (total === 1 ? '' : 's');
      prev.disabled = page <= 1;
      next.disabled = page >= pages;
      return pages;
    },
  };
}

// debounce calls fn once calls stop for ms.
function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

// sextant reads one page of a list of Sextant's operator API
// (/v1/sextant/...): {count, items}.
async function sextant(path, params) {
  const data = await api('GET', '/v1/sextant/' + path, params);
  return { count: Number(data && data.count) || 0, items: arr(data && data.items) };
}

// forbidden reports whether e is a refusal for want of rights.
function forbidden(e) { return e instanceof ApiError && e.status === 403; }

pages.services = (main, params) => {
  const s = {
    ns: params.has('ns') ? params.get('ns') : selectedNamespace(),
    q: params.get('q') || '', group: params.get('group') || '', page: pageNo(params.get('page')), size: pageSize(params.get('size')),
  };
  document.getElementById('ns-select').value = s.ns;
  const title = el('p', { class: 'muted' });
  const search = el('input', { type: 'search', id: 'services-search', placeholder: 'Service name contains…', value: s.q, 'aria-label': 'Search services' });
  const group = el('input', { type: 'search', id: 'services-group', placeholder: 'Group (exact)', value: s.group, 'aria-label': 'Filter by group' });
  const size = el('select', { id: 'services-size', 'aria-label': 'Services per page' }, PAGE_SIZES.map(n => el('option', { value: n }, n + ' per page')));
  size.value = String(s.size);
  const t = table('services', [['Service'], ['Group'], ['Clusters', true], ['Instances', true], ['Healthy', true], ['Subscribers', true], ['Protection']]);
  let lastPage = 1;
  const pg = pager('services-pager', d => { s.page = Math.min(Math.max(1, s.page + d), lastPage); changed(); });
  const changed = () => { replaceRoute('services', s); refresh(); };
  const typed = debounce(() => { s.q = search.value; s.group = group.value.trim(); s.page = 1; changed(); }, 250);
  search.addEventListener('input', typed);
  group.addEventListener('input', typed);
  size.addEventListener('change', () => { s.size = Number(size.value); s.page = 1; changed(); });
  main.append(el('h1', null, 'Services'), title, el('div', { class: 'toolbar' }, search, group, size), t.table, pg.node);
  return async current => {
    const { count, rows } = await listServices(s);
    if (!current()) return;
    title.textContent = 'In namespace ' + namespaceName(s.ns) + '.';
    lastPage = pg.update(s.page, s.size, count, 'service');
    fill(t, rows.map(v => [
      link('service', { ns: s.ns, group: v.group, name: v.name }, v.name), v.group,
      { num: v.clusters }, { num: v.instances }, { num: v.healthy }, { num: v.subscribers },
      v.protection ? badge('threshold reached', 'warn') : badge('normal'),
    ]), s.q || s.group ? 'No service matches.' : 'No service in this namespace.');
  };
};

// listServices reads a page of services: from Sextant's API, or, for a
// user who is not a global admin, from Nacos's catalog (which has no
// subscriber counts, and takes the group as a substring).
async function listServices(s) {
  const page = { pageNo: s.page, pageSize: s.size };
  try {
    const ans = await sextant('services', { namespaceId: s.ns, groupName: s.group || undefined, search: s.q, ...page });
    return {
      count: ans.count,
      rows: ans.items.map(v => ({
        name: String(v.name), group: String(v.groupName), clusters: arr(v.clusters).length, instances: v.instances,
        healthy: v.healthy, subscribers: v.subscribers, protection: !!v.protectionReached,
      })),
    };
  } catch (e) {
    if (!forbidden(e)) throw e;
  }
  const ans = await api('GET', '/nacos/v1/ns/catalog/services', { namespaceId: s.ns, serviceNameParam: s.q, groupNameParam: s.group, ...page });
  return {
    count: Number(ans && ans.count) || 0,
    rows: arr(ans && ans.serviceList).map(v => ({
      name: String(v.name), group: String(v.groupName), clusters: v.clusterCount, instances: v.ipCount,
      healthy: v.healthyInstanceCount, subscribers: null, protection: v.triggerFlag === 'true',
    })),
  };
}

const LIST_PAGE = 100; // instances and subscribers per page

pages.service = (main, params) => {
  const svc = { ns: params.get('ns') || '', group: params.get('group') || 'DEFAULT_GROUP', name: params.get('name') || '' };
  const s = { ip: pageNo(params.get('ipage')), sp: pageNo(params.get('spage')) };
  const inst = table('instances', [['Address'], ['Cluster'], ['Weight', true], ['Healthy'], ['Enabled'], ['Ephemeral'], ['Metadata'], ['Client'], ['Owner node'], ['']]);
  const subs = table('subscribers', [['Client'], ['Type'], ['Address'], ['App'], ['Agent'], ['Clusters'], ['Owner node']]);
  const summary = el('div', { class: 'cards', id: 'service-summary' });
  let lastI = 1, lastS = 1;
  const changed = () => { replaceRoute('service', { ...svc, ipage: s.ip > 1 ? s.ip : '', spage: s.sp > 1 ? s.sp : '' }); refresh(); };
  const ipg = pager('instances-pager', d => { s.ip = Math.min(Math.max(1, s.ip + d), lastI); changed(); });
  const spg = pager('subscribers-pager', d => { s.sp = Math.min(Math.max(1, s.sp + d), lastS); changed(); });
  main.append(
    el('div', { class: 'crumbs' }, link('services', { ns: svc.ns }, 'Services'), ' / ', svc.group),
    el('h1', { id: 'service-name' }, svc.name),
    el('p', { class: 'muted' }, 'Group ' + svc.group + ' in namespace ' + namespaceName(svc.ns) + '.'),
    summary,
    el('h2', null, 'Instances'), inst.table, ipg.node,
    el('h2', null, 'Subscribers'), subs.table, spg.node);
  return async current => {
    const q = { namespaceId: svc.ns, groupName: svc.group, serviceName: svc.name };
    const [instances, subscribers] = await Promise.all([
      listInstances({ ...q, pageNo: s.ip, pageSize: LIST_PAGE }),
      sextant('subscribers', { ...q, pageNo: s.sp, pageSize: LIST_PAGE }).catch(e => {
        if (forbidden(e)) return null;
        throw e;
      }),
    ]);
    if (!current()) return;
    lastI = ipg.update(s.ip, LIST_PAGE, instances.count, 'instance');
    summary.replaceChildren(
      el('div', { class: 'card' }, el('b', null, fmtNum(instances.count)), instances.count === 1 ? 'instance' : 'instances'),
      el('div', { class: 'card' }, el('b', null, subscribers ? fmtNum(subscribers.count) : '–'), subscribers && subscribers.count === 1 ? 'subscriber' : 'subscribers'));
    fill(inst, instances.items.map(i => [
      el('span', { class: 'mono' }, i.ip + ':' + i.port), i.clusterName, { num: i.weight },
      yesNo(i.healthy, true), yesNo(i.enabled, true), yesNo(i.ephemeral, true), metadataChips(i.metadata),
      i.clientId ? link('client', { id: i.clientId }, i.clientId) : '–', i.ownerNode || '–',
      el('button', { type: 'button', class: 'edit', dataset: { address: i.ip + ':' + i.port }, onclick: () => editInstance(svc, i) }, 'Edit'),
    ]), 'No instance.');
    if (!subscribers) {
      spg.update(1, LIST_PAGE, 0, 'subscriber');
      fill(subs, [], 'Only a global admin sees the subscribers.');
      return;
    }
    lastS = spg.update(s.sp, LIST_PAGE, subscribers.count, 'subscriber');
    fill(subs, subscribers.items.map(c => [
      link('client', { id: c.clientId }, String(c.clientId)), String(c.clientType || '–'),
      el('span', { class: 'mono' }, c.port ? c.ip + ':' + c.port : String(c.ip || '–')),
      String(c.app || '–'), nowrap(String(c.agent || '–')), String(c.clusters || 'all'), String(c.ownerNode || '–'),
    ]), 'No subscriber.');
  };
};

// listInstances reads a page of a service's instances, enabled or not,
// with the client that publishes each and the node that owns that client;
// for a user who is not a global admin, Nacos's instance list (the enabled
// instances, without their clients).
async function listInstances(q) {
  let ans;
  try {
    ans = await sextant('instances', q);
  } catch (e) {
    if (!forbidden(e)) throw e;
    const view = await api('GET', '/nacos/v1/ns/instance/list', { namespaceId: q.namespaceId, groupName: q.groupName, serviceName: q.serviceName });
    const hosts = arr(view && view.hosts);
    ans = { count: hosts.length, items: hosts.slice((q.pageNo - 1) * q.pageSize, q.pageNo * q.pageSize) };
  }
  return {
    count: ans.count,
    items: ans.items.map(h => ({
      ip: String(h.ip), port: Number(h.port), clusterName: String(h.clusterName || ''), weight: Number(h.weight),
      healthy: !!h.healthy, enabled: !!h.enabled, ephemeral: !!h.ephemeral,
      metadata: h.metadata && typeof h.metadata === 'object' ? h.metadata : {},
      clientId: h.clientId ? String(h.clientId) : '', ownerNode: h.ownerNode ? String(h.ownerNode) : '',
    })),
  };
}

// editing is the instance the edit dialog is open for: {svc, inst}.
let editing = null;

// editInstance opens the edit dialog for an instance; saving writes it with
// PUT /nacos/v1/ns/instance.
function editInstance(svc, inst) {
  const dlg = document.getElementById('edit');
  const weight = document.getElementById('edit-weight');
  const enabled = document.getElementById('edit-enabled');
  const metadata = document.getElementById('edit-metadata');
  const err = document.getElementById('edit-error');
  document.getElementById('edit-what').textContent = inst.ip + ':' + inst.port + ' (cluster ' + inst.clusterName + ') of ' + svc.group + '@@' + svc.name;
  weight.value = String(inst.weight);
  enabled.checked = !!inst.enabled;
  metadata.value = JSON.stringify(inst.metadata || {}, null, 2);
  err.hidden = true;
  editing = { svc, inst };
  dlg.showModal();
}

async function saveEdit(ev) {
  ev.preventDefault();
  if (!editing) return;
  const { svc, inst } = editing;
  const err = document.getElementById('edit-error');
  const save = document.getElementById('edit-save');
  const md = document.getElementById('edit-metadata').value.trim() || '{}';
  try {
    const parsed = JSON.parse(md);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
  } catch (e) {
    err.textContent = 'Metadata must be a JSON object of strings: ' + clip(e.message);
    err.hidden = false;
    return;
  }
  save.disabled = true;
  try {
    await api('PUT', '/nacos/v1/ns/instance', {
      namespaceId: svc.ns, groupName: svc.group, serviceName: svc.name, ip: inst.ip, port: inst.port,
      clusterName: inst.clusterName, ephemeral: inst.ephemeral,
      weight: document.getElementById('edit-weight').value,
      enabled: document.getElementById('edit-enabled').checked, metadata: md,
    });
    editing = null;
    document.getElementById('edit').close();
    refresh();
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  } finally {
    save.disabled = false;
  }
}

pages.namespaces = main => {
  const t = table('namespaces', [['Namespace'], ['ID'], ['Description'], ['Services', true]]);
  main.append(el('h1', null, 'Namespaces'), t.table);
  return async current => {
    const body = await loadNamespaces();
    const list = arr(body && body.data);
    const counts = await Promise.all(list.map(n => listServices({ ns: String(n.namespace || ''), q: '', group: '', page: 1, size: 1 })
      .then(a => a.count, () => null)));
    if (!current()) return;
    fill(t, list.map((n, i) => [
      link('services', { ns: n.namespace || '' }, String(n.namespaceShowName || n.namespace || 'public')),
      el('span', { class: 'mono' }, String(n.namespace || '(public)')), String(n.namespaceDesc || ''), { num: counts[i] },
    ]), 'No namespace.');
  };
};

pages.clients = (main, params) => {
  const s = { page: pageNo(params.get('page')), size: pageSize(params.get('size')) };
  const t = table('clients', [['Client'], ['Type'], ['Address'], ['App'], ['Version'], ['Owner node'], ['Instances', true], ['Subscriptions', true], ['Last active']]);
  let lastPage = 1;
  const pg = pager('clients-pager', d => { s.page = Math.min(Math.max(1, s.page + d), lastPage); replaceRoute('clients', s); refresh(); });
  main.append(el('h1', null, 'Clients'),
    el('p', { class: 'muted' }, 'Every client this node holds: its own connections and HTTP clients, and the other members\' replicas.'),
    t.table, pg.node);
  return async current => {
    const ans = await sextant('clients', { pageNo: s.page, pageSize: s.size });
    if (!current()) return;
    lastPage = pg.update(s.page, s.size, ans.count, 'client');
    fill(t, ans.items.map(c => [
      link('client', { id: c.clientId }, String(c.clientId)), String(c.clientType || '–'),
      el('span', { class: 'mono' }, c.ip ? c.ip + ':' + c.port : '–'), String(c.app || '–'), nowrap(String(c.version || '–')),
      String(c.ownerNode || '–'), { num: c.instances }, { num: c.subscriptions }, nowrap(fmtTime(c.lastUpdated)),
    ]), 'No client.');
  };
};

pages.client = (main, params) => {
  const id = params.get('id') || '';
  const details = el('dl', { class: 'details', id: 'client-details' });
  const pub = table('client-published', [['Service'], ['Group'], ['Namespace'], ['Instance'], ['Cluster']]);
  const sub = table('client-subscribed', [['Service'], ['Group'], ['Namespace'], ['App'], ['Address']]);
  main.append(el('div', { class: 'crumbs' }, link('clients', null, 'Clients')), el('h1', { class: 'mono' }, id), details,
    el('h2', null, 'Publishes'), pub.table, el('h2', null, 'Subscribes to'), sub.table);
  return async current => {
    const q = { clientId: id };
    const [d, published, subscribed] = await Promise.all([
      api('GET', '/nacos/v2/ns/client', q),
      api('GET', '/nacos/v2/ns/client/publish/list', q).then(arr),
      api('GET', '/nacos/v2/ns/client/subscribe/list', q).then(arr),
    ]);
    if (!current()) return;
    const rows = [['Type', d.clientType], ['Address', d.clientIp ? d.clientIp + ':' + d.clientPort : ''], ['App', d.appName],
      ['Version', d.version], ['Last active', fmtTime(d.lastUpdatedTime)]];
    details.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', null, k), el('dd', null, v === undefined || v === null || v === '' ? '–' : String(v))]));
    const svcLink = x => link('service', { ns: x.namespace === 'public' ? '' : x.namespace, group: x.group, name: x.serviceName }, String(x.serviceName));
    fill(pub, published.map(x => {
      const r = x.registeredInstance || {};
      return [svcLink(x), String(x.group), String(x.namespace), el('span', { class: 'mono' }, r.ip + ':' + r.port), String(r.cluster || '')];
    }), 'Publishes nothing.');
    fill(sub, subscribed.map(x => {
      const si = x.subscriberInfo || {};
      return [svcLink(x), String(x.group), String(x.namespace), String(si.app || '–'), String(si.addr || '–')];
    }), 'Subscribes to nothing.');
  };
};

// stateBadge shows a state, good when it is the good one.
function stateBadge(st, good, bad) {
  st = String(st || '–');
  return badge(st, st === good ? 'ok' : bad.includes(st) ? 'bad' : 'warn');
}

pages.members = main => {
  const t = table('members', [['Member'], ['State'], ['This node'], ['Last report'], ['Failed reports', true]]);
  main.append(el('h1', null, 'Cluster members'), t.table);
  return async current => {
    const ans = await sextant('members', { pageSize: 1000 });
    if (!current()) return;
    fill(t, ans.items.map(m => [el('span', { class: 'mono' }, String(m.address)), stateBadge(m.state, 'UP', ['DOWN']),
      m.self ? badge('this node', 'ok') : '', nowrap(fmtTime(m.lastReport)), { num: m.failures }]), 'No member.');
  };
};

pages.plugins = main => {
  const t = table('plugins', [['Plugin'], ['Kind'], ['Role'], ['State'], ['PID', true], ['Restarts', true], ['Serving since'], ['Binary'], ['Last error']]);
  main.append(el('h1', null, 'Plugins'), el('p', { class: 'muted' }, 'The plugins this node runs, each in its own process.'), t.table);
  return async current => {
    const ans = await sextant('plugins', { pageSize: 1000 });
    if (!current()) return;
    fill(t, ans.items.map(p => [String(p.name), String(p.kind || '–'), String(p.role || '–'),
      stateBadge(p.state, 'serving', ['restarting', 'stopped']), { num: p.pid, plain: true }, { num: p.restarts }, nowrap(fmtTime(p.servingSince)),
      el('span', { class: 'mono' }, p.builtin ? 'built in' : String(p.path || '–')),
      p.lastError ? String(p.lastError) + ' (' + fmtTime(p.lastErrorTime) + ')' : '–']), 'No plugin.');
  };
};

// ---- start ----

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('edit-form').addEventListener('submit', saveEdit);
  document.getElementById('edit-cancel').addEventListener('click', () => { editing = null; document.getElementById('edit').close(); });
  document.getElementById('logout').addEventListener('click', () => {
    session.clear();
    showUser();
    location.hash = href('login');
  });
  document.getElementById('ns-select').addEventListener('change', () => {
    location.hash = href('services', { ns: selectedNamespace() });
  });
  window.addEventListener('hashchange', mount);
  document.addEventListener('visibilitychange', tick);
  setInterval(tick, POLL_MS);
  showUser();
  loadNamespaces().catch(() => {}).finally(mount);
});
