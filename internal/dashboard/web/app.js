// The siteflip dashboard: reads the agent's API (docs/design/dashboard.md)
// and draws the locations, groups and runs. Plain ES module, no build step;
// no inline script or style, so it runs under a strict Content-Security-Policy.

const TOKEN_KEY = 'siteflip.token';
const SVG = 'http://www.w3.org/2000/svg';
const HOUR = 3600 * 1000;
const ROLE_RANK = { viewer: 0, location: 0, anonymous: 0, operator: 1, admin: 2 };

const state = {
  token: null,
  config: null,
  // base is the origin the page reads now: '' for the agent that served it.
  base: '',
  site: '',
  status: null,
  runs: [],
  lag: new Map(), // group → {series: Map(key → series)}
  world: null,
};

const $ = (sel, root = document) => root.querySelector(sel);

// h builds an element: h('a', {href: '#/'}, 'text', child…).
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function announce(text) {
  const p = h('p', {}, text);
  const box = $('#announce');
  box.append(p);
  while (box.childNodes.length > 5) box.firstChild.remove();
}

// ---- Signing in -----------------------------------------------------------

function takeTokenFromAddress() {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search + '#/');
  }
  state.token = sessionStorage.getItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const hd = { ...extra };
  if (state.token) hd.Authorization = 'Bearer ' + state.token;
  return hd;
}

// api calls the location the page reads now; it throws an Error carrying
// the server's message and the HTTP status.
async function api(path, { method = 'GET', body, base = state.base, signal } = {}) {
  const opts = { method, headers: headers(body ? { 'Content-Type': 'application/json' } : {}), signal, cache: 'no-store' };
  if (body) opts.body = JSON.stringify(body);
  const res = await fetch(base + path, opts);
  const text = await res.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch { doc = null; }
  if (!res.ok) {
    const err = new Error((doc && doc.error) || text.trim() || res.status + ' ' + res.statusText);
    err.status = res.status;
    throw err;
  }
  return doc;
}

function showLogin(message) {
  $('#login').hidden = false;
  $('#view').hidden = true;
  $('#login-error').textContent = message || '';
  $('#login-token').focus();
}

async function start() {
  takeTokenFromAddress();
  $('#login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('#login-token').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    state.token = t;
    $('#login-token').value = '';
    signIn();
  });
  $('#signout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = '#/';
    location.reload();
  });
  setupDialog();
  window.addEventListener('hashchange', () => { render(); $('#view').focus({ preventScroll: true }); });
  let resizing;
  window.addEventListener('resize', () => { clearTimeout(resizing); resizing = setTimeout(render, 150); });
  await signIn();
}

async function signIn() {
  let cfg;
  try {
    cfg = await api('/v1/ui/config');
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      if (state.token && err.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      state.token = err.status === 401 ? null : state.token;
      showLogin(err.message);
    } else {
      showLogin('Cannot reach this agent: ' + err.message);
    }
    return;
  }
  state.config = cfg;
  state.site = cfg.answered_by;
  $('#login').hidden = true;
  $('#view').hidden = false;
  $('#installation').textContent = cfg.installation || '';
  const p = cfg.principal || {};
  $('#who-text').textContent = `${p.name || 'anonymous'} (${p.role || 'viewer'}${p.via ? ', ' + p.via : ''})`;
  $('#who').hidden = false;
  render();
  follow();
}

function role() { return (state.config && state.config.principal && state.config.principal.role) || 'viewer'; }
function may(min) { return (ROLE_RANK[role()] ?? 0) >= ROLE_RANK[min]; }

// ---- Live data: server-sent events over fetch -----------------------------

function setLive(st, site) {
  const el = $('#live');
  el.dataset.state = st;
  el.dataset.site = site || '';
  const words = { live: 'live from', reconnecting: 'connecting to', offline: 'offline; trying' };
  $('#live-text').textContent = `${words[st]} ${site || '—'}`;
}

// follow reads the events of one location after another: when a stream
// ends, fails, stays silent or says its agent cannot read the control
// plane, it goes on to the next location of /v1/ui/config, round-robin.
let following = false;

async function follow() {
  if (following) return;
  following = true;
  try {
    await followLocations();
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    setLive('offline', state.site);
    showLogin(err.message);
  }
  following = false;
}

async function followLocations() {
  const locs = (state.config.locations || []).filter((l) => l.url);
  let i = Math.max(0, locs.findIndex((l) => l.name === state.config.answered_by));
  let base = '';
  let site = state.config.answered_by;
  let backoff = 500;
  let failures = 0;
  for (;;) {
    setLive(failures > locs.length ? 'offline' : 'reconnecting', site);
    const got = await readStream(base, site);
    if (got) { backoff = 500; failures = 0; } else { failures++; }
    setLive(failures > locs.length ? 'offline' : 'reconnecting', site);
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 3000);
    if (locs.length > 0) {
      i = (i + 1) % locs.length;
      base = locs[i].url.replace(/\/+$/, '');
      if (base === location.origin) base = '';
      site = locs[i].name;
    }
  }
}

// readStream reads /v1/events from base until it ends; it says whether
// any event came.
async function readStream(base, site) {
  const ctl = new AbortController();
  let got = false;
  let quiet;
  const watch = () => { clearTimeout(quiet); quiet = setTimeout(() => ctl.abort(), 25000); };
  try {
    watch();
    const res = await fetch(base + '/v1/events', { headers: headers({ Accept: 'text/event-stream' }), signal: ctl.signal, cache: 'no-store' });
    if (res.status === 401) {
      let msg = 'signed out';
      try { msg = (await res.json()).error || msg; } catch { /* not JSON */ }
      const err = new Error(msg);
      err.status = 401;
      throw err;
    }
    if (!res.ok || !res.body) throw new Error('events: ' + res.status);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let ev = { type: 'message', data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      watch();
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
        if (buf[nl] === '\r' && nl === buf.length - 1) break; // maybe \r\n split between reads
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (ev.data.length) {
            if (ev.type === 'unavailable') {
              unavailable(ev.data.join('\n'), site);
              return got;
            }
            onEvent(ev.type, ev.data.join('\n'), base, site, !got);
            got = true;
          }
          ev = { type: 'message', data: [] };
        } else if (line.startsWith(':')) {
          continue;
        } else {
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          let val = c < 0 ? '' : line.slice(c + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'event') ev.type = val;
          else if (field === 'data') ev.data.push(val);
        }
      }
    }
  } catch (err) {
    // A lost agent, a refused stream: go on to the next location. A token
    // that expired is refused by every location alike: sign in again.
    if (err.status === 401) throw err;
  } finally {
    clearTimeout(quiet);
    ctl.abort();
  }
  return got;
}

// unavailable reports that the agent read cannot read the control plane;
// the page leaves it for another location.
function unavailable(data, site) {
  let doc = {};
  try { doc = JSON.parse(data); } catch { /* words only */ }
  announce(`${doc.site || site} cannot read the control plane${doc.error ? ': ' + doc.error : ''}; trying another location`);
}

