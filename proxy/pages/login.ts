// The developer's login page (proxy/login.ts): one password field, posted to
// this origin only. No external assets and no script: a strict CSP.
import { randomBytes } from 'node:crypto';
import { escapeHtml } from './escape.ts';

export const LOGIN_PATH = '/_standby/login';
export const LOGOUT_PATH = '/_standby/logout';

export interface LoginPageOptions {
  /** where to go once logged in: a path on this origin (checked by the caller) */
  next: string;
  /** a line above the form: why the last try failed, or nothing */
  error?: string;
}

const STYLE = `
:root { color-scheme: light dark; --fg: #1f2328; --bg: #f6f8fa; --card: #fff; --line: #d0d7de; --accent: #0969da; --bad: #cf222e; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --card: #161b22; --line: #30363d; --accent: #4493f8; --bad: #f85149; } }
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; display: grid; place-items: center; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
main { width: min(92vw, 22rem); padding: 2rem; background: var(--card); border: 1px solid var(--line); border-radius: 12px; }
h1 { margin: 0 0 1rem; font-size: 1.25rem; }
label { display: block; margin-bottom: .25rem; font-weight: 600; }
input[type=password] { width: 100%; padding: .6rem .7rem; font: inherit; color: inherit; background: transparent; border: 1px solid var(--line); border-radius: 8px; }
button { margin-top: 1rem; width: 100%; padding: .6rem; font: inherit; font-weight: 600; color: #fff; background: var(--accent); border: 0; border-radius: 8px; cursor: pointer; }
.error { color: var(--bad); margin: 0 0 1rem; }
.brand { margin: 0 0 .5rem; font-size: .85rem; opacity: .7; }
`;

export function loginPage(o: LoginPageOptions): string {
  const nonce = randomBytes(16).toString('base64');
  const csp = ["default-src 'none'", `style-src 'nonce-${nonce}'`, "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"].join('; ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Log in to your workspace</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main>
  <p class="brand">Standby</p>
  <h1>Log in to your workspace</h1>
  ${o.error ? `<p class="error" role="alert">${escapeHtml(o.error)}</p>` : ''}
  <form method="post" action="${LOGIN_PATH}">
    <input type="hidden" name="next" value="${escapeHtml(o.next)}">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
    <button type="submit">Log in</button>
  </form>
</main>
</body>
</html>
`;
}
