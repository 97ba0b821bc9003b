// The admin's session for the dashboard (/_standby/): the admin token typed
// into a form (POSTed, never in a URL), then a cookie (Secure, HttpOnly,
// SameSite=Strict, Path=/_standby/) that the admin API and the event stream
// accept as they accept the Bearer token. With the cookie, a request that may
// change something (any method but GET and HEAD) must also carry an Origin of
// this proxy: SameSite=Strict already keeps other sites' requests from
// carrying it, the Origin check holds where a browser does not honour it.
//
// Stateless (session-cookie.ts), signed with <stateDir>/admin-session-key and
// bound to the admin token of now: a rotation of the token (SIGHUP) or a
// deleted key file ends every session. Failed tries count in the failed-auth
// throttle like a wrong token. A logout clears the cookie in that browser;
// a copy of the cookie stays valid until it expires (ADMIN_SESSION_HOURS).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../core/log.ts';
import type { AdminTokens } from './admin-tokens.ts';
import { tooMany, type AuthThrottle } from './auth-throttle.ts';
import { isForm, readForm } from './form-body.ts';
import { ADMIN_LOGIN_PATH, ADMIN_LOGOUT_PATH, adminLoginPage } from './pages/dashboard-login.ts';
import { sendProblem } from './problem.ts';
import { requestOrigin } from './same-origin.ts';
import { clearCookieLine, cookieValue, SessionSigner, setCookieLine, sha256, type CookieScope } from './session-cookie.ts';

export const DASHBOARD_PATH = '/_standby/';
export { ADMIN_LOGIN_PATH, ADMIN_LOGOUT_PATH };
export const ADMIN_COOKIE = 'standby_admin';
/** how long a dashboard session lasts, hours */
export const ADMIN_SESSION_HOURS = 12;
const SCOPE: CookieScope = { name: ADMIN_COOKIE, path: DASHBOARD_PATH, sameSite: 'Strict' };
/** a token is at most a few hundred bytes: a bigger form is not a login */
const MAX_FORM_BYTES = 8 * 1024;

/** How a request to the admin API stands with the session cookie. */
export type SessionAdmission =
  /** no valid session cookie (or a Bearer token, which the caller checks instead) */
  | 'none'
  /** a valid session, and the request may go */
  | 'session'
  /** a valid session, but a change asked from another origin (or none said): refused, 403 */
  | 'cross-origin';

export class AdminSession {
  #signer: SessionSigner;
  #throttle: AuthThrottle;
  #tokens: AdminTokens;
  #log: Logger;
  #publicUrl: string | undefined;

  /** `publicUrl`: proxy.json's publicUrl, whose origin is this proxy's too (behind a front end that rewrites Host) */
  constructor(stateDir: string, tokens: AdminTokens, throttle: AuthThrottle, log: Logger, publicUrl?: string) {
    this.#publicUrl = publicUrl;
    this.#tokens = tokens;
    this.#throttle = throttle;
    this.#log = log;
    this.#signer = new SessionSigner(stateDir, 'admin-session-key', "the dashboard session's signing key", () => sha256(tokens.current));
  }

  /** The request carries a dashboard session signed here under the admin token of now, not expired. */
  allows(req: IncomingMessage, now = Date.now()): boolean {
    return this.#signer.valid(cookieValue(req, ADMIN_COOKIE), now);
  }

  /** For the admin API: a request with a Bearer token is the token's business ('none' here). */
  admits(req: IncomingMessage): SessionAdmission {
    if (req.headers.authorization !== undefined || !this.allows(req)) return 'none';
    const method = req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD') return 'session';
    return requestOrigin(req, this.#publicUrl) === 'same' ? 'session' : 'cross-origin';
  }

  /** A session's value, for tests and the login. */
  sessionValue(now = Date.now()): string {
    return this.#signer.value(ADMIN_SESSION_HOURS * 3600, now);
  }

  /** Whether `path` is the session's (answered by handle()). */
  owns(path: string): boolean {
    return path === ADMIN_LOGIN_PATH || path === ADMIN_LOGOUT_PATH;
  }

  /** The login form (GET /_standby/ without a session). */
  loginForm(res: ServerResponse, status = 200, error?: string, headers: Record<string, string> = {}): void {
    const page = adminLoginPage(ADMIN_SESSION_HOURS, error);
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-security-policy': page.csp, 'content-length': Buffer.byteLength(page.html), ...headers });
    res.end(res.req?.method === 'HEAD' ? undefined : page.html);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://proxy').pathname;
    if (req.method !== 'POST') return this.loginForm(res, 405, 'Use the form.', { allow: 'POST' });
    if (path === ADMIN_LOGOUT_PATH) {
      // only from this proxy's own page: no other site may log the admin out
      if (requestOrigin(req, this.#publicUrl) === 'other') return sendProblem(res, 'STANDBY_ERR_UNAUTHORIZED', 'a logout from another origin', { status: 403 });
      res.writeHead(303, { location: DASHBOARD_PATH, 'set-cookie': clearCookieLine(SCOPE), 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }
    // a login posted from another site would plant the attacker's session (login CSRF)
    if (requestOrigin(req, this.#publicUrl) === 'other') return sendProblem(res, 'STANDBY_ERR_UNAUTHORIZED', 'a login from another origin', { status: 403 });
    const address = this.#throttle.addressOf(req);
    const wait = this.#throttle.retryAfterMs(address);
    if (wait > 0) return tooMany(res, wait);
    if (!isForm(req)) return this.loginForm(res, 415, 'Send the form as application/x-www-form-urlencoded.');
    const form = await readForm(req, MAX_FORM_BYTES);
    if (!form) return this.loginForm(res, 413, 'That form is too large.');
    if (!this.#tokens.accepts(form.get('token') ?? '')) {
      this.#throttle.failed(address, 'dashboard');
      return this.loginForm(res, 401, 'Wrong admin token.');
    }
    this.#throttle.succeeded(address);
    this.#log.info({ client: address }, 'admin logged in to the dashboard');
    res.writeHead(303, { location: DASHBOARD_PATH, 'set-cookie': setCookieLine(SCOPE, this.sessionValue(), ADMIN_SESSION_HOURS * 3600), 'cache-control': 'no-store', 'content-length': 0 });
    res.end();
  }
}
