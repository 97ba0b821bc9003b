// The transition page: what the browser gets at the developer's URL while the
// route moves from one machine to the other (failover, or switching back).
// One self-contained HTML document: inline CSS, SVG and script, nothing
// fetched from anywhere but the proxy's own status path. Its script polls
// PublicStatus, shows the message as it changes, and reloads the page once
// the new backend is ready, so the browser lands in the workspace there.
import { randomBytes } from 'node:crypto';
import { escapeHtml, jsonForScript } from './escape.ts';
import { PAGE_LOOK_CSS } from './page-look.ts';
import { PUBLIC_STATUS_PATH } from './public-status.ts';

export interface TransitionMachine {
  /** host id, e.g. "gpu-1"; the proxy leaves it out (host ids are the operator's names, not the public's) */
  id?: string;
  /** what the user calls it, e.g. "GPU" or "CPU standby" */
  kind: string;
}

export interface TransitionPageOptions {
  /** the machine the workspace leaves */
  from: TransitionMachine;
  /** the machine the workspace moves to */
  to: TransitionMachine;
  /** the state machine's phase when the page is rendered, e.g. "failed_over" */
  phase: string;
  /** the status line when the page is rendered (the script keeps it current) */
  message: string;
  /** same-origin path that answers PublicStatus (default /_standby/status) */
  statusPath?: string;
  /** poll interval in ms while the status answers (default 1000, 100..60000) */
  pollMs?: number;
}

/** The status line when the status endpoint does not answer. */
export const WAITING_FOR_PROXY = 'Waiting for the proxy...';
/** The status line once the status says ready, just before the reload. */
export const READY_TEXT = 'Ready. Opening your workspace...';
const DEFAULT_MESSAGE = 'Preparing the new machine...';

/** What the page's script reads from its embedded config (exported for tests). */
export interface TransitionScriptConfig {
  statusPath: string;
  pollMs: number;
  /** abort a status request after this many ms */
  timeoutMs: number;
  /** longest wait between polls after failures */
  maxBackoffMs: number;
  /** at least this long between two reloads of one tab (guards a reload loop) */
  minReloadGapMs: number;
  waitingText: string;
  readyText: string;
  defaultText: string;
}

