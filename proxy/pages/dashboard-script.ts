// The dashboard's script (served at DASHBOARD_SCRIPT_PATH; the page has no
// inline code): plain browser JavaScript, no build step. It reads the admin
// API with the session cookie (status, the lag history, the failover report,
// the settings), draws the lag with uPlot, and follows the event stream: an
// admin session's stream carries `status` and `lag` events. Every value it
// shows goes into the page as text (textContent), never as HTML. A 401 means
// the session ended (logout, expiry, a new admin token): the page reloads
// into the login form.
import { createHash } from 'node:crypto';
import { EVENTS_PATH } from '../editor-events.ts';
import { jsonForScript } from './escape.ts';

export const DASHBOARD_SCRIPT_PATH = '/_standby/assets/dashboard.js';

/** What the script reads from its embedded config (exported for tests). */
export interface DashboardScriptConfig {
  api: string;
  eventsPath: string;
  /** the report is fetched again at most this often without a reason (a new failover, a phase change), ms */
  reportEveryMs: number;
  /** the chart's window, ms */
  chartWindowMs: number;
}

const CONFIG: DashboardScriptConfig = {
  api: '/_standby/api/v1/',
  eventsPath: EVENTS_PATH,
  reportEveryMs: 30_000,
  chartWindowMs: 3 * 3600_000,
};

const PHASES: Record<string, string> = {
  detection: 'detection',
  'final-pass': 'final pass',
  fence: 'fence',
  route: 'route',
  'gpu-search': 'search',
  provisioning: 'provisioning',
  'ssh-ready': 'SSH ready',
  'agent-ready': 'agent ready',
  restore: 'restore',
  'switch-back': 'switch back',
};