// onEvent takes one status or runs document; first says it is the first
// of a stream, which makes base the location the page reads.
function onEvent(type, data, base, site, first) {
  let doc;
  try { doc = JSON.parse(data); } catch { return; }
  if (first) {
    const moved = state.base !== base;
    state.base = base;
    state.site = site;
    setLive('live', site);
    if (moved) announce(`Now reading from ${site}`);
    // A new stream: reload the lag history the page shows.
    state.lag.clear();
  }
  if (type === 'status') {
    noteChanges(state.status, doc);
    state.status = doc;
    appendLag(doc);
    render();
  } else if (type === 'runs') {
    noteRunChanges(state.runs, doc.runs || []);
    state.runs = doc.runs || [];
    render();
  }
}

function noteChanges(old, now) {
  if (!old) return;
  const before = new Map(old.sites.map((x) => [x.name, x]));
  for (const x of now.sites) {
    const b = before.get(x.name);
    if (b && (b.up !== x.up || b.lost !== x.lost)) announce(`${x.name} is ${siteWord(x)}`);
  }
  const gb = new Map(old.groups.map((g) => [g.name, g]));
  for (const g of now.groups) {
    const b = gb.get(g.name);
    if (b && (b.state !== g.state || b.active_site !== g.active_site)) announce(`Group ${g.name}: ${g.state} at ${g.active_site || 'no site'}`);
  }
  if (old.controller !== now.controller) announce(`Controller: ${now.controller || 'none'}`);
}

function noteRunChanges(old, now) {
  const before = new Map(old.map((r) => [r.id, r.state]));
  for (const r of now) {
    if (before.has(r.id) && before.get(r.id) !== r.state) announce(`Run ${r.id}: ${r.state}`);
    else if (!before.has(r.id) && old.length) announce(`Run ${r.id} started: ${r.action} ${r.group}`);
  }
}

// ---- Lag history ----------------------------------------------------------

const lagKey = (res, site) => res + '@' + site;

function appendLag(st) {
  const at = st.read_at || new Date().toISOString();
  for (const g of st.groups) {
    const lg = state.lag.get(g.name);
    if (!lg) continue;
    for (const r of g.resources) {
      for (const rs of r.sites) {
        if (rs.role !== 'standby') continue;
        const k = lagKey(r.name, rs.site);
        let ser = lg.series.get(k);
        if (!ser) { ser = { group: g.name, resource: r.name, site: rs.site, max_data_loss_seconds: g.max_data_loss_seconds, points: [] }; lg.series.set(k, ser); }
        const last = ser.points[ser.points.length - 1];
        if (last && last.at === at) continue;
        const p = { at, streaming: !!rs.streaming };
        if (rs.lag_seconds !== undefined) p.lag_seconds = rs.lag_seconds;
        if (rs.lag_bytes !== undefined) p.lag_bytes = rs.lag_bytes;
        ser.points.push(p);
        const cut = Date.parse(at) - HOUR;
        while (ser.points.length && Date.parse(ser.points[0].at) < cut) ser.points.shift();
      }
    }
  }
}

async function loadLag(group) {
  if (state.lag.has(group)) return;
  const lg = { series: new Map(), loading: true };
  state.lag.set(group, lg);
  try {
    const doc = await api('/v1/lag?group=' + encodeURIComponent(group));
    for (const ser of doc.series || []) {
      if (ser.group !== group) continue;
      const k = lagKey(ser.resource, ser.site);
      const live = lg.series.get(k);
      // Points appended while the history loaded come after it.
      const pts = (ser.points || []).slice();
      if (live) for (const p of live.points) if (!pts.length || p.at > pts[pts.length - 1].at) pts.push(p);
      lg.series.set(k, { ...ser, points: pts });
    }
  } catch (err) {
    lg.error = err.message;
  }
  lg.loading = false;
  if (state.lag.get(group) === lg) render();
}

// ---- Rendering ------------------------------------------------------------