export function transitionPage(options: TransitionPageOptions): string {
  const statusPath = options.statusPath ?? PUBLIC_STATUS_PATH;
  const pollMs = options.pollMs ?? 1000;
  for (const [field, value] of [
    ['from.id', options.from.id ?? ''], ['from.kind', options.from.kind], ['to.id', options.to.id ?? ''], ['to.kind', options.to.kind],
    ['phase', options.phase], ['message', options.message],
  ] as const) {
    if (typeof value !== 'string') throw new TypeError(`transitionPage: ${field} is ${JSON.stringify(value)}, expected a string`);
  }
  // a path on this origin, so the page can never be pointed at another host
  if (typeof statusPath !== 'string' || !/^\/(?![/\\])[^\s\\]*$/.test(statusPath)) {
    throw new RangeError(`transitionPage: statusPath is ${JSON.stringify(statusPath)}, expected a path on this origin starting with a single "/"`);
  }
  if (!Number.isInteger(pollMs) || pollMs < 100 || pollMs > 60_000) {
    throw new RangeError(`transitionPage: pollMs is ${JSON.stringify(pollMs)}, expected an integer from 100 to 60000`);
  }
  const config: TransitionScriptConfig = {
    statusPath,
    pollMs,
    timeoutMs: Math.min(Math.max(2 * pollMs, 3000), 15_000),
    maxBackoffMs: Math.max(10_000, pollMs),
    minReloadGapMs: 2000,
    waitingText: WAITING_FOR_PROXY,
    readyText: READY_TEXT,
    defaultText: DEFAULT_MESSAGE,
  };
  const nonce = randomBytes(16).toString('base64');
  const from = { id: escapeHtml(options.from.id ?? ''), kind: escapeHtml(options.from.kind) };
  const to = { id: escapeHtml(options.to.id ?? ''), kind: escapeHtml(options.to.kind) };
  const idSpan = (id: string) => (id === '' ? '' : `\n        <span class="id">${id}</span>`);
  const named = (m: { id: string; kind: string }) => (m.id === '' ? `the ${m.kind}` : `${m.kind} ${m.id}`);
  const csp = [
    "default-src 'none'",
    `style-src 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');

  return `<!doctype html>
<html lang="en" data-state="waiting">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="robots" content="noindex">
<noscript><meta http-equiv="refresh" content="10"></noscript>
<title>Switching machine</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main aria-labelledby="title">
  <p class="brand"><svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false"><rect x="1.5" y="2.5" width="13" height="4.5" rx="1.5"/><rect x="1.5" y="9" width="13" height="4.5" rx="1.5"/></svg>Standby</p>
  <h1 id="title">Switching machine</h1>
  <figure class="move">
    <div class="machines" aria-hidden="true">
      <div class="machine from">
        ${iconFor(options.from.kind)}
        <span class="kind">${from.kind}</span>${idSpan(from.id)}
        <span class="tag">was serving</span>
      </div>
      <div class="arrow">${ARROW}</div>
      <div class="machine to">
        ${iconFor(options.to.kind)}
        <span class="kind">${to.kind}</span>${idSpan(to.id)}
        <span class="tag">taking over</span>
      </div>
    </div>
    <figcaption class="sr-only">Picture: your workspace moves from ${named(from)}, which was serving it, to ${named(to)}, which is taking over.</figcaption>
  </figure>
  <div class="status">
    <span class="spinner" aria-hidden="true"></span>
    <p id="status" role="status" aria-live="polite" aria-atomic="true">${escapeHtml(options.message || DEFAULT_MESSAGE)}</p>
  </div>
  <p class="explain">Your workspace is moving to <strong>${named(to)}</strong>. Files saved up to the last sync are there; this page reloads by itself.</p>
  <noscript><p class="noscript">This page updates itself with JavaScript, which is turned off. Reload the page in a few seconds to reach your workspace.</p></noscript>
  <p class="meta">Phase <code id="phase">${escapeHtml(options.phase)}</code></p>
</main>
<footer>Served by the Standby failover proxy while your workspace changes machine.</footer>
<script nonce="${nonce}">
${clientScript(config)}
</script>
</body>
</html>
`;
}

// The page's script: plain browser JavaScript (no build step), config embedded
// with jsonForScript.
function clientScript(config: TransitionScriptConfig): string {
  return `(() => {
  'use strict';
  const cfg = ${jsonForScript(config)};
  const root = document.documentElement;
  const statusEl = document.getElementById('status');
  const phaseEl = document.getElementById('phase');
  const reloadKey = 'standby-transition-reload-at';
  let timer = 0;
  let failures = 0;
  let inFlight = false;
  let reloading = false;

  function show(text) { if (statusEl.textContent !== text) statusEl.textContent = text; }
  function isStatus(s) {
    return s !== null && typeof s === 'object' && typeof s.phase === 'string' &&
      typeof s.ready === 'boolean' && typeof s.message === 'string' &&
      (s.active === null || (typeof s.active === 'object' && typeof s.active.role === 'string'));
  }
  function schedule(ms) {
    clearTimeout(timer);
    if (!reloading && !document.hidden) timer = setTimeout(poll, ms);
  }
  // after failures: doubling, capped, with jitter; polling never stops while visible
  function nextDelay() {
    if (failures === 0) return cfg.pollMs;
    const base = Math.min(cfg.pollMs * 2 ** Math.min(failures, 10), cfg.maxBackoffMs);
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }
  function reload() {
    reloading = true;
    clearTimeout(timer);
    root.dataset.state = 'ready';
    show(cfg.readyText);
    // a proxy that says ready yet serves this page again gets a reload every
    // minReloadGapMs at most, not a tight loop
    let wait = 0;
    try {
      const last = Number(sessionStorage.getItem(reloadKey)) || 0;
      wait = Math.max(0, Math.min(last + cfg.minReloadGapMs - Date.now(), cfg.minReloadGapMs));
      sessionStorage.setItem(reloadKey, String(Date.now() + wait));
    } catch {}
    setTimeout(() => location.reload(), wait);
  }
  async function poll() {
    if (inFlight || reloading || document.hidden) return;
    inFlight = true;
    const abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(), cfg.timeoutMs);
    try {
      const res = await fetch(cfg.statusPath, {
        cache: 'no-store', credentials: 'same-origin', signal: abort.signal,
        headers: { accept: 'application/json' },
      });
      if (!res.ok) throw new Error('status answered ' + res.status);
      const s = await res.json();
      if (!isStatus(s)) throw new Error('status has an unexpected shape');
      failures = 0;
      phaseEl.textContent = s.phase;
      if (s.ready) { reload(); return; }
      root.dataset.state = 'waiting';
      show(s.message || cfg.defaultText);
    } catch {
      failures++;
      root.dataset.state = 'offline';
      show(cfg.waitingText);
    } finally {
      clearTimeout(deadline);
      inFlight = false;
    }
    schedule(nextDelay());
  }
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(timer); else schedule(0);
  });
  window.addEventListener('pageshow', (e) => { if (e.persisted) schedule(0); });
  schedule(0);
})();`;
}

function iconFor(kind: string): string {
  return /gpu/i.test(kind) ? CHIP_ICON : SERVER_ICON;
}

const CHIP_ICON = `<svg class="icon" viewBox="0 0 40 40" width="40" height="40" aria-hidden="true" focusable="false" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><rect x="9" y="9" width="22" height="22" rx="3"/><rect x="15" y="15" width="10" height="10" rx="1.5"/><path d="M15 4v5M20 4v5M25 4v5M15 31v5M20 31v5M25 31v5M4 15h5M4 20h5M4 25h5M31 15h5M31 20h5M31 25h5"/></svg>`;

const SERVER_ICON = `<svg class="icon" viewBox="0 0 40 40" width="40" height="40" aria-hidden="true" focusable="false" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><rect x="6" y="7" width="28" height="11" rx="2.5"/><rect x="6" y="22" width="28" height="11" rx="2.5"/><path d="M11 12.5h.01M11 27.5h.01M17 12.5h12M17 27.5h12"/></svg>`;

const ARROW = `<svg viewBox="0 0 48 24" width="48" height="24" aria-hidden="true" focusable="false" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path class="flow" d="M3 12h36"/><path d="M35 6l7 6-7 6"/></svg>`;

const STYLE = `${PAGE_LOOK_CSS}h1 { margin: 0 0 24px; font-size: 26px; line-height: 1.25; font-weight: 700; letter-spacing: -.01em; }
figure { margin: 0 0 24px; }
.machines {
  display: grid; grid-template-columns: minmax(0, 1fr) auto minmax(0, 1fr);
  align-items: stretch; gap: 12px;
}
.machine {
  min-width: 0; padding: 16px 10px 14px;
  display: flex; flex-direction: column; align-items: center; justify-content: center; gap: 2px; text-align: center;
  border: 1.5px solid var(--line); border-radius: 12px;
}
.machine .icon { width: 40px; height: 40px; margin-bottom: 6px; }
.machine.from { border-style: dashed; border-color: var(--line-strong); color: var(--muted); }
.machine.to { border-color: var(--accent); background: var(--accent-soft); }
.machine.to .icon { color: var(--accent); }
.kind { font-weight: 600; overflow-wrap: anywhere; }
.machine.to .kind { color: var(--text); }
.id {
  font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
  overflow-wrap: anywhere;
}
.tag {
  margin-top: 8px; font-size: 11.5px; font-weight: 700; letter-spacing: .07em; text-transform: uppercase;
}
.machine.to .tag { color: var(--accent); }
.arrow { align-self: center; color: var(--accent); }
.arrow svg { display: block; width: 48px; height: 24px; }
.flow { stroke-dasharray: 4 6; animation: flow 1.2s linear infinite; }
@keyframes flow { to { stroke-dashoffset: -20; } }
.status {
  display: flex; align-items: flex-start; gap: 12px; margin: 0 0 16px; padding: 14px 16px;
  background: var(--panel); border: 1px solid var(--line); border-radius: 12px;
}
.spinner {
  flex: none; width: 18px; height: 18px; margin-top: 3px; border-radius: 50%;
  border: 2.5px solid var(--line); border-top-color: var(--accent);
  animation: spin .9s linear infinite;
}
@keyframes spin { to { transform: rotate(360deg); } }
[data-state="offline"] .spinner { border-top-color: var(--muted); animation-duration: 2.4s; }
[data-state="ready"] .spinner { border-color: var(--accent); animation: none; }
#status { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.explain { margin: 0 0 16px; overflow-wrap: anywhere; }
.noscript { margin: 0 0 16px; padding: 12px 14px; border: 1.5px solid var(--text); border-radius: 10px; font-weight: 600; }
.meta { margin: 0; color: var(--muted); font-size: 13px; }
code {
  font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
  padding: 1px 6px; border-radius: 6px; background: var(--panel); border: 1px solid var(--line);
  overflow-wrap: anywhere;
}
footer { max-width: 560px; color: var(--muted); font-size: 13px; text-align: center; }
.sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
@media (max-width: 480px) {
  body { justify-content: flex-start; padding: 16px 12px; }
  main { padding: 24px 18px; border-radius: 14px; }
  h1 { font-size: 22px; margin-bottom: 20px; }
  .machines { gap: 6px; }
  .machine { padding: 12px 6px; }
  .machine .icon { width: 32px; height: 32px; }
  .arrow svg { width: 28px; }
}
@media (prefers-reduced-motion: reduce) {
  .spinner, .flow { animation: none; }
  .flow { stroke-dasharray: none; }
}
`;
