// The script the proxy injects into code-server's workbench page
// (proxy/editor-inject.ts) and serves at /_standby/editor.js: plain browser
// JavaScript, no build step, no inline code in the page. It follows the
// proxy's event stream (proxy/editor-events.ts) and watches the page's own
// WebSockets; as soon as a switch starts, or once the proxy's doubt of the
// GPU or a closed socket of the page's has lasted doubtGraceMs, it lays an
// overlay over the editor in the transition page's look ("Switching to the
// CPU standby..."), waits until the proxy says
// the new side serves and is ready and the workbench URL answers 200 there,
// then reloads into it. Nobody clicks. A doubt that clears takes the overlay
// away without a reload. Every retry is bounded and backs off.
import { createHash } from 'node:crypto';
import { EVENTS_PATH } from '../editor-events.ts';
import { jsonForScript } from './escape.ts';
import { READY_TEXT, WAITING_FOR_PROXY } from './transition.ts';

/** Where the proxy serves the script. */
export const EDITOR_SCRIPT_PATH = '/_standby/editor.js';

/** The overlay's title, per direction. */
export const TO_STANDBY_TEXT = 'Switching to the CPU standby...';
export const TO_GPU_TEXT = 'Switching back to the GPU...';
export const RECONNECTING_GPU_TEXT = 'Reconnecting to the GPU...';
export const RECONNECTING_STANDBY_TEXT = 'Reconnecting to the CPU standby...';

/** What the script reads from its embedded config (exported for tests). */
export interface EditorScriptConfig {
  eventsPath: string;
  /** first pause before the workbench URL is asked again, ms (doubles, capped at maxCheckGapMs) */
  checkGapMs: number;
  maxCheckGapMs: number;
  /** asks of the workbench URL per proxy event before the script waits for the next event */
  maxChecks: number;
  /** abort one ask after this, ms */
  checkTimeoutMs: number;
  /** at least this long between two reloads of one tab (guards a reload loop), ms */
  minReloadGapMs: number;
  /** longest pause before the event stream is opened again after the proxy refused it, ms */
  maxReconnectMs: number;
  /**
   * how long a doubt alone (the proxy's `suspect`, or one of the page's sockets closing) must last before
   * the overlay shows, ms: a busy host's late heartbeat or a socket that reconnects at once pass unseen.
   * A switch, a route move or a side not ready show it at once
   */
  doubtGraceMs: number;
  text: { toStandby: string; toGpu: string; reconnectingGpu: string; reconnectingStandby: string; waiting: string; ready: string };
}

const CONFIG: EditorScriptConfig = {
  eventsPath: EVENTS_PATH,
  checkGapMs: 200,
  maxCheckGapMs: 3_000,
  maxChecks: 60,
  checkTimeoutMs: 5_000,
  minReloadGapMs: 2_000,
  maxReconnectMs: 30_000,
  doubtGraceMs: 300,
  text: { toStandby: TO_STANDBY_TEXT, toGpu: TO_GPU_TEXT, reconnectingGpu: RECONNECTING_GPU_TEXT, reconnectingStandby: RECONNECTING_STANDBY_TEXT, waiting: WAITING_FOR_PROXY, ready: READY_TEXT },
};

