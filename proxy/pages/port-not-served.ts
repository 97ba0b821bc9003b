// The page a browser gets for a forwarded port (/proxy/<port>/,
// /absproxy/<port>/) that nothing serves on the standby after a failover
// (proxy/forwarded-port.ts): the program behind it ran on the GPU, which was
// lost. One self-contained document like the transition page: inline CSS,
// no script, nothing fetched, a strict CSP; the port is the only variable.
import { randomBytes } from 'node:crypto';
import { escapeHtml } from './escape.ts';
import { PAGE_LOOK_CSS } from './page-look.ts';

/** The plain text every other request for such a port gets (XHR, fetch, assets). */
export function portNotServedText(port: number): string {
  return `standby proxy: nothing serves port ${checkedPort(port)} on the CPU standby; the program on it ran on the GPU, which was lost. It comes back with the switch back to a new GPU once the program is started there. Your workspace's files are safe.\n`;
}

export function portNotServedPage(port: number): string {
  const p = escapeHtml(String(checkedPort(port)));
  const nonce = randomBytes(16).toString('base64');
  const csp = ["default-src 'none'", `style-src 'nonce-${nonce}'`, "img-src data:", "base-uri 'none'", "form-action 'none'"].join('; ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="robots" content="noindex">
<title>Port ${p} ran on the GPU</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main aria-labelledby="title">
  <p class="brand"><svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false"><rect x="1.5" y="2.5" width="13" height="4.5" rx="1.5"/><rect x="1.5" y="9" width="13" height="4.5" rx="1.5"/></svg>Standby</p>
  <h1 id="title">Port <span class="port">${p}</span> ran on the GPU</h1>
  <p>The GPU your workspace ran on was lost, and the programs running there stopped with it. Your workspace now runs on the <strong>CPU standby</strong>, where nothing serves port <code>${p}</code>.</p>
  <p class="safe">Your workspace's files are safe: the standby has them, up to the last sync.</p>
  <h2>To get port ${p} back</h2>
  <ul>
    <li>When your workspace switches back to a new GPU, start the program there again: this address then reaches it.</li>
    <li>Or start it now on the standby, from the editor's terminal (a CPU: heavy work runs slower).</li>
  </ul>
  <p class="actions"><a class="button" href="/">Back to your workspace</a> <a href="">Try again</a></p>
</main>
<footer>Served by the Standby failover proxy: your workspace changed machine.</footer>
</body>
</html>
`;
}

/** A port is an integer 1-65535; the proxy never renders anything else. */
function checkedPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new RangeError(`portNotServedPage: port is ${JSON.stringify(port)}, expected an integer from 1 to 65535`);
  return port;
}

const STYLE = `${PAGE_LOOK_CSS}h1 { margin: 0 0 16px; font-size: 26px; line-height: 1.25; font-weight: 700; letter-spacing: -.01em; }
h2 { margin: 20px 0 8px; font-size: 17px; }
p, ul { margin: 0 0 12px; overflow-wrap: anywhere; }
ul { padding-left: 22px; }
li + li { margin-top: 6px; }
.safe { padding: 12px 14px; background: var(--accent-soft); border: 1px solid var(--line); border-radius: 12px; font-weight: 600; }
.actions { display: flex; flex-wrap: wrap; align-items: center; gap: 16px; margin: 20px 0 0; }
a { color: var(--accent); font-weight: 600; }
a.button { padding: 8px 14px; border-radius: 10px; background: var(--accent); color: var(--card); text-decoration: none; }
code, .port {
  font: 0.9em/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
}
code { padding: 1px 6px; border-radius: 6px; background: var(--panel); border: 1px solid var(--line); }
footer { max-width: 560px; color: var(--muted); font-size: 13px; text-align: center; }
@media (max-width: 480px) {
  body { justify-content: flex-start; padding: 16px 12px; }
  main { padding: 24px 18px; border-radius: 14px; }
  h1 { font-size: 22px; }
}
`;
