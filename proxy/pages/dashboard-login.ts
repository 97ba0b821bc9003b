// The admin's login to the dashboard (proxy/admin-session.ts): the admin token
// typed into one field and POSTed to this origin, never put in a URL. No
// script and no external asset: a strict CSP.
import { randomBytes } from 'node:crypto';
import { escapeHtml } from './escape.ts';
import { dashboardHead } from './page-look.ts';

export const ADMIN_LOGIN_PATH = '/_standby/admin/login';
export const ADMIN_LOGOUT_PATH = '/_standby/admin/logout';

const STYLE = `
main { max-width: 400px; }
h1 { margin: 0 0 16px; font-size: 22px; }
label { display: block; margin-bottom: 4px; font-weight: 600; }
input[type=password] { width: 100%; padding: 10px 12px; font: inherit; color: inherit; background: transparent; border: 1px solid var(--line-strong); border-radius: 8px; }
button { margin-top: 16px; width: 100%; padding: 10px; font: inherit; font-weight: 600; color: #fff; background: var(--accent); border: 0; border-radius: 8px; cursor: pointer; }
@media (prefers-color-scheme: dark) { button { color: #101419; } }
.error { color: #c62828; margin: 0 0 12px; }
.hint { color: var(--muted); font-size: 14px; margin: 12px 0 0; }
`;

/** The page and the Content-Security-Policy header it is served with. */
/** `sessionHours`: how long a session lasts, for the line under the form. */
export function adminLoginPage(sessionHours: number, error?: string): { html: string; csp: string } {
  const nonce = randomBytes(16).toString('base64');
  const csp = ["default-src 'none'", `style-src 'nonce-${nonce}'`, "img-src data:", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"].join('; ');
  const html = `${dashboardHead('Standby dashboard: log in', nonce, STYLE)}
<body>
<main id="login">
  <p class="brand">Standby</p>
  <h1>Dashboard</h1>
  ${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
  <form method="post" action="${ADMIN_LOGIN_PATH}">
    <label for="token">Admin token</label>
    <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
    <button type="submit">Log in</button>
  </form>
  <p class="hint">The proxy's adminToken (proxy.json). The session ends after ${sessionHours} hours, at a logout or when the token is rotated.</p>
</main>
</body>
</html>
`;
  return { html, csp };
}