// The transition page's colours and shapes (proxy/pages/transition.ts), scoped to the overlay's shadow root.
const STYLE = `
:host { all: initial; }
:host([hidden]) { display: none !important; }
.backdrop {
  position: fixed; inset: 0; z-index: 2147483647; display: flex; align-items: center; justify-content: center;
  padding: 24px 16px; background: rgb(16 20 25 / 55%); backdrop-filter: blur(2px);
  --bg: #f3f5f8; --card: #ffffff; --text: #17202c; --muted: #4e5968; --line: #d9dee5;
  --line-strong: #b9c1cc; --accent: #2352c4; --accent-soft: #edf2fd; --panel: #f6f8fa;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif;
  color: var(--text);
}
@media (prefers-color-scheme: dark) {
  .backdrop {
    --card: #181e26; --text: #e7ebf0; --muted: #a6b0bd; --line: #2d3541;
    --line-strong: #4a5566; --accent: #86a8ff; --accent-soft: #1c2638; --panel: #131920;
  }
}
.card {
  width: 100%; max-width: 520px; padding: 28px 32px; box-sizing: border-box;
  background: var(--card); border: 1px solid var(--line); border-radius: 16px;
  box-shadow: 0 1px 2px rgb(16 24 40 / 4%), 0 12px 32px rgb(16 24 40 / 18%);
}
.brand { display: flex; align-items: center; gap: 8px; margin: 0 0 12px; color: var(--muted); font-size: 14px; font-weight: 600; letter-spacing: .02em; }
.brand svg { fill: var(--accent); }
h1 { margin: 0 0 20px; font-size: 24px; line-height: 1.25; font-weight: 700; letter-spacing: -.01em; }
.machines { display: grid; grid-template-columns: minmax(0, 1fr) auto minmax(0, 1fr); align-items: stretch; gap: 12px; margin: 0 0 20px; }
.machine { min-width: 0; padding: 14px 10px 12px; display: flex; flex-direction: column; align-items: center; justify-content: center; gap: 2px; text-align: center; border: 1.5px solid var(--line); border-radius: 12px; }
.machine svg { width: 36px; height: 36px; margin-bottom: 6px; }
.machine.from { border-style: dashed; border-color: var(--line-strong); color: var(--muted); }
.machine.to { border-color: var(--accent); background: var(--accent-soft); }
.machine.to svg { color: var(--accent); }
.kind { font-weight: 600; }
.tag { margin-top: 6px; font-size: 11.5px; font-weight: 700; letter-spacing: .07em; text-transform: uppercase; }
.machine.to .tag { color: var(--accent); }
.arrow { align-self: center; color: var(--accent); }
.arrow svg { display: block; width: 48px; height: 24px; }
.flow { stroke-dasharray: 4 6; animation: flow 1.2s linear infinite; }
@keyframes flow { to { stroke-dashoffset: -20; } }
.status { display: flex; align-items: flex-start; gap: 12px; margin: 0 0 14px; padding: 12px 14px; background: var(--panel); border: 1px solid var(--line); border-radius: 12px; }
.spinner { flex: none; width: 18px; height: 18px; margin-top: 3px; border-radius: 50%; border: 2.5px solid var(--line); border-top-color: var(--accent); animation: spin .9s linear infinite; box-sizing: border-box; }
@keyframes spin { to { transform: rotate(360deg); } }
.line { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.explain { margin: 0; color: var(--muted); font-size: 14px; }
@media (prefers-reduced-motion: reduce) { .spinner, .flow { animation: none; } }
`;

/** One SVG as [tag, attributes] children, built with createElementNS (no HTML parsing: Trusted Types may be enforced). */
type Shape = [string, Record<string, string>];
const ICON_ATTRS = { viewBox: '0 0 40 40', fill: 'none', stroke: 'currentColor', 'stroke-width': '2', 'stroke-linecap': 'round', 'stroke-linejoin': 'round' };
const CHIP: Shape[] = [['rect', { x: '9', y: '9', width: '22', height: '22', rx: '3' }], ['rect', { x: '15', y: '15', width: '10', height: '10', rx: '1.5' }], ['path', { d: 'M15 4v5M20 4v5M25 4v5M15 31v5M20 31v5M25 31v5M4 15h5M4 20h5M4 25h5M31 15h5M31 20h5M31 25h5' }]];
const SERVER: Shape[] = [['rect', { x: '6', y: '7', width: '28', height: '11', rx: '2.5' }], ['rect', { x: '6', y: '22', width: '28', height: '11', rx: '2.5' }], ['path', { d: 'M11 12.5h.01M11 27.5h.01M17 12.5h12M17 27.5h12' }]];
const ARROW: Shape[] = [['path', { class: 'flow', d: 'M3 12h36' }], ['path', { d: 'M35 6l7 6-7 6' }]];
const BRAND: Shape[] = [['rect', { x: '1.5', y: '2.5', width: '13', height: '4.5', rx: '1.5' }], ['rect', { x: '1.5', y: '9', width: '13', height: '4.5', rx: '1.5' }]];