function route() {
  const hsh = decodeURIComponent(location.hash.replace(/^#/, ''));
  let m;
  if ((m = hsh.match(/^\/group\/(.+)$/))) return { view: 'group', name: m[1] };
  if (hsh === '/runs') return { view: 'runs' };
  if ((m = hsh.match(/^\/run\/(.+)$/))) return { view: 'run', id: m[1] };
  return { view: 'overview' };
}

// render redraws the view from the state; it keeps the focus on the
// element that had it (by id or data-key), so a keyboard user is not
// thrown back to the top on each event.
function render() {
  if (!state.config) return;
  const view = $('#view');
  const active = document.activeElement;
  const key = active && view.contains(active) ? (active.id ? '#' + CSS.escape(active.id) : active.dataset.key ? `[data-key="${CSS.escape(active.dataset.key)}"]` : null) : null;
  const r = route();
  for (const a of document.querySelectorAll('[data-nav]')) {
    if ((a.dataset.nav === 'runs') === (r.view === 'runs' || r.view === 'run')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  let content;
  if (!state.status && r.view !== 'runs' && r.view !== 'run') content = [h('p', { class: 'muted' }, 'Waiting for the first status…')];
  else if (r.view === 'group') content = groupView(r.name);
  else if (r.view === 'runs') content = runsView();
  else if (r.view === 'run') content = runView(r.id);
  else content = overview();
  view.replaceChildren(...content);
  document.title = 'siteflip' + (state.config.installation ? ' · ' + state.config.installation : '');
  if (key) { const el = view.querySelector(key); if (el) el.focus({ preventScroll: true }); }
}

function siteWord(x) { return x.lost ? 'lost' : x.up ? 'up' : 'down'; }
function fmtSec(v) {
  if (v === undefined || v === null) return '—';
  if (v < 1) return v.toFixed(2) + ' s';
  if (v < 120) return v.toFixed(1) + ' s';
  if (v < 7200) return (v / 60).toFixed(1) + ' min';
  return (v / 3600).toFixed(1) + ' h';
}
function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

const GOOD = new Set(['protected', 'succeeded', 'done']);
const BUSY = new Set(['switching-over', 'failing-over', 'failing-back', 'reprotecting', 'initializing', 'running', 'rolling-back', 'pending']);
function tone(st) { return GOOD.has(st) ? 'good' : BUSY.has(st) ? 'busy' : st === 'skipped' ? 'muted' : 'bad'; }
const ICON = { good: '✔', busy: '◐', bad: '✖', muted: '–' };
function badge(st) {
  const t = tone(st);
  return h('span', { class: 'badge ' + t }, h('span', { 'aria-hidden': 'true' }, ICON[t] + ' '), st);
}

function overview() {
  const st = state.status;
  const out = [h('h2', { class: 'visually-hidden' }, 'Overview')];
  out.push(h('section', { class: 'card map-card', 'aria-labelledby': 'map-title' },
    h('h2', { id: 'map-title' }, 'Locations'),
    mapSVG(st),
    siteList(st)));
  if (st.problems.length) {
    out.push(h('section', { class: 'card', 'aria-labelledby': 'prob-title' },
      h('h2', { id: 'prob-title' }, 'Problems'), problemList(st.problems)));
  }
  out.push(h('section', { class: 'card', 'aria-labelledby': 'groups-title' },
    h('h2', { id: 'groups-title' }, 'Groups'), groupsTable(st)));
  return out;
}

function siteList(st) {
  return h('ul', { class: 'sites' }, st.sites.map((x) => h('li', { class: 'site-' + siteWord(x) },
    h('span', { class: 'shape', 'aria-hidden': 'true' }, x.lost ? '✖' : x.up ? '●' : '■'), ' ',
    h('strong', {}, x.name), ` ${x.role}, ${siteWord(x)}`,
    x.name === st.controller ? h('span', { class: 'ctl' }, ' ★ controller') : '',
    x.reporting ? '' : ', not reporting',
    x.version ? h('span', { class: 'muted' }, ` · ${x.version}`) : '')));
}

function problemList(list) {
  return h('ul', { class: 'problems' }, list.map((p) => h('li', {},
    p.message,
    p.command ? h('div', {}, h('code', {}, p.command), p.on ? h('span', { class: 'muted' }, ` on ${p.on}`) : '') : '')));
}

// A readiness verdict as a word and a shape, never colour alone.
const VERDICT = {
  ready: { tone: 'good', shape: '✔', word: 'ready' },
  at_risk: { tone: 'busy', shape: '▲', word: 'at risk' },
  not_ready: { tone: 'bad', shape: '✖', word: 'not ready' },
  note: { tone: 'muted', shape: 'ℹ', word: 'note' },
};

function verdictBadge(v) {
  const x = VERDICT[v] || { tone: 'muted', shape: '?', word: v };
  return h('span', { class: 'badge ' + x.tone, 'data-verdict': v }, h('span', { 'aria-hidden': 'true' }, x.shape + ' '), x.word);
}

// readinessVerdict is the group's verdict, or 'unknown' from an agent
// that judges none.
function readinessVerdict(g) { return g.readiness ? g.readiness.verdict : 'unknown'; }

// readiness is the groups table's cell: the verdict and the reasons that
// make it (notes are on the group's page); from an agent that judges no
// verdict, each standby's failover readiness as before.
function readiness(g) {
  if (g.readiness) {
    const worse = g.readiness.reasons.filter((r) => r.severity !== 'note');
    return [verdictBadge(g.readiness.verdict),
      worse.length ? h('ul', { class: 'reasons' }, worse.map((r) => h('li', { 'data-kind': r.kind, 'data-severity': r.severity }, r.message))) : ''];
  }
  const parts = [];
  for (const r of g.resources) {
    if (r.class !== 'data') continue;
    for (const rs of r.sites) {
      if (rs.site === g.active_site || rs.failover_ready === undefined) continue;
      const lag = rs.lag_seconds !== undefined ? fmtSec(rs.lag_seconds) : rs.last_known_lag ? 'last ' + fmtSec(rs.last_known_lag.lag_seconds) : 'lag unknown';
      parts.push(h('div', { class: rs.failover_ready ? 'ok' : 'warn' },
        h('span', { 'aria-hidden': 'true' }, rs.failover_ready ? '✔ ' : '✖ '),
        `${r.name}@${rs.site}: ${rs.failover_ready ? 'ready' : 'not ready'}, ${lag}`));
    }
  }
  return parts.length ? parts : '—';
}

// readinessCard is the group page's readiness: the verdict, every reason
// with its fix, and the dependencies as each site last probed them.
function readinessCard(g) {
  const body = [h('h3', {}, 'Readiness ', verdictBadge(readinessVerdict(g)))];
  const reasons = (g.readiness && g.readiness.reasons) || [];
  if (!g.readiness) body.push(h('p', { class: 'muted' }, 'The agent that answers judges no readiness (an earlier version).'));
  else if (!reasons.length) body.push(h('p', {}, 'Nothing known stands in the way of a failover.'));
  else {
    body.push(h('ul', { class: 'reasons', id: 'readiness-reasons' }, reasons.map((r) => h('li', { 'data-kind': r.kind, 'data-severity': r.severity },
      verdictBadge(r.severity), ' ', h('span', { class: 'muted' }, r.kind + ': '), r.message,
      r.fix ? h('div', {}, 'fix: ', h('code', {}, r.fix)) : ''))));
  }
  const deps = g.dependencies || [];
  if (deps.length) {
    const sites = [...new Set(deps.map((d) => d.site))];
    const names = [...new Set(deps.map((d) => d.name))];
    body.push(h('div', { class: 'scroll' }, h('table', { class: 'dependencies' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Dependency'), sites.map((x) => h('th', { scope: 'col' }, x + (x === g.active_site ? ' (active)' : ''))))),
      h('tbody', {}, names.map((n) => {
        const first = deps.find((d) => d.name === n);
        return h('tr', { 'data-dependency': n },
          h('th', { scope: 'row' }, n, h('div', { class: 'muted' }, first.type + (first.critical ? ', critical' : ''))),
          sites.map((site) => {
            const d = deps.find((x) => x.name === n && x.site === site);
            if (!d) return h('td', {}, '—');
            const word = !d.known ? 'not probed' : d.reachable ? 'reachable' : 'unreachable';
            return h('td', { 'data-site': site, 'data-reachable': !d.known ? 'unknown' : String(d.reachable) },
              h('span', { class: d.known && d.reachable ? 'ok' : 'warn' }, h('span', { 'aria-hidden': 'true' }, !d.known ? '? ' : d.reachable ? '● ' : '■ '), word),
              d.target ? h('div', { class: 'muted' }, d.target) : '',
              d.error ? h('div', { class: 'error' }, d.error) : '');
          }));
      })))));
  }
  return h('section', { class: 'card', id: 'readiness' }, body);
}

function groupsTable(st) {
  return h('div', { class: 'scroll' }, h('table', { class: 'groups' },
    h('thead', {}, h('tr', {}, ['Group', 'Active site', 'State', 'Epoch', 'Policy', 'Paused', 'Readiness', 'Problems'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, st.groups.map((g) => h('tr', { class: 'group', 'data-group': g.name, 'data-state': g.state, 'data-active': g.active_site },
      h('th', { scope: 'row' }, h('a', { href: '#/group/' + encodeURIComponent(g.name), 'data-key': 'g-' + g.name }, g.name)),
      h('td', { 'data-label': 'Active site' }, g.active_site || '—', g.active_site && g.active_site !== g.preferred_site ? h('span', { class: 'muted' }, ` (prefers ${g.preferred_site})`) : ''),
      h('td', { 'data-label': 'State' }, badge(g.state), g.phase ? h('div', { class: 'muted' }, `${g.phase.action} ${g.phase.from || ''}→${g.phase.to || ''}`) : ''),
      h('td', { 'data-label': 'Epoch' }, String(g.epoch)),
      h('td', { 'data-label': 'Policy' }, g.policy),
      h('td', { 'data-label': 'Paused' }, g.paused ? h('span', { class: 'warn' }, h('span', { 'aria-hidden': 'true' }, '‖ '), 'paused', g.paused_by ? ` by ${g.paused_by}` : '') : 'no'),
      h('td', { 'data-label': 'Readiness', 'data-readiness': readinessVerdict(g) }, readiness(g)),
      h('td', { 'data-label': 'Problems' }, g.problems.length ? problemList(g.problems) : 'none'))))));
}

// ---- The map --------------------------------------------------------------

// The map's size in SVG units follows the width it is shown at, so that its
// labels keep their size on a phone; a narrow screen gets a taller map.
let MAP_W = 1000;
let MAP_H = 560;

function mapSize() {
  const w = Math.round(Math.min(1200, Math.max(340, ($('#view').clientWidth || 1000) - 40)));
  MAP_W = w;
  MAP_H = Math.round(w < 600 ? w * 0.95 : w * 0.42);
}

// projection fits the locations' bounding box, padded by at least 300 km,
// into the map with an equirectangular projection scaled by cos(latitude).
function projection(sites) {
  const lats = sites.map((x) => x.latitude);
  const lons = sites.map((x) => x.longitude);
  let minLat = Math.min(...lats), maxLat = Math.max(...lats);
  let minLon = Math.min(...lons), maxLon = Math.max(...lons);
  const lat0 = (minLat + maxLat) / 2;
  const k = Math.max(Math.cos(lat0 * Math.PI / 180), 0.2);
  const padLat = Math.max(300 / 111, (maxLat - minLat) * 0.25);
  const padLon = Math.max(300 / (111 * k), (maxLon - minLon) * 0.25);
  minLat -= padLat; maxLat += padLat; minLon -= padLon; maxLon += padLon;
  const spanX = (maxLon - minLon) * k;
  const spanY = maxLat - minLat;
  const scale = Math.min(MAP_W / spanX, MAP_H / spanY);
  const cx = (minLon + maxLon) / 2, cy = (minLat + maxLat) / 2;
  const f = (lon, lat) => [MAP_W / 2 + (lon - cx) * k * scale, MAP_H / 2 - (lat - cy) * scale];
  f.key = [cx, cy, k, scale, MAP_W, MAP_H].map((v) => v.toFixed(4)).join(',');
  f.box = [cx - MAP_W / 2 / (k * scale), cx + MAP_W / 2 / (k * scale), cy - MAP_H / 2 / scale, cy + MAP_H / 2 / scale];
  return f;
}

let outlineCache = { key: '', d: '' };
let worldLoading = false;

function loadWorld() {
  if (state.world || worldLoading || typeof topojson === 'undefined') return;
  worldLoading = true;
  fetch('/ui/vendor/world-atlas/countries-50m.json')
    .then((r) => r.json())
    .then((w) => { state.world = topojson.feature(w, w.objects.countries).features; render(); })
    .catch(() => { worldLoading = false; });
}

// outline is the path of the countries that reach into the map's box.
function outline(proj) {
  if (!state.world) { loadWorld(); return ''; }
  if (outlineCache.key === proj.key) return outlineCache.d;
  const [lon0, lon1, lat0, lat1] = proj.box;
  const parts = [];
  for (const f of state.world) {
    const g = f.geometry;
    if (!g) continue;
    const polys = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
    for (const poly of polys) {
      const outer = poly[0];
      let a = Infinity, b = -Infinity, c = Infinity, d = -Infinity;
      for (const [x, y] of outer) { if (x < a) a = x; if (x > b) b = x; if (y < c) c = y; if (y > d) d = y; }
      if (b < lon0 - 5 || a > lon1 + 5 || d < lat0 - 5 || c > lat1 + 5) continue;
      for (const ring of poly) {
        let first = true;
        for (const [x, y] of ring) {
          const [px, py] = proj(x, y);
          parts.push((first ? 'M' : 'L') + px.toFixed(1) + ' ' + py.toFixed(1));
          first = false;
        }
        parts.push('Z');
      }
    }
  }
  outlineCache = { key: proj.key, d: parts.join('') };
  return outlineCache.d;
}

// sees says whether location a reaches b's agent: from a's own row, else
// from b's seen_by/unseen_by; undefined when nobody knows.
function sees(a, b) {
  if (a.sees && b.name in a.sees) return a.sees[b.name];
  if ((b.seen_by || []).includes(a.name)) return true;
  if ((b.unseen_by || []).includes(a.name)) return false;
  return undefined;
}

function mapSVG(st) {
  const sites = st.sites;
  mapSize();
  const proj = projection(sites.length ? sites : [{ latitude: 50, longitude: 4 }]);
  const at = new Map(sites.map((x) => [x.name, proj(x.longitude, x.latitude)]));
  const desc = sites.map((x) => `${x.name} ${siteWord(x)}${x.name === st.controller ? ', controller' : ''}`).join('; ');
  const svg = s('svg', { id: 'map', class: MAP_W < 600 ? 'small' : undefined, viewBox: `0 0 ${MAP_W} ${MAP_H}`, role: 'img', 'aria-labelledby': 'map-svg-title map-svg-desc', preserveAspectRatio: 'xMidYMid meet' },
    s('title', { id: 'map-svg-title' }, 'Map of the locations'),
    s('desc', { id: 'map-svg-desc' }, desc),
    s('rect', { class: 'sea', x: 0, y: 0, width: MAP_W, height: MAP_H }),
    s('path', { class: 'land', d: outline(proj) }));
  const links = s('g', { class: 'links' });
  for (let i = 0; i < sites.length; i++) {
    for (let j = i + 1; j < sites.length; j++) {
      const a = sites[i], b = sites[j];
      const ab = sees(a, b), ba = sees(b, a);
      let seen;
      if (ab === true && ba === true) seen = 'both';
      else if (ab === undefined && ba === undefined) seen = 'unknown';
      else if (ab === true) seen = 'from';
      else if (ba === true) seen = 'to';
      else seen = 'none';
      const [x1, y1] = at.get(a.name), [x2, y2] = at.get(b.name);
      const words = { both: 'see each other', from: `only ${a.name} sees ${b.name}`, to: `only ${b.name} sees ${a.name}`, none: 'see each other not', unknown: 'not known' };
      links.append(s('line', { class: 'link seen-' + seen, 'data-from': a.name, 'data-to': b.name, 'data-seen': seen, x1, y1, x2, y2 },
        s('title', {}, `${a.name} ↔ ${b.name}: ${words[seen]}`)));
    }
  }
  svg.append(links);
  const labels = placeLabels(sites, at, st.controller);
  for (const x of sites) {
    const [px, py] = at.get(x.name);
    const word = siteWord(x);
    const ctl = x.name === st.controller;
    const g = s('g', { class: 'site site-' + word, 'data-site': x.name, 'data-up': String(x.up), 'data-lost': String(x.lost), 'data-controller': String(ctl), transform: `translate(${px.toFixed(1)} ${py.toFixed(1)})` });
    if (x.lost) g.append(s('path', { class: 'mark', d: 'M-9 -9L9 9M9 -9L-9 9' }));
    else if (x.up) g.append(s('circle', { class: 'mark', r: x.role === 'witness' ? 7 : 10 }));
    else g.append(s('rect', { class: 'mark', x: -9, y: -9, width: 18, height: 18 }));
    if (ctl) { g.prepend(s('circle', { class: 'ctl-ring', r: 16 })); g.append(s('path', { class: 'crown', d: star(0, 0, 7, 3) })); }
    const lb = labels.get(x.name);
    g.append(s('text', { class: 'label', x: lb.x, y: lb.y, 'text-anchor': lb.anchor }, x.name));
    g.append(s('text', { class: 'word', x: lb.x, y: lb.y + 17, 'text-anchor': lb.anchor }, word + (x.role === 'witness' ? ' · witness' : '') + (ctl ? ' · controller' : '')));
    svg.append(g);
  }
  const legend = s('g', { class: 'legend', transform: `translate(12 ${MAP_H - 70})${MAP_W < 600 ? ' scale(0.9)' : ''}` },
    s('rect', { class: 'legend-bg', x: -6, y: -16, width: 310, height: 80, rx: 4 }),
    s('circle', { class: 'mark site-up', cx: 4, cy: 0, r: 6 }), s('text', { x: 16, y: 5 }, 'up'),
    s('rect', { class: 'mark site-down', x: 52, y: -6, width: 12, height: 12 }), s('text', { x: 70, y: 5 }, 'down'),
    s('path', { class: 'mark site-lost', d: 'M112 -6L124 6M124 -6L112 6' }), s('text', { x: 130, y: 5 }, 'lost'),
    s('circle', { class: 'ctl-ring', cx: 186, cy: 0, r: 7 }), s('text', { x: 198, y: 5 }, 'controller'),
    s('line', { class: 'link seen-both', x1: 0, y1: 26, x2: 30, y2: 26 }), s('text', { x: 36, y: 31 }, 'both see'),
    s('line', { class: 'link seen-from', x1: 110, y1: 26, x2: 140, y2: 26 }), s('text', { x: 146, y: 31 }, 'one sees'),
    s('line', { class: 'link seen-none', x1: 220, y1: 26, x2: 250, y2: 26 }), s('text', { x: 256, y: 31 }, 'neither'),
    s('text', { x: 0, y: 55, class: 'attrib' }, 'Outline: Natural Earth'));
  svg.append(legend);
  return svg;
}

// placeLabels puts each location's name beside its mark, on the side away
// from the others where it can, and where it overlaps no other label or
// mark; the offsets are relative to the mark.
function placeLabels(sites, at, controller) {
  const n = sites.length || 1;
  const cx = sites.reduce((a, x) => a + at.get(x.name)[0], 0) / n;
  const cy = sites.reduce((a, x) => a + at.get(x.name)[1], 0) / n;
  const boxes = sites.map((x) => { const [px, py] = at.get(x.name); return [px - 12, py - 12, px + 12, py + 12]; });
  boxes.push([0, MAP_H - 90, 330, MAP_H]); // the legend
  const out = new Map();
  const overlap = (a, b) => Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) * Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  for (const x of sites) {
    const [px, py] = at.get(x.name);
    const w = Math.max(x.name.length * 10, 16 + (x.name === controller ? 150 : 90));
    const hgt = 38;
    const up = x.name === controller ? 14 : 0;
    const cands = {
      right: { x: 16, y: -2, anchor: 'start', box: [px + 14, py - 16, px + 14 + w, py - 16 + hgt] },
      left: { x: -16, y: -2, anchor: 'end', box: [px - 14 - w, py - 16, px - 14, py - 16 + hgt] },
      above: { x: 0, y: -24 - up, anchor: 'middle', box: [px - w / 2, py - 40 - up, px + w / 2, py - 40 - up + hgt] },
      below: { x: 0, y: 30, anchor: 'middle', box: [px - w / 2, py + 16, px + w / 2, py + 16 + hgt] },
    };
    const dx = px - cx, dy = py - cy;
    const order = Math.abs(dx) > Math.abs(dy) ? (dx < 0 ? ['left', 'above', 'below', 'right'] : ['right', 'below', 'above', 'left'])
      : (dy < 0 ? ['above', 'left', 'right', 'below'] : ['below', 'right', 'left', 'above']);
    let best = null, bestCost = Infinity;
    for (const name of order) {
      const c = cands[name];
      let cost = boxes.reduce((a, b) => a + overlap(c.box, b), 0);
      if (c.box[0] < 0 || c.box[2] > MAP_W || c.box[1] < 0 || c.box[3] > MAP_H) cost += 100000;
      if (cost < bestCost) { best = c; bestCost = cost; }
      if (cost === 0) break;
    }
    boxes.push(best.box);
    out.set(x.name, best);
  }
  return out;
}

function star(cx, cy, R, r) {
  const pts = [];
  for (let i = 0; i < 10; i++) {
    const rad = i % 2 ? r : R;
    const a = -Math.PI / 2 + i * Math.PI / 5;
    pts.push((cx + rad * Math.cos(a)).toFixed(1) + ' ' + (cy + rad * Math.sin(a)).toFixed(1));
  }
  return 'M' + pts.join('L') + 'Z';
}

// ---- A group --------------------------------------------------------------

const ACTIONS = ['switchover', 'failback', 'reprotect', 'drill', 'failover'];

function groupView(name) {
  const st = state.status;
  const g = st.groups.find((x) => x.name === name);
  if (!g) return [h('h2', {}, 'Group ' + name), h('p', {}, 'No such group in this installation.'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview'))];
  loadLag(g.name);
  const out = [h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' › ', g.name),
    h('h2', {}, 'Group ', g.name, ' ', badge(g.state))];
  const facts = [
    ['Active site', g.active_site || '—'], ['Preferred site', g.preferred_site], ['Epoch', String(g.epoch)],
    ['Policy', g.policy], ['Max data loss', fmtSec(g.max_data_loss_seconds)], ['RTO target', fmtSec(g.rto_target_seconds)],
    ['Paused', g.paused ? `yes, by ${g.paused_by || '?'}${g.pause_reason ? ': ' + g.pause_reason : ''}` : 'no'],
  ];
  if (g.run) facts.push(['Run in progress', h('a', { href: '#/run/' + encodeURIComponent(g.run) }, g.run)]);
  if (g.drill) facts.push(['Drill in progress', h('a', { href: '#/run/' + encodeURIComponent(g.drill) }, g.drill)]);
  if (g.decision) facts.push(['Needs a decision', `${g.decision.reason} — `, h('code', {}, g.decision.command)]);
  if (g.awaiting) facts.push(['Awaiting approval', `${g.awaiting.step}${g.awaiting.message ? ': ' + g.awaiting.message : ''}`]);
  out.push(factList(facts));
  if (may('operator')) out.push(actionBar(g));
  out.push(readinessCard(g));
  if (g.problems.length) out.push(h('section', { class: 'card' }, h('h3', {}, 'Problems'), problemList(g.problems)));
  out.push(h('section', { class: 'card' }, h('h3', {}, 'Resources'), resourcesTable(g)));
  out.push(h('section', { class: 'card' }, h('h3', {}, 'Lag over the last hour'), lagCharts(g)));
  return out;
}

function factList(facts) {
  return h('dl', { class: 'facts' }, facts.map(([k, ...v]) => h('div', {}, h('dt', {}, k), h('dd', {}, ...v))));
}

function actionBar(g) {
  const bar = h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions on ' + g.name });
  for (const a of ACTIONS) bar.append(h('button', { type: 'button', 'data-action': a, 'data-group': g.name, 'data-key': `act-${a}-${g.name}`, onclick: () => openConfirm(a, g.name) }, a));
  const pr = g.paused ? 'resume' : 'pause';
  bar.append(h('button', { type: 'button', 'data-action': pr, 'data-group': g.name, 'data-key': `act-${pr}-${g.name}`, onclick: () => openConfirm(pr, g.name) }, pr));
  return bar;
}

function resourcesTable(g) {
  const sites = [...new Set(g.resources.flatMap((r) => r.sites.map((x) => x.site)))];
  if (!g.resources.length) return h('p', {}, 'No resources.');
  return h('div', { class: 'scroll' }, h('table', { class: 'resources' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Resource'), sites.map((x) => h('th', { scope: 'col' }, x + (x === g.active_site ? ' (active)' : ''))))),
    h('tbody', {}, g.resources.map((r) => h('tr', { 'data-resource': r.name },
      h('th', { scope: 'row' }, r.name, h('div', { class: 'muted' }, `${r.type}, ${r.class}`)),
      sites.map((site) => {
        const rs = r.sites.find((x) => x.site === site);
        if (!rs) return h('td', {}, '—');
        const bits = [h('span', { class: rs.up ? 'ok' : 'warn' }, h('span', { 'aria-hidden': 'true' }, rs.up ? '● ' : '■ '), rs.role, rs.up ? '' : ' (down)')];
        if (rs.lag_seconds !== undefined) bits.push(h('div', {}, 'lag ', fmtSec(rs.lag_seconds)));
        else if (rs.lag_unknown) bits.push(h('div', { class: 'muted' }, 'lag unknown'));
        if (rs.failover_ready !== undefined) bits.push(h('div', {}, rs.failover_ready ? 'failover ready' : 'failover not ready'));
        if (rs.ready !== undefined) bits.push(h('div', {}, rs.ready ? 'ready' : 'not ready'));
        if (rs.target) bits.push(h('div', { class: 'muted' }, rs.target));
        if (rs.error) bits.push(h('div', { class: 'error' }, rs.error));
        return h('td', {}, bits);
      }))))));
}

function lagCharts(g) {
  const lg = state.lag.get(g.name);
  const standbys = [];
  for (const r of g.resources) {
    if (r.class !== 'data') continue;
    for (const rs of r.sites) if (rs.site !== g.active_site) standbys.push([r.name, rs.site]);
  }
  if (!standbys.length) return h('p', {}, 'No standby holds data for this group.');
  const out = [];
  if (lg && lg.error) out.push(h('p', { class: 'error' }, 'Lag history: ' + lg.error));
  else if (!lg || lg.loading) out.push(h('p', { class: 'muted' }, 'Loading the lag history…'));
  for (const [res, site] of standbys) {
    const ser = lg && lg.series.get(lagKey(res, site));
    out.push(lagChart(g, res, site, ser));
  }
  return out;
}

// niceCeil is the smallest of 1, 2, 2.5, 5 times a power of ten not below v.
function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function lagChart(g, res, site, ser) {
  const W = 600, H = 180, L = 48, R = 10, T = 10, B = 28;
  const now = state.status && state.status.read_at ? Date.parse(state.status.read_at) : Date.now();
  const t0 = now - HOUR;
  const pts = ((ser && ser.points) || []).filter((p) => Date.parse(p.at) >= t0);
  const limit = (ser && ser.max_data_loss_seconds) ?? g.max_data_loss_seconds;
  const known = pts.filter((p) => p.lag_seconds !== undefined);
  const peak = Math.max(0, ...known.map((p) => p.lag_seconds));
  const top = niceCeil(Math.max(peak, limit || 0, 1) * 1.1);
  const x = (t) => L + (t - t0) / HOUR * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const id = `lag-${g.name}-${res}-${site}`.replace(/[^A-Za-z0-9_-]/g, '_');
  const svg = s('svg', { class: 'lag', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': id + '-t', 'aria-describedby': id + '-s' },
    s('title', { id: id + '-t' }, `Lag of ${res} at ${site}`),
    s('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
    s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  for (const v of [0, top / 2, top]) {
    svg.append(s('text', { class: 'tick', x: L - 4, y: y(v) + 4, 'text-anchor': 'end' }, fmtSec(v)));
  }
  for (const m of [60, 45, 30, 15, 0]) {
    svg.append(s('text', { class: 'tick', x: x(now - m * 60000), y: H - 8, 'text-anchor': m === 60 ? 'start' : m === 0 ? 'end' : 'middle' }, m ? `−${m} min` : 'now'));
  }
  if (limit) {
    svg.append(s('line', { class: 'limit', x1: L, x2: W - R, y1: y(limit), y2: y(limit) }));
    svg.append(s('text', { class: 'tick limit-text', x: W - R - 2, y: y(limit) - 4, 'text-anchor': 'end' }, `max_data_loss ${fmtSec(limit)}`));
  }
  // One polyline per stretch of known lag: unknown samples break it.
  let run = [];
  const flush = () => { if (run.length) svg.append(s('polyline', { class: 'series', points: run.join(' ') })); run = []; };
  for (const p of pts) {
    if (p.lag_seconds === undefined) { flush(); continue; }
    run.push(x(Date.parse(p.at)).toFixed(1) + ',' + y(p.lag_seconds).toFixed(1));
  }
  flush();
  const last = known[known.length - 1];
  const over = limit ? known.filter((p) => p.lag_seconds > limit).length : 0;
  const summary = known.length
    ? `Lag of ${res} at ${site}: now ${fmtSec(last.lag_seconds)}, highest in the last hour ${fmtSec(peak)}, limit ${fmtSec(limit)}; ${over} of ${pts.length} samples over the limit${pts.length > known.length ? `, ${pts.length - known.length} unknown` : ''}.`
    : `Lag of ${res} at ${site}: no measurement in the last hour.`;
  return h('figure', { class: 'lag-figure', 'data-resource': res, 'data-site': site }, svg, h('figcaption', { id: id + '-s' }, summary));
}

// ---- Runs -----------------------------------------------------------------

function sortedRuns() {
  return state.runs.slice().sort((a, b) => (b.started_at || '').localeCompare(a.started_at || ''));
}

function runsView() {
  const runs = sortedRuns();
  return [h('h2', {}, 'Runs'), runs.length ? h('div', { class: 'scroll' }, h('table', { class: 'runs' },
    h('thead', {}, h('tr', {}, ['Run', 'Group', 'Action', 'From → to', 'By', 'Started', 'RTO', 'State'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, runs.map((r) => h('tr', { class: 'run', 'data-run': r.id, 'data-state': r.state },
      h('th', { scope: 'row' }, h('a', { href: '#/run/' + encodeURIComponent(r.id), 'data-key': 'run-' + r.id }, r.id)),
      h('td', {}, r.group), h('td', {}, r.action), h('td', {}, `${r.from || '—'} → ${r.to || '—'}`),
      h('td', {}, r.by), h('td', {}, fmtTime(r.started_at)), h('td', {}, fmtSec(r.rto_seconds)), h('td', {}, badge(r.state)))))))
    : h('p', {}, state.status ? 'No runs on record.' : 'Waiting for the runs…')];
}

function runView(id) {
  const r = state.runs.find((x) => x.id === id);
  const out = [h('p', { class: 'crumbs' }, h('a', { href: '#/runs' }, 'Runs'), ' › ', id)];
  if (!r) {
    out.push(h('h2', {}, 'Run ', id), h('p', {}, 'This run is not among the last runs the agent sends. Its report:'), reportLinks(id));
    return out;
  }
  const g = state.status && state.status.groups.find((x) => x.name === r.group);
  out.push(h('h2', {}, `${r.action} ${r.group} `, badge(r.state)));
  const facts = [['From → to', `${r.from || '—'} → ${r.to || '—'}`], ['By', r.by + (r.role ? ` (${r.role})` : '')],
    ['Started', fmtTime(r.started_at)], ['Ended', fmtTime(r.ended_at)],
    ['RTO', fmtSec(r.rto_seconds) + (g && g.rto_target_seconds ? ` (target ${fmtSec(g.rto_target_seconds)})` : '')]];
  if (r.measured_rto_seconds !== undefined) facts.push(['Measured outage', fmtSec(r.measured_rto_seconds)]);
  facts.push(['Data lost (RPO)', r.data_lost || (r.action === 'failover' && !r.data_lost_by ? 'not known yet' : 'none known')]);
  if (r.reason) facts.push(['Reason', r.reason + (r.ticket ? ` (${r.ticket})` : '')]);
  if (r.why) facts.push(['Why this site', r.why]);
  if (r.verification) facts.push(['Verification', r.verification]);
  out.push(factList(facts));
  if (r.error) out.push(h('p', { class: 'error', role: 'alert' }, 'Error: ', r.error));
  out.push(h('section', { class: 'card' }, h('h3', {}, 'Timeline'), timeline(r)));
  out.push(h('section', { class: 'card' }, h('h3', {}, 'Report'), reportLinks(r.id)));
  return out;
}

// timeline draws one row per step, its bar placed by its start and end
// relative to the run's start; steps of one wave overlap.
function timeline(r) {
  const start = Date.parse(r.started_at);
  const all = [...r.steps, ...(r.rollback || [])];
  let end = r.ended_at ? Date.parse(r.ended_at) : Date.now();
  for (const st of all) if (st.ended_at) end = Math.max(end, Date.parse(st.ended_at));
  const span = Math.max(end - start, 1000);
  const pct = (t) => Math.min(100, Math.max(0, (t - start) / span * 100));
  const rows = (steps, rollback) => steps.map((st) => {
    const bar = h('div', { class: 'track' });
    if (st.started_at) {
      const a = Date.parse(st.started_at);
      const b = st.ended_at ? Date.parse(st.ended_at) : end;
      const el = h('span', { class: 'bar ' + tone(st.state), title: `${((a - start) / 1000).toFixed(2)} s → ${((b - start) / 1000).toFixed(2)} s` });
      el.style.left = pct(a) + '%';
      el.style.width = Math.max(pct(b) - pct(a), 0.6) + '%';
      bar.append(el);
    }
    const took = st.started_at && st.ended_at ? ` ${fmtSec((Date.parse(st.ended_at) - Date.parse(st.started_at)) / 1000)}` : '';
    return h('div', { class: 'step', role: 'row', 'data-step': st.id, 'data-state': st.state, 'data-rollback': rollback ? 'true' : undefined },
      h('div', { class: 'step-name', role: 'rowheader' }, st.kind, st.resource ? ` ${st.resource}` : '', `@${st.site}`, st.wave ? h('span', { class: 'muted' }, ` · wave ${st.wave}`) : ''),
      h('div', { class: 'step-state', role: 'cell' }, badge(st.state), took, st.attempts > 1 ? ` · ${st.attempts} attempts` : ''),
      h('div', { class: 'step-bar', role: 'cell' }, bar),
      st.error ? h('div', { class: 'step-error error', role: 'cell' }, st.error) : '');
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => { const t = h('span', {}, fmtSec(span * f / 1000)); t.style.left = f * 100 + '%'; return t; });
  return h('div', { id: 'timeline', role: 'table', 'aria-label': 'Steps of run ' + r.id },
    h('div', { class: 'step axis', role: 'row' }, h('div', { role: 'columnheader' }, 'Step'), h('div', { role: 'columnheader' }, 'State'), h('div', { class: 'ticks', role: 'columnheader' }, ticks)),
    rows(r.steps, false),
    r.rollback && r.rollback.length ? [h('div', { class: 'rollback-title', role: 'row' }, h('div', { role: 'cell' }, rollbackTitle(r))), rows(r.rollback, true)] : []);
}

// rollbackTitle heads the rollback's steps, saying when none of them ran:
// they undo a run that fails before its activate step.
function rollbackTitle(r) {
  if (r.rollback.some((st) => st.state !== 'pending')) return 'Rollback';
  return r.state === 'running' ? 'Rollback (only if a step before activate fails)' : 'Rollback (not needed)';
}

function reportLinks(id) {
  return h('p', { class: 'reports' }, ['html', 'md', 'json'].map((f) => [h('a', {
    class: 'report', 'data-format': f, href: `/v1/runs/${encodeURIComponent(id)}/report?format=${f}`,
    onclick: (ev) => { ev.preventDefault(); download(id, f, ev.currentTarget); },
  }, `Report (${f})`), ' ']));
}

// download fetches a report with the Authorization header, which a plain
// link cannot send, and saves it.
async function download(id, format, link) {
  try {
    const res = await fetch(state.base + `/v1/runs/${encodeURIComponent(id)}/report?format=${format}`, { headers: headers() });
    if (!res.ok) {
      let msg = res.status + ' ' + res.statusText;
      try { msg = (await res.json()).error || msg; } catch { /* not JSON */ }
      throw new Error(msg);
    }
    const url = URL.createObjectURL(await res.blob());
    const a = h('a', { href: url, download: `${id}.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    announce(`Report of ${id}: ${err.message}`);
    link.after(h('span', { class: 'error' }, ` ${err.message}`));
  }
}

// ---- Actions: the confirm dialog -------------------------------------------

const dlg = { action: '', group: '', planned: false, seq: 0, opener: '' };

function setupDialog() {
  const d = $('#confirm');
  $('#confirm-cancel').addEventListener('click', () => d.close());
  $('#confirm-go').addEventListener('click', go);
  $('#confirm-target').addEventListener('change', dryRun);
  $('#confirm-accept-loss').addEventListener('change', () => {
    $('#confirm-name-row').hidden = !$('#confirm-accept-loss').checked;
    dryRun();
  });
  $('#confirm-name').addEventListener('input', updateGo);
  // Enter in a field must not close the dialog, nor start anything.
  $('#confirm-form').addEventListener('submit', (ev) => ev.preventDefault());
  // The browser gives the focus back to the button that opened the dialog;
  // when an event redrew the view meanwhile, that button is gone: focus
  // its successor.
  d.addEventListener('close', () => {
    const a = document.activeElement;
    if (a && a !== document.body && a.isConnected) return;
    const back = dlg.opener && $('#view').querySelector(`[data-key="${CSS.escape(dlg.opener)}"]`);
    if (back) back.focus();
  });
}

function needsName() { return dlg.action === 'failover' && $('#confirm-accept-loss').checked; }

function updateGo() {
  const ok = dlg.planned && (!needsName() || $('#confirm-name').value.trim() === dlg.group);
  $('#confirm-go').disabled = !ok;
}

const WHAT = {
  switchover: 'Planned move of the group to another site: no acknowledged write is lost.',
  failback: 'Switch the group back to its preferred site.',
  reprotect: 'Rebuild replication toward the active site.',
  drill: 'Bring up a copy at another site, check it and tear it down; the active site keeps serving.',
  failover: 'Recover the group at another site now, without its active site.',
  pause: 'Pause automatic failover and scheduled drills of the group until it is resumed.',
  resume: 'Resume automatic failover and scheduled drills of the group.',
};

function openConfirm(action, group) {
  const g = state.status.groups.find((x) => x.name === group);
  Object.assign(dlg, { action, group, planned: false, opener: `act-${action}-${group}` });
  $('#confirm-title').textContent = `${action} ${group}`;
  $('#confirm-what').textContent = WHAT[action] || '';
  $('#confirm-reason').value = '';
  $('#confirm-ticket').value = '';
  $('#confirm-name').value = '';
  $('#confirm-name-want').textContent = group;
  $('#confirm-result').replaceChildren();
  $('#confirm-go').textContent = action === 'pause' || action === 'resume' ? action : `Start ${action}`;
  const sel = $('#confirm-target');
  const sites = [...new Set((g ? g.resources : []).flatMap((r) => r.sites.map((x) => x.site)))].filter((x) => x !== (g && g.active_site));
  const withTarget = ['switchover', 'drill', 'failover'].includes(action);
  sel.replaceChildren(...(action === 'switchover' ? [] : [h('option', { value: '' }, 'let the planner choose')]), ...sites.map((x) => h('option', { value: x }, x)));
  $('#confirm-target-row').hidden = !withTarget;
  $('#confirm-accept-loss').checked = false;
  $('#confirm-loss-row').hidden = !(action === 'failover' && may('admin'));
  $('#confirm-name-row').hidden = true;
  $('#confirm').showModal();
  if (action === 'pause' || action === 'resume') {
    $('#confirm-plan').replaceChildren(h('p', {}, `Nothing to plan: this ${action}s ${group}.`));
    dlg.planned = true;
    updateGo();
    return;
  }
  dryRun();
}

function runRequest(dry) {
  const req = { group: dlg.group, action: dlg.action };
  const to = $('#confirm-target').value;
  if (to && !$('#confirm-target-row').hidden) req.to = to;
  if (needsName()) req.accept_data_loss = true;
  const reason = $('#confirm-reason').value.trim();
  const ticket = $('#confirm-ticket').value.trim();
  if (reason) req.reason = reason;
  if (ticket) req.ticket = ticket;
  if (dry) req.dry_run = true;
  return req;
}

async function dryRun() {
  const seq = ++dlg.seq;
  dlg.planned = false;
  updateGo();
  const box = $('#confirm-plan');
  box.replaceChildren(h('p', { class: 'muted' }, 'Planning (dry run)…'));
  try {
    const run = await api('/v1/runs', { method: 'POST', body: runRequest(true) });
    if (seq !== dlg.seq) return;
    const p = run.plan || {};
    const steps = p.steps || [];
    box.replaceChildren(
      h('p', {}, `${p.action || dlg.action} ${p.from || '—'} → ${p.to || '—'}, ${steps.length} steps${p.why ? '; ' + p.why : ''}`),
      h('ol', { class: 'plan' }, steps.map((st) => h('li', { 'data-step': st.id },
        h('code', {}, st.kind), st.resource ? ` ${st.resource}` : '', ` at ${st.site}`,
        st.wave ? h('span', { class: 'muted' }, ` (wave ${st.wave})`) : '',
        st.best_effort ? h('span', { class: 'muted' }, ' (best effort)') : '',
        st.message ? ` — ${st.message}` : ''))),
      p.rollback && p.rollback.length ? h('p', { class: 'muted' }, `If a step before activate fails: ${p.rollback.length} rollback steps.`) : '');
    dlg.planned = true;
  } catch (err) {
    if (seq !== dlg.seq) return;
    box.replaceChildren(h('p', { class: 'error refusal', role: 'alert' }, 'Refused: ', err.message));
  }
  updateGo();
}

async function go() {
  const btn = $('#confirm-go');
  btn.disabled = true;
  const out = $('#confirm-result');
  out.replaceChildren(h('p', { class: 'muted' }, 'Sending…'));
  try {
    if (dlg.action === 'pause' || dlg.action === 'resume') {
      const body = {};
      const reason = $('#confirm-reason').value.trim();
      const ticket = $('#confirm-ticket').value.trim();
      if (reason) body.reason = reason;
      if (ticket) body.ticket = ticket;
      const res = await api(`/v1/groups/${encodeURIComponent(dlg.group)}/${dlg.action}`, { method: 'POST', body });
      out.replaceChildren(h('p', { class: 'ok' }, `${dlg.group} is ${res && res.paused ? 'paused' : 'not paused'}${res && res.changed === false ? ' (unchanged)' : ''}.`));
      announce(`${dlg.group}: ${dlg.action} done`);
    } else {
      const run = await api('/v1/runs', { method: 'POST', body: runRequest(false) });
      const link = h('a', { href: '#/run/' + encodeURIComponent(run.id), class: 'run-link' }, run.id);
      link.addEventListener('click', () => $('#confirm').close());
      out.replaceChildren(h('p', { class: 'ok' }, 'Run started: ', link));
      announce(`Run ${run.id} started`);
    }
  } catch (err) {
    out.replaceChildren(h('p', { class: 'error', role: 'alert' }, 'Refused: ', err.message));
    updateGo();
  }
}

start();
