// bms_ros dashboard page: hand-written (no library, no CDN): fetch the snapshot, then follow the
// Server-Sent Events stream; charts are plain SVG. Actions ask for confirmation and send the
// token (asked once, kept in this tab's sessionStorage) in the X-BMS-Token header.
'use strict';

const page = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '_');
const api = '/api/pack/' + encodeURIComponent(page);
const SVG = 'http://www.w3.org/2000/svg';
let tokenRequired = false;
let periodMs = 500;

const $ = (id) => document.getElementById(id);
const fmt = (v, digits, unit) => (v === null || v === undefined) ? '–'
  : Number(v).toFixed(digits) + (unit ? ' ' + unit : '');

function setText(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  if (cls !== undefined) el.className = cls;
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// Bars of one value per cell / sensor, with the profile's limit lines across.
function barChart(svg, values, opts) {
  const W = 800, H = Number(svg.getAttribute('viewBox').split(' ')[3]), left = 44, bottom = 18;
  const lines = [];
  for (const [name, levels] of Object.entries(opts.limits || {})) {
    for (const [level, v] of Object.entries(levels)) lines.push({name, level, v});
  }
  const finite = values.filter((v) => v !== null);
  const shown = lines.filter((l) => !opts.lineFilter || opts.lineFilter(l, finite));
  let lo = Math.min(...finite, ...shown.map((l) => l.v));
  let hi = Math.max(...finite, ...shown.map((l) => l.v));
  if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
  const pad = Math.max((hi - lo) * 0.08, opts.minPad);
  lo -= pad; hi += pad;
  const y = (v) => (H - bottom) * (1 - (v - lo) / (hi - lo));
  svg.replaceChildren();
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    svg.append(svgEl('line', {x1: left, x2: W, y1: y(v), y2: y(v), class: 'axis'}));
    svg.append(svgEl('text', {x: 2, y: y(v) + 4}, v.toFixed(opts.digits)));
  }
  const n = values.length, slot = (W - left) / Math.max(n, 1);
  values.forEach((v, i) => {
    const cls = [opts.cls];
    if (opts.invalid && opts.invalid[i] === false) cls.push('invalid');
    if (opts.balancing && opts.balancing[i]) cls.push('balancing');
    const top = v === null ? H - bottom : y(v);
    const bar = svgEl('rect', {x: left + i * slot + slot * 0.12, y: top, width: slot * 0.76,
      height: Math.max(H - bottom - top, 0), class: cls.join(' '),
      'data-index': i, 'data-value': v === null ? '' : v});
    bar.append(svgEl('title', {}, `${opts.label} ${i}: ${fmt(v, opts.digits + 1, opts.unit)}`));
    svg.append(bar);
    if (n <= 32 || i % Math.ceil(n / 32) === 0) {
      svg.append(svgEl('text', {x: left + i * slot + slot / 2 - 4, y: H - 4}, String(i)));
    }
  });
  for (const l of shown) {
    svg.append(svgEl('line', {x1: left, x2: W, y1: y(l.v), y2: y(l.v), class: 'line-' + l.level,
      'data-limit': l.name + ':' + l.level}));
    svg.append(svgEl('text', {x: W - 110, y: y(l.v) - 2}, `${l.level} ${l.v} ${opts.unit}`));
  }
}