const SCRIPT = `(() => {
  'use strict';
  if (window.__standbyEditor) return;
  window.__standbyEditor = true;
  const cfg = ${jsonForScript(CONFIG)};
  const STYLE = ${jsonForScript(STYLE)};
  const SHAPES = ${jsonForScript({ chip: CHIP, server: SERVER, arrow: ARROW, brand: BRAND, icon: ICON_ATTRS })};
  const me = document.currentScript;
  // the generation and side the proxy served this page under
  const loaded = (me && me.dataset.generation) || '';
  const loadedSide = (me && me.dataset.side) || 'primary';
  const MOVING = ['failing_over', 'switching_back'];
  const reloadKey = 'standby-editor-reload-at';
  let state = null;
  let localDown = false;
  let reloading = false;
  let checking = false;
  let checks = 0;
  let checkTimer = 0;
  let overlay = null;
  let doubtSince = 0;
  let doubtTimer = 0;

  // The page's own WebSockets to this origin (code-server's): one that closes without the page
  // asking is a sign the machine behind went away, often before the proxy knows it. Not while the
  // page itself is leaving (a reload, a navigation): the browser closes them then, and the overlay
  // would flash over a page that is going anyway.
  let leaving = false;
  window.addEventListener('pagehide', () => { leaving = true; });
  window.addEventListener('pageshow', () => { leaving = false; });
  const Native = window.WebSocket;
  if (typeof Native === 'function') {
    const asked = new WeakSet();
    window.WebSocket = class WebSocket extends Native {
      constructor(url, protocols) {
        super(url, protocols);
        let same = false;
        try { same = new URL(url, location.href).host === location.host; } catch {}
        if (!same) return;
        this.addEventListener('open', () => { if (localDown) { localDown = false; update(); } });
        this.addEventListener('close', (e) => {
          if (asked.has(this) || e.code === 1000 || leaving) return;
          localDown = true;
          update();
        });
      }
      close(...args) { asked.add(this); return super.close(...args); }
    };
  }

  function svg(shapes, attrs) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    el.setAttribute('aria-hidden', 'true');
    for (const [tag, a] of shapes) {
      const child = document.createElementNS('http://www.w3.org/2000/svg', tag);
      for (const [k, v] of Object.entries(a)) child.setAttribute(k, v);
      el.appendChild(child);
    }
    return el;
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function machine(cls, kind, tag) {
    const m = el('div', 'machine ' + cls);
    m.append(svg(/gpu/i.test(kind) ? SHAPES.chip : SHAPES.server, SHAPES.icon), el('span', 'kind', kind), el('span', 'tag', tag));
    return m;
  }
  function build() {
    const host = document.createElement('standby-overlay');
    host.id = 'standby-overlay';
    host.hidden = true;
    const root = host.attachShadow({ mode: 'open' });
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet];
    } catch {
      root.append(el('style', '', STYLE));
    }
    const backdrop = el('div', 'backdrop');
    const card = el('section', 'card');
    card.setAttribute('role', 'alertdialog');
    card.setAttribute('aria-modal', 'true');
    card.setAttribute('aria-labelledby', 'standby-title');
    const brand = el('p', 'brand');
    brand.append(svg(SHAPES.brand, { viewBox: '0 0 16 16', width: '16', height: '16' }), 'Standby');
    const title = el('h1', 'title');
    title.id = 'standby-title';
    const machines = el('div', 'machines');
    const status = el('div', 'status');
    const line = el('p', 'line');
    line.setAttribute('role', 'status');
    line.setAttribute('aria-live', 'polite');
    status.append(el('span', 'spinner'), line);
    const explain = el('p', 'explain', 'Your editor reloads by itself once the other machine answers. Files saved up to the last sync are there.');
    card.append(brand, title, machines, status, explain);
    backdrop.append(card);
    root.append(backdrop);
    (document.documentElement || document).appendChild(host);
    return { host, title, machines, line, direction: '' };
  }

  // What the overlay says now, or null: nothing is happening.
  function wanted() {
    const s = state;
    const moved = s !== null && s.generation !== loaded;
    const busy = s !== null && (s.suspect || !s.ready || MOVING.includes(s.phase));
    if (!moved && !busy && !localDown && !reloading) return null;
    let to = '';
    if (s && s.phase === 'switching_back') to = 'primary';
    else if (s && (s.phase === 'failing_over' || s.suspect)) to = 'standby';
    else if (moved && s.serving) to = s.serving;
    if (to === '') {
      return { title: loadedSide === 'standby' ? cfg.text.reconnectingStandby : cfg.text.reconnectingGpu, from: loadedSide, to: loadedSide };
    }
    return { title: to === 'standby' ? cfg.text.toStandby : cfg.text.toGpu, from: to === 'standby' ? 'primary' : 'standby', to };
  }
  function kind(side) { return side === 'standby' ? 'CPU standby' : 'GPU'; }

  // Only a doubt (the proxy's, or a socket of the page's closing) asks for the overlay: nothing moved, nothing is moving.
  function doubtOnly() {
    const s = state;
    return !reloading && !(s !== null && (s.generation !== loaded || !s.ready || MOVING.includes(s.phase)));
  }
  function update() {
    const w = wanted();
    if (w === null) {
      doubtSince = 0;
      clearTimeout(doubtTimer);
      if (overlay) { overlay.host.hidden = true; overlay.host.dataset.state = 'hidden'; }
      return;
    }
    if (doubtOnly() && !(overlay && overlay.host.dataset.state === 'shown')) {
      const now = performance.now();
      if (doubtSince === 0) doubtSince = now;
      if (now - doubtSince < cfg.doubtGraceMs) {
        clearTimeout(doubtTimer);
        doubtTimer = setTimeout(update, Math.ceil(cfg.doubtGraceMs - (now - doubtSince)));
        return;
      }
    }
    doubtSince = 0;
    overlay = overlay || build();
    const direction = w.from + '>' + w.to;
    if (overlay.direction !== direction) {
      overlay.direction = direction;
      const arrow = el('div', 'arrow');
      arrow.append(svg(SHAPES.arrow, { viewBox: '0 0 48 24', width: '48', height: '24', fill: 'none', stroke: 'currentColor', 'stroke-width': '2', 'stroke-linecap': 'round', 'stroke-linejoin': 'round' }));
      overlay.machines.replaceChildren(machine('from', kind(w.from), w.from === w.to ? 'reconnecting' : 'was serving'), arrow, machine('to', kind(w.to), w.from === w.to ? 'serving' : 'taking over'));
    }
    if (overlay.title.textContent !== w.title) overlay.title.textContent = w.title;
    const line = reloading ? cfg.text.ready : state ? state.message : cfg.text.waiting;
    if (overlay.line.textContent !== line) overlay.line.textContent = line;
    overlay.host.dataset.state = 'shown';
    overlay.host.dataset.direction = direction;
    overlay.host.hidden = false;
    maybeReload();
  }

  // The proxy says another generation serves and is ready: once the workbench URL answers 200 there, reload.
  function maybeReload() {
    const s = state;
    if (reloading || checking || s === null || s.generation === loaded || !s.ready || MOVING.includes(s.phase)) return;
    if (checks >= cfg.maxChecks) return;
    checking = true;
    clearTimeout(checkTimer);
    const abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(), cfg.checkTimeoutMs);
    fetch(location.href, { cache: 'no-store', credentials: 'same-origin', signal: abort.signal, headers: { accept: 'text/html' } })
      .then((r) => { r.body && r.body.cancel().catch(() => {}); return r.status; }, () => 0)
      .then((status) => {
        clearTimeout(deadline);
        checking = false;
        if (status === 200) return reload();
        checks++;
        const gap = Math.min(cfg.checkGapMs * 2 ** Math.min(checks, 10), cfg.maxCheckGapMs);
        checkTimer = setTimeout(maybeReload, Math.round(gap * (0.8 + Math.random() * 0.4)));
      });
  }
  function reload() {
    reloading = true;
    update();
    // a proxy that says ready yet serves the old generation again gets a reload every minReloadGapMs at most
    let wait = 0;
    try {
      const last = Number(sessionStorage.getItem(reloadKey)) || 0;
      wait = Math.max(0, Math.min(last + cfg.minReloadGapMs - Date.now(), cfg.minReloadGapMs));
      sessionStorage.setItem(reloadKey, String(Date.now() + wait));
    } catch {}
    setTimeout(() => location.reload(), wait);
  }

  function valid(s) {
    return s !== null && typeof s === 'object' && typeof s.phase === 'string' && typeof s.ready === 'boolean' &&
      typeof s.suspect === 'boolean' && typeof s.generation === 'string' && typeof s.message === 'string' &&
      (s.serving === null || s.serving === 'primary' || s.serving === 'standby');
  }
  // The proxy's stream: the browser reconnects a dropped one by itself (retry:); a refused one
  // (401, 503 at the cap) is closed for good, and opened again here after a growing pause.
  let refusals = 0;
  function listen() {
    if (typeof EventSource !== 'function') return;
    const es = new EventSource(cfg.eventsPath);
    es.onmessage = (e) => {
      let s = null;
      try { s = JSON.parse(e.data); } catch {}
      if (!valid(s)) return;
      refusals = 0;
      // says on the page that it follows the proxy (for whoever inspects it, and the tests)
      document.documentElement.dataset.standby = 'listening';
      const changed = state === null || state.generation !== s.generation || state.ready !== s.ready || state.phase !== s.phase;
      state = s;
      if (changed) checks = 0;
      update();
    };
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) return;
      es.close();
      refusals++;
      const pause = Math.min(1000 * 2 ** Math.min(refusals, 10), cfg.maxReconnectMs);
      setTimeout(listen, Math.round(pause * (0.8 + Math.random() * 0.4)));
    };
  }
  listen();
})();
`;

/** The script's text, as served. */
export const EDITOR_SCRIPT = SCRIPT;
/** A hash of the text: the injected tag's ?v=, so a new proxy's script is never taken from a browser's cache. */
export const EDITOR_SCRIPT_VERSION = createHash('sha256').update(SCRIPT).digest('hex').slice(0, 12);
