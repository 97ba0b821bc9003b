// The developer's login in front of code-server (proxy.json `login`), for
// deployments that do not use code-server's own auth: a password form at
// /_standby/login, then a session cookie (Secure, HttpOnly, SameSite=Lax)
// that every request and WebSocket upgrade to code-server must carry; an
// upgrade must also come from this origin (Origin's host = Host). Failed
// tries count in the failed-auth throttle like a wrong token.
//
// The cookie is stateless (session-cookie.ts): signed with a key kept in
// <stateDir>/login-key and bound to the password, so it survives a proxy
// restart and a failover (the proxy serves both machines), and a new password
// (or a deleted key file) logs every browser out. Logout clears the cookie in
// that browser.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProxyConfig } from '../config/proxy.ts';
import type { Logger } from '../core/log.ts';
import { tooMany, type AuthThrottle } from './auth-throttle.ts';
import { isForm, readForm } from './form-body.ts';
import { isNavigation } from './navigation.ts';
import { LOGIN_PATH, LOGOUT_PATH, loginPage } from './pages/login.ts';
import { sendProblem } from './problem.ts';
import { pathOwner } from './request-path.ts';
import { requestOrigin } from './same-origin.ts';
import { clearCookieLine, cookieValue, secretsEqual, SessionSigner, setCookieLine, sha256, type CookieScope } from './session-cookie.ts';

export const SESSION_COOKIE = 'standby_session';
const SCOPE: CookieScope = { name: SESSION_COOKIE, path: '/', sameSite: 'Lax' };
/** a login form is a password and a path: anything bigger is not one */
const MAX_FORM_BYTES = 8 * 1024;

type LoginSettings = NonNullable<ProxyConfig['login']>;

/** Where a login may send the browser: a plain path to code-server on this origin, else "/". */
export function safeNext(next: string | null | undefined): string {
  if (!next || next.length > 2048 || !next.startsWith('/') || next.startsWith('//') || /[\\\s]/.test(next)) return '/';
  return pathOwner(next) === 'backend' ? next : '/';
}

export class Login {
  #settings: LoginSettings;
  #signer: SessionSigner;
  #throttle: AuthThrottle;
  #log: Logger;

  constructor(settings: LoginSettings, stateDir: string, throttle: AuthThrottle, log: Logger) {
    this.#settings = settings;
    this.#throttle = throttle;
    this.#log = log;
    const password = sha256(settings.password);
    this.#signer = new SessionSigner(stateDir, 'login-key', "the login's signing key", () => password);
  }

  /** A session cookie's value, good for sessionHours from `now` (ms). */
  sessionValue(now = Date.now()): string {
    return this.#signer.value(this.#settings.sessionHours * 3600, now);
  }

  /** The request carries a session this proxy signed, not expired. */
  allows(req: IncomingMessage, now = Date.now()): boolean {
    return this.#signer.valid(cookieValue(req, SESSION_COOKIE), now);
  }

  /**
   * A WebSocket upgrade to code-server: why it is refused (401: no session; 403: from another
   * origin, which a cookie alone would let through), or undefined when it may go.
   */
  refusesUpgrade(req: IncomingMessage): { status: 401 | 403; why: string } | undefined {
    if (!this.allows(req)) return { status: 401, why: `log in first: ${LOGIN_PATH}` };
    if (requestOrigin(req) !== 'same') return { status: 403, why: 'a WebSocket from another origin' };
    return undefined;
  }

  /** A request to code-server without a session: a navigation goes to the login page, anything else gets 401. */
  refuse(req: IncomingMessage, res: ServerResponse): void {
    if (isNavigation(req)) {
      res.writeHead(302, { location: `${LOGIN_PATH}?next=${encodeURIComponent(safeNext(req.url))}`, 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }
    sendProblem(res, 'STANDBY_ERR_UNAUTHORIZED', `log in first: ${LOGIN_PATH}`);
  }

  /** Whether `path` is the login's (answered by handle()). */
  owns(path: string): boolean {
    return path === LOGIN_PATH || path === LOGOUT_PATH;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://proxy');
    if (url.pathname === LOGOUT_PATH) {
      // a logout only from this origin's own pages: no other site may log the developer out
      if (req.method !== 'POST') return this.#page(res, 405, safeNext('/'), 'log out with the form (POST)', { allow: 'POST' });
      if (requestOrigin(req) === 'other') return sendProblem(res, 'STANDBY_ERR_UNAUTHORIZED', 'a logout from another origin', { status: 403 });
      res.writeHead(303, { location: LOGIN_PATH, 'set-cookie': clearCookieLine(SCOPE), 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }
    if (req.method === 'GET' || req.method === 'HEAD') return this.#page(res, 200, safeNext(url.searchParams.get('next')));
    if (req.method !== 'POST') return this.#page(res, 405, '/', 'log in with the form', { allow: 'GET, POST' });
    const address = this.#throttle.addressOf(req);
    const wait = this.#throttle.retryAfterMs(address);
    if (wait > 0) return tooMany(res, wait);
    if (!isForm(req)) return this.#page(res, 415, '/', 'send the form as application/x-www-form-urlencoded');
    const form = await readForm(req, MAX_FORM_BYTES);
    if (!form) return this.#page(res, 413, '/', 'that form is too large');
    const next = safeNext(form.get('next'));
    if (!secretsEqual(form.get('password') ?? '', this.#settings.password)) {
      this.#throttle.failed(address, 'login');
      return this.#page(res, 401, next, 'Wrong password.');
    }
    this.#throttle.succeeded(address);
    this.#log.info({ client: address }, 'developer logged in');
    res.writeHead(303, {
      location: next,
      'set-cookie': setCookieLine(SCOPE, this.sessionValue(), this.#settings.sessionHours * 3600),
      'cache-control': 'no-store',
      'content-length': 0,
    });
    res.end();
  }

  #page(res: ServerResponse, status: number, next: string, error?: string, headers: Record<string, string> = {}): void {
    const page = loginPage({ next, ...(error ? { error } : {}) });
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-length': Buffer.byteLength(page), ...headers });
    res.end(res.req?.method === 'HEAD' ? undefined : page);
  }
}