// Time series: several named series on one time axis, each on its own scale if asked.
function lineChart(svg, t, series) {
  const W = 800, H = Number(svg.getAttribute('viewBox').split(' ')[3]), left = 44, bottom = 16;
  svg.replaceChildren();
  if (t.length < 2) {
    svg.append(svgEl('text', {x: left, y: H / 2}, 'collecting history…'));
    return;
  }
  const t0 = t[0], t1 = t[t.length - 1];
  const x = (v) => left + (W - left) * (v - t0) / Math.max(t1 - t0, 1e-6);
  svg.append(svgEl('text', {x: left, y: H - 3}, `-${Math.round(t1 - t0)} s`));
  svg.append(svgEl('text', {x: W - 30, y: H - 3}, 'now'));
  for (const group of series) {
    const vals = group.data.flat().filter((v) => v !== null);
    if (!vals.length) continue;
    let lo = Math.min(...vals), hi = Math.max(...vals);
    const pad = Math.max((hi - lo) * 0.1, group.minPad);
    lo -= pad; hi += pad;
    const y = (v) => (H - bottom) * (1 - (v - lo) / (hi - lo));
    group.data.forEach((data, k) => {
      const pts = data.map((v, i) => v === null ? null : `${x(t[i]).toFixed(1)},${y(v).toFixed(1)}`)
        .filter(Boolean).join(' ');
      svg.append(svgEl('polyline', {points: pts, class: group.cls[k]}));
    });
    svg.append(svgEl('text', {x: group.axisX, y: 12}, `${hi.toFixed(group.digits)} ${group.unit}`));
    svg.append(svgEl('text', {x: group.axisX, y: H - bottom - 2},
      `${lo.toFixed(group.digits)} ${group.unit}`));
  }
}

// A limit line is drawn when it lies within ``margin`` of the values shown.
const near = (margin) => (l, v) => v.length > 0 &&
  l.v >= Math.min(...v) - margin && l.v <= Math.max(...v) + margin;

function contactor(id, closed, other) {
  const el = $(id);
  el.textContent = closed ? 'closed' : 'open';
  el.className = (closed !== other && other !== undefined) ? 'mismatch' : (closed ? 'closed' : 'open');
}