const SCRIPT = String.raw`(() => {
  'use strict';
  const cfg = __CONFIG__;
  const PHASES = __PHASES__;
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const ms = (v) => {
    if (v === null || v === undefined) return '-';
    if (v < 1000) return Math.round(v) + ' ms';
    if (v < 60000) return (v / 1000).toFixed(1) + ' s';
    if (v < 3600000) return Math.floor(v / 60000) + ' min ' + Math.round((v % 60000) / 1000) + ' s';
    return (v / 3600000).toFixed(1) + ' h';
  };
  const money = (v) => (v === null || v === undefined ? '-' : '$' + Number(v).toFixed(2));
  const pct = (v) => (v === null || v === undefined ? '-' : Math.round(v * 100) + '%');
  const dl = (target, rows) => {
    target.replaceChildren();
    for (const [k, v, cls] of rows) {
      target.append(el('dt', k));
      target.append(el('dd', v, cls));
    }
  };

  async function api(path, init) {
    const res = await fetch(cfg.api + path, Object.assign({ credentials: 'same-origin', cache: 'no-store' }, init || {}));
    if (res.status === 401) {
      // the session ended: the page itself answers with the login form now
      location.reload();
      throw new Error('logged out');
    }
    let body = null;
    try { body = await res.json(); } catch {}
    return { status: res.status, body };
  }

  // ---- state ----
  let last = null;
  let lastPhase = null;
  let lastFailovers = null;
  let reportAt = 0;

  function writer(s) {
    const side = s.active === 'primary' ? s.backends[0] : s.backends[1];
    return (s.agents || []).find((a) => a.hostId === side.id) || null;
  }

  function renderStatus(s) {
    last = s;
    const side = s.active === 'primary' ? s.backends[0] : s.backends[1];
    $('serving').textContent = (s.active === 'primary' ? 'GPU ' : 'CPU standby ') + side.id;
    $('serving').className = s.active === 'primary' ? 'ok' : 'warn';
    $('phase').textContent = s.phase.replace(/_/g, ' ') + (s.frozen ? ' (frozen)' : '');
    $('phase').className = s.phase === 'normal' ? 'ok' : s.phase === 'suspect' || s.phase === 'degraded' ? 'warn' : 'bad';
    $('epoch').textContent = String(s.epoch);
    $('failover-count').textContent = String(s.failovers);
    document.body.dataset.phase = s.phase;
    document.body.dataset.epoch = String(s.epoch);
    renderRecovery(s.recovery);
    const body = $('hosts').tBodies[0];
    body.replaceChildren();
    for (const b of s.backends) {
      const agent = (s.agents || []).find((a) => a.hostId === b.id);
      const tr = el('tr');
      tr.dataset.host = b.id;
      tr.append(el('td', b.id));
      tr.append(el('td', (b.side === 'primary' ? 'GPU' : 'standby') + (s.active === b.side ? ', serving' : '')));
      const ok = b.probe ? b.probe.ok : null;
      tr.append(el('td', ok === null ? 'not probed yet' : ok ? 'healthy' : 'failing' + (b.probe.error ? ' (' + b.probe.error + ')' : ''), ok === null ? '' : ok ? 'ok' : 'bad'));
      const hb = agent ? (agent.connected ? ms(agent.heartbeatAgeMs) + ' ago' : 'disconnected, ' + ms(agent.heartbeatAgeMs) + ' ago') + (agent.fenced ? ', fenced' : '') : 'no agent';
      tr.append(el('td', hb, agent && agent.connected ? '' : 'warn'));
      body.append(tr);
    }
    const a = writer(s);
    const sync = a && a.sync;
    $('sync-direction').textContent = a ? a.hostId + ' to ' + (sync && sync.target ? 'the new GPU ' + sync.target + ' (a restore)' : 'the standby') : 'no agent connected';
    $('pending').textContent = sync ? String(sync.pending) : '-';
    $('watermark-age').textContent = sync ? (sync.oldestPendingAgeMs === null ? 'nothing pending' : ms(sync.oldestPendingAgeMs)) : '-';
    $('watermark').textContent = sync ? sync.watermark + ' of ' + sync.lastSeq + (sync.ready ? '' : ' (first full pass not done)') : '-';
    $('last-pass').textContent = sync ? (sync.lastPassAgeMs === null ? 'none yet' : ms(sync.lastPassAgeMs) + ' ago') : '-';
    $('sync-error').textContent = sync && sync.lastError ? sync.lastError : 'none';
    $('sync-error').className = sync && sync.lastError ? 'bad' : '';
    $('held').hidden = !(sync && sync.held);
    if (lastPhase !== s.phase || lastFailovers !== s.failovers || Date.now() - reportAt > cfg.reportEveryMs) {
      lastPhase = s.phase;
      lastFailovers = s.failovers;
      loadReport();
    }
    renderCosts();
    // the serving agent changes with the route: asked at once then, else every 5 s
    const serving = s.active + ':' + s.epoch;
    if (settings && (serving !== agentFor || Date.now() - agentAt > 5000)) {
      agentFor = serving;
      refreshAgent();
    }
  }

  // what the serving agent applies, from its heartbeats (the settings API's agent): kept current beside the form
  let agentAt = 0;
  let agentFor = '';
  async function refreshAgent() {
    agentAt = Date.now();
    const r = await api('settings');
    if (r.status !== 200 || !r.body || !settings) return;
    settings.agent = r.body.agent;
    renderAgentNote();
  }

  function renderRecovery(r) {
    const box = $('recovery');
    box.replaceChildren();
    if (!r || !r.configured || (!r.running && r.step === null)) return;
    const done = r.step === 'done' || r.step === 'gave-up' || r.step === 'old-gpu';
    if (!r.running && done) return;
    box.append(el('p', 'Recovery' + (r.attempt ? ', try ' + r.attempt : '') + ': ' + (r.step || 'starting') + (r.newGpu ? ' (new GPU ' + r.newGpu.id + ')' : '') + (r.error ? '; last error: ' + r.error : ''), 'warn'));
    if (r.restore) {
      const total = r.restore.totalFiles;
      const bar = el('div', null, 'progress');
      const fill = el('div');
      fill.style.width = total ? Math.min(100, Math.round((r.restore.files / total) * 100)) + '%' : '5%';
      bar.append(fill);
      box.append(bar);
      box.append(el('p', 'restore: ' + r.restore.files + (total ? ' of ' + total : '') + ' files, ' + (r.restore.bytes / 1e6).toFixed(1) + ' MB at ' + (r.restore.rateBps / 1e6).toFixed(1) + ' MB/s', 'note'));
    }
  }

  // ---- lag chart ----
  let chart = null;
  const series = [[], [], []];
  function chartSize() {
    const w = $('lag-chart').clientWidth || 600;
    return { width: w, height: w < 500 ? 180 : 240 };
  }
  function drawChart() {
    $('lag-chart').dataset.samples = String(series[0].length);
    $('lag-chart').dataset.maxLagMs = String(series[1].reduce((m, v) => Math.max(m, v * 1000), 0));
    if (typeof uPlot !== 'function') return;
    if (!chart) {
      const css = getComputedStyle(document.documentElement);
      const accent = css.getPropertyValue('--accent').trim() || '#2352c4';
      const muted = css.getPropertyValue('--muted').trim() || '#888';
      const axis = { stroke: muted, grid: { stroke: css.getPropertyValue('--line').trim() || '#ddd', width: 1 }, ticks: { stroke: muted } };
      chart = new uPlot(Object.assign(chartSize(), {
        series: [{}, { label: 'lag (s)', stroke: accent, width: 2, fill: accent + '22', points: { show: false } }, { label: 'pending', stroke: '#c7a22a', width: 1, scale: 'n', points: { show: false } }],
        axes: [axis, Object.assign({}, axis, { label: 'lag, s' }), Object.assign({}, axis, { side: 1, scale: 'n', label: 'pending', grid: { show: false } })],
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] }, n: { range: (u, min, max) => [0, Math.max(1, max)] } },
        legend: { live: true },
      }), series, $('lag-chart'));
      window.addEventListener('resize', () => chart.setSize(chartSize()));
    } else {
      chart.setData(series);
    }
  }
  function addSample(s) {
    const t = s[0] / 1000;
    const n = series[0].length;
    if (n > 0 && series[0][n - 1] === t) {
      series[1][n - 1] = s[1] / 1000;
      series[2][n - 1] = s[2];
    } else {
      series[0].push(t);
      series[1].push(s[1] / 1000);
      series[2].push(s[2]);
    }
    const from = (Date.now() - cfg.chartWindowMs) / 1000;
    while (series[0].length > 0 && series[0][0] < from) for (const a of series) a.shift();
  }
  async function loadLag() {
    const r = await api('sync/lag');
    if (r.status !== 200 || !r.body) return;
    for (const a of series) a.length = 0;
    for (const s of r.body.samples) addSample(s);
    drawChart();
  }

  // ---- history and report ----
  let report = null;
  async function loadReport() {
    reportAt = Date.now();
    const r = await api('failover/report?days=30');
    if (r.status !== 200 || !r.body) return;
    report = r.body;
    renderHistory(report);
    renderReport(report);
    renderCosts();
  }
  function renderHistory(rep) {
    const box = $('failovers');
    box.replaceChildren();
    if (rep.list.length === 0) {
      box.append(el('p', 'None in the last 30 days.', 'note'));
    }
    const seen = new Set();
    for (const f of rep.list.slice().reverse()) {
      const row = el('div', null, 'failover');
      row.dataset.epoch = String(f.epoch);
      row.dataset.outcome = f.outcome;
      const head = el('div', null, 'head');
      head.append(el('strong', new Date(f.at).toLocaleString()));
      head.append(el('span', f.drill ? 'drill' : f.planned ? 'planned' : 'real', 'pill' + (f.drill ? ' drill' : '')));
      head.append(el('span', f.cause.label));
      head.append(el('span', f.outcome === 'succeeded' ? 'standby served after ' + ms(f.toStandbyMs) : f.outcome, f.outcome === 'failed' ? 'bad' : f.outcome === 'succeeded' ? 'ok' : 'warn'));
      const rpo = f.rpo === null ? 'RPO unknown' : f.rpo.rpoMs === 0 ? 'RPO 0 (nothing outstanding)' : 'RPO ' + ms(f.rpo.rpoMs) + (f.rpo.unsyncedChanges !== null ? ', ' + f.rpo.unsyncedChanges + ' changes' : '');
      head.append(el('span', rpo, 'rpo'));
      if (f.recovery) head.append(el('span', 'recovery: ' + f.recovery.outcome + (f.recovery.newGpu ? ' to ' + f.recovery.newGpu : '') + (f.toNewGpuMs !== null ? ' in ' + ms(f.toNewGpuMs) : '')));
      row.append(head);
      const bars = el('div', null, 'bars');
      const total = f.phases.reduce((n, p) => n + (p.ms || 0), 0);
      for (const p of f.phases) {
        if (p.ms === null) continue;
        seen.add(p.name);
        const bar = el('div', null, 'bar p-' + p.name);
        bar.dataset.phase = p.name;
        bar.title = (PHASES[p.name] || p.name) + ': ' + ms(p.ms);
        bar.style.flexGrow = String(Math.max(p.ms, total / 200));
        bars.append(bar);
      }
      row.append(bars);
      row.append(el('div', f.phases.map((p) => (PHASES[p.name] || p.name) + ' ' + ms(p.ms)).join(' · '), 'legend phases'));
      if (f.failure) row.append(el('p', f.failure, 'bad'));
      box.append(row);
    }
    const legend = $('phase-legend');
    legend.replaceChildren();
    for (const name of Object.keys(PHASES)) {
      if (!seen.has(name)) continue;
      const item = el('span');
      item.append(el('i', null, 'p-' + name));
      item.append(document.createTextNode(PHASES[name]));
      legend.append(item);
    }
  }
  const stat = (t) => (t.measured === 0 ? 'none measured' : 'mean ' + ms(t.meanMs) + ', p95 ' + ms(t.p95Ms) + ', max ' + ms(t.maxMs));
  function renderReport(rep) {
    const f = rep.failovers;
    dl($('report-figures'), [
      ['Failovers', f.total + (f.drills ? ' (' + f.drills + ' drills)' : '')],
      ['Succeeded', f.succeeded + ' of ' + (f.succeeded + f.failed) + ' (' + pct(f.successRate) + ')'],
      ['To the standby', stat(rep.mttr.toStandby)],
      ['To a new GPU', stat(rep.mttr.toNewGpu)],
      ['RPO', stat(rep.rpo)],
      ['Causes', rep.causes.length ? rep.causes.map((c) => c.label + ' ' + c.count).join(', ') : 'none'],
      ['Recovery', rep.recovery.configured ? rep.recovery.gpusProvisioned.done + ' of ' + rep.recovery.gpusProvisioned.of + ' GPUs provisioned, ' + rep.recovery.dataRestored.done + ' of ' + rep.recovery.dataRestored.of + ' restored' : (rep.recovery.note || 'not configured')],
      ['Switches back', rep.switchBacks.done + ' of ' + rep.switchBacks.total + (rep.switchBacks.aborted ? ', ' + rep.switchBacks.aborted + ' aborted' : '')],
      ['Standby outages', rep.standbyOutages.count + (rep.standbyOutages.count ? ' (' + rep.standbyOutages.recreated + ' made anew; without a copy: ' + stat(rep.standbyOutages.window) + ')' : '')],
    ]);
  }
  function renderCosts() {
    const rows = [];
    const c = report && report.standbyCost;
    if (c && c.known) {
      rows.push(['Standby', money(c.monthly) + ' a month', 'ok']);
      rows.push(['', c.summary]);
    } else rows.push(['Standby', c ? 'unknown: ' + c.reason : '-']);
    const r = last && last.recovery;
    const price = r && r.configured && r.newGpu ? r.newGpu.pricePerHour : null;
    if (price !== null && price !== undefined) rows.push(['GPU', money(price) + ' an hour (' + r.newGpu.id + ', from ' + r.provider + '), about ' + money(price * 730) + ' a month']);
    else rows.push(['GPU', r && r.configured ? 'the price of the GPU in service is known once a recovery rented it (' + r.provider + ')' : 'unknown: the configured GPU was not rented by this proxy']);
    const cap = settingsValue(['recovery', 'gpu', 'vast', 'gpuMaxPrice']);
    if (cap !== undefined && cap !== null) rows.push(['GPU price cap', money(cap) + ' an hour']);
    dl($('cost-figures'), rows);
  }

  // ---- settings: a form made from the settings API's answer ----
  let settings = null;
  function settingsValue(path) {
    let v = settings && settings.settings;
    for (const k of path) {
      if (v === null || typeof v !== 'object') return undefined;
      v = v[k];
    }
    return v;
  }
  // a field set to null (nothing pushed, not set) says nothing of its type: its name does
  const kindOf = (path, value) => {
    if (typeof value === 'boolean') return 'boolean';
    if (typeof value === 'number') return 'number';
    if (Array.isArray(value)) return 'list';
    const name = path[path.length - 1];
    if (/(Ms|Gb|Price|Heartbeats|RamGb)$/.test(name)) return 'nullable-number';
    if (/^(exclude|regions)$/.test(name)) return 'nullable-list';
    return value === null ? 'nullable' : 'string';
  };
  const effectText = { now: 'applies now', agent: 'sent to the agent', 'next standby': 'at the next standby', 'next GPU': 'at the next GPU' };
  async function loadSettings() {
    const box = $('settings-body');
    const r = await api('settings');
    if (r.status !== 200 || !r.body) {
      box.replaceChildren(el('p', r.status === 404 ? 'This proxy has no live settings API.' : 'The settings did not load (' + r.status + ').', 'note'));
      return;
    }
    settings = r.body;
    renderSettings();
    renderCosts();
  }
  function renderSettings() {
    const box = $('settings-body');
    box.replaceChildren();
    const form = el('form', null, 'settings');
    form.id = 'settings-form';
    // the fields the API says can be set live, in its order
    const missing = [];
    for (const key of Object.keys(settings.effect || {})) {
      const path = key.split('.');
      const value = settingsValue(path);
      const parent = settingsValue(path.slice(0, -1));
      const unavailable = path.length > 1 && (parent === null || parent === undefined);
      const wrap = el('div');
      const id = 'set-' + key.replace(/[^A-Za-z0-9]/g, '-');
      const label = el('label', key);
      label.htmlFor = id;
      const eff = settings.effect[key];
      label.append(el('span', effectText[eff] || eff, 'effect'));
      if ((settings.overridden || []).includes(key)) label.append(el('span', 'changed live', 'effect'));
      const input = el('input');
      input.id = id;
      input.name = key;
      input.dataset.path = key;
      const kind = kindOf(path, value);
      input.dataset.kind = kind;
      if (kind === 'boolean') {
        input.type = 'checkbox';
        input.checked = value;
      } else if (kind === 'number' || kind === 'nullable-number') {
        input.type = 'number';
        input.step = 'any';
        input.value = value === null || value === undefined ? '' : String(value);
        if (kind === 'nullable-number') input.placeholder = 'not set';
      } else if (kind === 'list' || kind === 'nullable-list') {
        input.type = 'text';
        input.value = Array.isArray(value) ? value.join(', ') : '';
        if (kind === 'nullable-list') input.placeholder = 'not set';
      } else {
        input.type = 'text';
        input.value = value === null || value === undefined ? '' : String(value);
      }
      if (unavailable) {
        missing.push(key);
        continue;
      }
      input.dataset.initial = input.type === 'checkbox' ? String(input.checked) : input.value;
      wrap.append(label, input);
      form.append(wrap);
    }
    const actions = el('div', null, 'actions');
    const save = el('button', 'Save');
    save.type = 'submit';
    save.id = 'settings-save';
    const result = el('span', '', 'note');
    result.id = 'settings-result';
    actions.append(save, result);
    form.append(actions);
    const note = el('p', '', 'note');
    note.id = 'agent-applied';
    form.append(note);
    if (missing.length) form.append(el('p', 'Not shown: ' + missing.join(', ') + ' (proxy.json has no such section, so they cannot be set live).', 'note'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      submitSettings(form, result);
    });
    box.append(form);
    renderAgentNote();
  }
  function renderAgentNote() {
    const note = $('agent-applied');
    if (!note) return;
    const agent = settings.agent;
    note.textContent = agent ? 'The agent of ' + agent.hostId + ' applies: delay ' + ms(agent.applied.delayMs) + ', at most ' + ms(agent.applied.maxDelayMs) + (agent.applied.exclude && agent.applied.exclude.length ? ', excludes ' + agent.applied.exclude.join(', ') : ', no excludes of its own') : 'No agent has reported its sync settings yet.';
    if (agent) {
      note.dataset.delayMs = String(agent.applied.delayMs);
      note.dataset.maxDelayMs = String(agent.applied.maxDelayMs);
    }
  }
  // after a save, the agent's next heartbeats say whether it applied what was pushed: asked a few times, the form left as it is
  let following = 0;
  async function followAgent() {
    const mine = ++following;
    for (let i = 0; i < 15 && mine === following; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const r = await api('settings');
      if (r.status !== 200 || !r.body || mine !== following) return;
      settings.agent = r.body.agent;
      renderAgentNote();
      const want = r.body.settings.agentSync;
      const got = r.body.agent && r.body.agent.applied;
      if (got && (want.delayMs === null || want.delayMs === got.delayMs) && (want.maxDelayMs === null || want.maxDelayMs === got.maxDelayMs)) return;
    }
  }
  async function submitSettings(form, result) {
    const patch = {};
    let changed = 0;
    for (const input of form.querySelectorAll('input[data-path]')) {
      const now = input.type === 'checkbox' ? String(input.checked) : input.value;
      if (now === input.dataset.initial) continue;
      let v;
      const kind = input.dataset.kind;
      const text = input.value.trim();
      if (kind === 'boolean') v = input.checked;
      else if (kind === 'number') v = text === '' ? null : Number(text);
      else if (kind === 'nullable-number') v = text === '' ? null : Number(text);
      else if (kind === 'list') v = text.split(',').map((x) => x.trim()).filter((x) => x !== '');
      else if (kind === 'nullable-list') v = text === '' ? null : text.split(',').map((x) => x.trim()).filter((x) => x !== '');
      else if (kind === 'nullable') v = text === '' ? null : text;
      else v = input.value;
      const path = input.dataset.path.split('.');
      let o = patch;
      for (const k of path.slice(0, -1)) o = o[k] = o[k] || {};
      o[path[path.length - 1]] = v;
      changed++;
    }
    if (changed === 0) {
      result.textContent = 'Nothing changed.';
      return;
    }
    result.textContent = 'Saving...';
    const r = await api('settings', { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify(patch) });
    if (r.status === 200 && r.body) {
      settings = r.body;
      renderSettings();
      $('settings-result').textContent = 'Saved.';
      followAgent();
    } else {
      result.textContent = r.body && r.body.error ? r.body.error.message : 'Not saved (' + r.status + ').';
      result.className = 'note bad';
    }
  }

  // ---- held deletions ----
  $('confirm-deletes').addEventListener('click', async () => {
    if (!confirm('Release the deletions the agent holds? The files go from the standby too.')) return;
    $('confirm-deletes').disabled = true;
    const r = await api('sync/confirm-deletes', { method: 'POST' });
    $('confirm-result').textContent = r.status === 200 && r.body ? 'Released: ' + r.body.deletions + ' deletions go to the standby now.' : (r.body && r.body.error ? r.body.error.message : 'Failed (' + r.status + ').');
    $('confirm-deletes').disabled = false;
  });

  // ---- live ----
  let refusals = 0;
  function listen() {
    const es = new EventSource(cfg.eventsPath);
    es.addEventListener('status', (e) => {
      refusals = 0;
      $('live').textContent = 'live';
      document.body.dataset.live = 'yes';
      try { renderStatus(JSON.parse(e.data)); } catch {}
    });
    es.addEventListener('lag', (e) => {
      try { addSample(JSON.parse(e.data)); drawChart(); } catch {}
    });
    es.onerror = () => {
      $('live').textContent = 'reconnecting...';
      document.body.dataset.live = 'no';
      if (es.readyState !== EventSource.CLOSED) return;
      es.close();
      refusals++;
      // the session may have ended: a status request says so (401 reloads into the login)
      api('status').catch(() => {});
      setTimeout(listen, Math.min(1000 * 2 ** Math.min(refusals, 5), 30000));
    };
  }

  async function start() {
    const s = await api('status');
    if (s.status === 200 && s.body) renderStatus(s.body);
    await Promise.all([loadLag(), loadSettings()]);
    listen();
  }
  start().catch((err) => { $('live').textContent = 'error: ' + err.message; });
})();
`.replace('__CONFIG__', jsonForScript(CONFIG)).replace('__PHASES__', jsonForScript(PHASES));

/** The script's text, as served. */
export const DASHBOARD_SCRIPT = SCRIPT;
/** A hash of the text: the page's ?v=, so a new proxy's script is never taken from a browser's cache. */
export const DASHBOARD_SCRIPT_VERSION = createHash('sha256').update(SCRIPT).digest('hex').slice(0, 12);
