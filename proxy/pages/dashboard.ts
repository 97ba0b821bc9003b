// The dashboard's page (proxy/dashboard.ts serves it to an admin session): a
// shell of sections that its script (dashboard-script.ts) fills from the
// admin API and keeps current from the event stream. Nothing from outside the
// proxy: uPlot and the script are the proxy's own assets; the CSP allows
// scripts and styles from this origin (and this answer's nonce) only.
import { randomBytes } from 'node:crypto';
import { escapeHtml } from './escape.ts';
import { dashboardHead } from './page-look.ts';
import { DASHBOARD_SCRIPT_PATH, DASHBOARD_SCRIPT_VERSION } from './dashboard-script.ts';

export interface DashboardPageOptions {
  uplotVersion: string;
  logoutPath: string;
}

const STYLE = `
body { display: block; padding: 16px; min-height: 0; }
.top { display: flex; align-items: center; justify-content: space-between; gap: 12px; max-width: 1180px; margin: 0 auto 16px; }
.top h1 { margin: 0; font-size: 22px; }
.top form { margin: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 460px), 1fr)); gap: 16px; max-width: 1180px; margin: 0 auto; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 16px 18px; min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { margin: 0 0 12px; font-size: 17px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; font-size: 14px; }
th, td { text-align: left; padding: 5px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.scroll { overflow-x: auto; }
.hosts { margin-top: 14px; }
.ok { color: #1b7f3b; } .bad { color: #c62828; } .warn { color: #a15c00; }
@media (prefers-color-scheme: dark) { .ok { color: #5fd07f; } .bad { color: #ff7b72; } .warn { color: #f0b35a; } }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 13px; font-weight: 600; background: var(--accent-soft); color: var(--accent); }
.pill.drill { background: #efe7fb; color: #6a3cc1; }
@media (prefers-color-scheme: dark) { .pill.drill { background: #2a2140; color: #c5a8ff; } }
button, .button { padding: 7px 14px; font: inherit; font-weight: 600; color: #fff; background: var(--accent); border: 0; border-radius: 8px; cursor: pointer; }
@media (prefers-color-scheme: dark) { button, .button { color: #101419; } }
button.quiet { background: transparent; color: var(--accent); border: 1px solid var(--line-strong); }
button:disabled { opacity: .5; cursor: default; }
.chart { width: 100%; min-height: 220px; }
.progress { height: 8px; background: var(--panel); border: 1px solid var(--line); border-radius: 4px; overflow: hidden; margin: 6px 0; }
.progress > div { height: 100%; background: var(--accent); width: 0; }
.failover { padding: 10px 0; border-bottom: 1px solid var(--line); }
.failover:last-child { border-bottom: 0; }
.failover .head { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: baseline; margin-bottom: 6px; }
.bars { display: flex; width: 100%; height: 22px; border-radius: 4px; overflow: hidden; background: var(--panel); }
.bar { min-width: 3px; height: 100%; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 13px; color: var(--muted); margin-top: 4px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
.p-detection { background: #d64545; } .p-final-pass { background: #e08a2c; } .p-fence { background: #8e5bd8; }
.p-route { background: #2f7fd8; } .p-gpu-search { background: #1ea39a; } .p-provisioning { background: #3aa655; }
.p-ssh-ready { background: #7fa83a; } .p-agent-ready { background: #a8a23a; } .p-restore { background: #c7a22a; } .p-switch-back { background: #5a6b85; }
form.settings { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 300px), 1fr)); gap: 10px 20px; }
form.settings label { display: block; font-weight: 600; font-size: 14px; }
form.settings .effect { font-weight: 400; color: var(--muted); font-size: 12px; margin-left: 6px; }
form.settings input[type=text], form.settings input[type=number] { width: 100%; padding: 6px 8px; font: inherit; color: inherit; background: transparent; border: 1px solid var(--line-strong); border-radius: 6px; }
form.settings .actions { grid-column: 1 / -1; display: flex; gap: 12px; align-items: center; }
.note { color: var(--muted); font-size: 14px; }
.live { font-size: 13px; color: var(--muted); }
`;

export function dashboardPage(o: DashboardPageOptions): { html: string; csp: string } {
  const nonce = randomBytes(16).toString('base64');
  const csp = ["default-src 'none'", "script-src 'self'", `style-src 'self' 'nonce-${nonce}'`, "connect-src 'self'", "img-src 'self' data:", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"].join('; ');
  const v = encodeURIComponent(o.uplotVersion);
  const html = `${dashboardHead('Standby dashboard', nonce, STYLE, `<link rel="stylesheet" href="/_standby/assets/uPlot.min.css?v=${v}">
<script src="/_standby/assets/uPlot.iife.min.js?v=${v}" defer></script>
<script src="${DASHBOARD_SCRIPT_PATH}?v=${DASHBOARD_SCRIPT_VERSION}" defer></script>
`)}
<body>
<header class="top">
  <div><p class="brand">Standby</p><h1>Dashboard</h1></div>
  <div><span class="live" id="live">connecting...</span></div>
  <form method="post" action="${escapeHtml(o.logoutPath)}"><button class="quiet" id="logout" type="submit">Log out</button></form>
</header>
<div class="grid">
  <section id="state">
    <h2>Now</h2>
    <dl>
      <dt>Serving</dt><dd id="serving">-</dd>
      <dt>Phase</dt><dd id="phase">-</dd>
      <dt>Epoch</dt><dd id="epoch">-</dd>
      <dt>Failovers</dt><dd id="failover-count">-</dd>
    </dl>
    <div id="recovery"></div>
    <div class="scroll hosts"><table id="hosts"><thead><tr><th>Host</th><th>Role</th><th>Health</th><th>Heartbeat</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section id="sync">
    <h2>Sync</h2>
    <dl>
      <dt>Copy</dt><dd id="sync-direction">-</dd>
      <dt>Pending changes</dt><dd id="pending">-</dd>
      <dt>Oldest pending</dt><dd id="watermark-age">-</dd>
      <dt>Watermark</dt><dd id="watermark">-</dd>
      <dt>Last pass</dt><dd id="last-pass">-</dd>
      <dt>Last error</dt><dd id="sync-error">-</dd>
    </dl>
    <div id="held" hidden>
      <p class="warn"><strong>Mass deletions are held.</strong> The agent holds deletions above its guard's limit until someone confirms them.</p>
      <button id="confirm-deletes" type="button">Confirm the held deletions</button>
      <span class="note" id="confirm-result"></span>
    </div>
  </section>
  <section id="lag" class="wide">
    <h2>Sync lag</h2>
    <div id="lag-chart" class="chart" data-samples="0"></div>
    <p class="note">The age of the oldest change not yet on the standby, per sample (the highest heard in it).</p>
  </section>
  <section id="history" class="wide">
    <h2>Failover history</h2>
    <div id="failovers"><p class="note">None in the last 30 days.</p></div>
    <div class="legend" id="phase-legend"></div>
  </section>
  <section id="report">
    <h2>The last 30 days</h2>
    <dl id="report-figures"></dl>
  </section>
  <section id="costs">
    <h2>Costs</h2>
    <dl id="cost-figures"></dl>
  </section>
  <section id="settings" class="wide">
    <h2>Settings</h2>
    <div id="settings-body"><p class="note">Loading...</p></div>
  </section>
</div>
</body>
</html>
`;
  return { html, csp };
}