function render(s) {
  document.title = `bms_ros ${s.namespace}`;
  setText('namespace', s.namespace + (s.identity.serial_number ? ` (${s.identity.serial_number})` : ''));
  const state = s.state ? s.state.name : 'unknown';
  setText('state', state, 'badge state-' + state);
  setText('reason', s.state ? s.state.reason : 'no pack_state yet');
  const level = s.protection ? s.protection.max_level : '–';
  setText('level', s.protection && s.protection.trip_latched ? 'trip latched' : level,
    'badge level-' + level);
  const e = s.estimate || {};
  setText('soc', fmt(e.pack_soc === null || e.pack_soc === undefined ? null : e.pack_soc * 100, 1, '%'));
  $('soc_bar').style.width = ((e.pack_soc || 0) * 100).toFixed(1) + '%';
  setText('soh', fmt(e.soh_capacity === null || e.soh_capacity === undefined ? null : e.soh_capacity * 100, 1, '%'));
  setText('energy', fmt(e.remaining_energy_wh, 0, 'Wh'));
  const p = s.pack || {};
  setText('current', fmt(p.current_a, 1, 'A'));
  setText('voltage', fmt(p.voltage_v, 2, 'V'));
  const prot = s.protection || {};
  setText('charge_limit', fmt(prot.charge_current_limit_a, 1, 'A'));
  setText('discharge_limit', fmt(prot.discharge_current_limit_a, 1, 'A'));
  if (s.cells) {
    setText('cell_range', `${fmt(s.cells.min_v, 3)} … ${fmt(s.cells.max_v, 3, 'V')}`);
    setText('spread', fmt(s.cells.spread_v === null ? null : s.cells.spread_v * 1000, 0, 'mV'));
    setText('cells_note', `${s.cells.voltages_v.length} cells` + (s.cells.stale ? ', STALE' : ''));
    barChart($('cells_chart'), s.cells.voltages_v, {cls: 'cell', label: 'cell', unit: 'V',
      digits: 2, minPad: 0.02, limits: (s.limits || {}).cell_v, invalid: s.cells.valid,
      balancing: s.cells.balancing,
      // only the levels near the cells: lines far off would flatten the bars
      lineFilter: near(0.4)});
  }
  if (s.temperatures) {
    setText('temp_range', `${fmt(s.temperatures.min_degc, 1)} … ${fmt(s.temperatures.max_degc, 1, '°C')}`);
    barChart($('temps_chart'), s.temperatures.degc, {cls: 'temp', label: 'sensor', unit: '°C',
      digits: 0, minPad: 2, limits: (s.limits || {}).temperature_degc, invalid: s.temperatures.valid,
      lineFilter: near(12)});
  }
  const h = s.history;
  lineChart($('history_chart'), h.time_s, [
    {data: [h.cell_min_v, h.cell_max_v], cls: ['series-min', 'series-max'], unit: 'V', digits: 3,
     minPad: 0.005, axisX: 2},
    {data: [h.current_a], cls: ['series-current'], unit: 'A', digits: 0, minPad: 1, axisX: 720}]);
  const st = s.state || {commanded: {}, feedback: {}};
  for (const k of ['negative', 'precharge', 'positive']) {
    contactor('cmd_' + k, st.commanded[k]);
    contactor('fb_' + k, st.feedback[k], st.commanded[k]);
  }
  const active = $('active');
  active.replaceChildren();
  for (const a of prot.active || []) {
    const tr = document.createElement('tr');
    tr.className = 'level-' + a.level;
    for (const text of [a.level + (a.latched ? ' (latched)' : ''), a.message]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    active.append(tr);
  }
  if (!active.children.length) active.innerHTML = '<tr><td class="muted">none</td></tr>';
  const events = $('events');
  events.replaceChildren();
  for (const ev of s.events.slice(0, 50)) {
    const li = document.createElement('li');
    li.className = 'level-' + (ev.active ? ev.level : 'ok');
    const when = new Date((ev.stamp_s || ev.received_s) * 1000).toLocaleTimeString();
    li.textContent = `${when} ${ev.active ? 'RAISE' : 'CLEAR'} ${ev.level} ${ev.message}`;
    events.append(li);
  }
  document.body.dataset.rendered = String(s.time_s);
}

function follow() {
  const source = new EventSource(api + '/stream');
  source.addEventListener('snapshot', (msg) => {
    setText('connection', 'live', 'muted');
    render(JSON.parse(msg.data));
  });
  source.onerror = () => setText('connection', 'reconnecting…', 'mismatch');
}

async function act(what, body, question) {
  if (!window.confirm(question)) return;
  let token = sessionStorage.getItem('bms_token') || '';
  if (tokenRequired && !token) {
    token = window.prompt('Dashboard token (the profile\'s dashboard.token):') || '';
    sessionStorage.setItem('bms_token', token);
  }
  const reply = await fetch(api + '/' + what, {method: 'POST', headers: {
    'Content-Type': 'application/json', 'X-BMS-Token': token},
    body: JSON.stringify(Object.assign({confirm: true}, body))});
  const answer = await reply.json();
  if (reply.status === 401) sessionStorage.removeItem('bms_token');
  setText('answer', reply.ok ? (answer.message || answer.reason || JSON.stringify(answer))
    : `refused (${reply.status}): ${answer.error}`, reply.ok ? 'muted' : 'mismatch');
}

async function start() {
  try {
    const config = await (await fetch('/api/config')).json();
    tokenRequired = config.token_required;
    periodMs = config.period_s * 1000;
    const first = await fetch(api);
    if (first.ok) render(await first.json());
    else setText('connection', (await first.json()).error, 'mismatch');
  } catch (err) {
    setText('connection', 'no answer: ' + err, 'mismatch');
  }
  document.querySelectorAll('button[data-state]').forEach((b) => b.addEventListener('click',
    () => act('request_state', {state: b.dataset.state},
      `Request ${b.dataset.state.toUpperCase()} for ${page}?`)));
  $('reset').addEventListener('click', () => {
    const reason = window.prompt('Reset the latched trips: reason?', 'checked on site');
    if (reason !== null) act('reset', {reason}, `Reset the latched trips of ${page}?`);
  });
  // ?poll: fetch the snapshot every period instead of the event stream (proxies that buffer
  // streams; a headless browser's virtual time, which waits for open requests)
  if (new URLSearchParams(location.search).has('poll')) {
    setInterval(async () => {
      const reply = await fetch(api);
      if (reply.ok) { setText('connection', 'live (polling)', 'muted'); render(await reply.json()); }
    }, periodMs);
  } else {
    follow();
  }
}

start();
