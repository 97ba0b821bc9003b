// The developer's login in front of code-server (proxy.json `login`), for
// deployments that do not use code-server's own auth: a password form at
// /_standby/login, then a session cookie (Secure, HttpOnly, SameSite=Lax)
// that every request and WebSocket upgrade to code-server must carry; an
// upgrade must also come from this origin (Origin's host = Host). Failed
// tries count in the failed-auth throttle like a wrong token.
//
// The cookie is stateless, "v1.<expiry s>.<HMAC>": signed with a key kept in
// <stateDir>/login-key and bound to the password, so it survives a proxy
// restart and a failover (the proxy serves both machines), and a new password
// (or a deleted key file) logs every browser out. Logout clears the cookie in
// that browser.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { ProxyConfig } from '../config/proxy.ts';
import { readStateFile, writeStateFile } from '../core/durable-file.ts';
import type { Logger } from '../core/log.ts';
import { tooMany, type AuthThrottle } from './auth-throttle.ts';
import { isNavigation } from './navigation.ts';
import { LOGIN_PATH, LOGOUT_PATH, loginPage } from './pages/login.ts';
import { sendProblem } from './problem.ts';
import { pathOwner } from './request-path.ts';

export const SESSION_COOKIE = 'standby_session';
/** a login form is a password and a path: anything bigger is not one */
const MAX_FORM_BYTES = 8 * 1024;

type LoginSettings = NonNullable<ProxyConfig['login']>;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The value of one cookie in a Cookie header, or undefined. */
function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Where a login may send the browser: a plain path to code-server on this origin, else "/". */
export function safeNext(next: string | null | undefined): string {
  if (!next || next.length > 2048 || !next.startsWith('/') || next.startsWith('//') || /[\\\s]/.test(next)) return '/';
  return pathOwner(next) === 'backend' ? next : '/';
}

function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  return new Promise((resolve) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_FORM_BYTES) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', () => resolve(undefined));
  });
}

export class Login {
  #settings: LoginSettings;
  #key: Buffer;
  #password: Buffer;
  #throttle: AuthThrottle;
  #log: Logger;

  constructor(settings: LoginSettings, stateDir: string, throttle: AuthThrottle, log: Logger) {
    this.#settings = settings;
    this.#throttle = throttle;
    this.#log = log;
    this.#password = sha256(settings.password);
    const file = join(stateDir, 'login-key');
    let key = readStateFile(file, { what: "the login's signing key" });
    if (key === undefined || !/^[0-9a-f]{64}$/.test(key.trim())) {
      key = randomBytes(32).toString('hex');
      writeStateFile(file, key + '\n', { what: "the login's signing key" });
    }
    this.#key = Buffer.from(key.trim(), 'hex');
  }

  #mac(expiry: string): string {
    return createHmac('sha256', this.#key).update(`v1.${expiry}.`).update(this.#password).digest('base64url');
  }

  /** A session cookie's value, good for sessionHours from `now` (ms). */
  sessionValue(now = Date.now()): string {
    const expiry = String(Math.floor(now / 1000) + this.#settings.sessionHours * 3600);
    return `v1.${expiry}.${this.#mac(expiry)}`;
  }

  /** The request carries a session this proxy signed, not expired. */
  allows(req: IncomingMessage, now = Date.now()): boolean {
    const value = cookie(req, SESSION_COOKIE);
    const m = value === undefined ? null : /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
    if (!m) return false;
    const given = Buffer.from(m[2]!);
    const want = Buffer.from(this.#mac(m[1]!));
    return given.length === want.length && timingSafeEqual(given, want) && Number(m[1]) * 1000 > now;
  }

  /**
   * A WebSocket upgrade to code-server: why it is refused (401: no session; 403: from another
   * origin, which a cookie alone would let through), or undefined when it may go.
   */
  refusesUpgrade(req: IncomingMessage): { status: 401 | 403; why: string } | undefined {
    if (!this.allows(req)) return { status: 401, why: `log in first: ${LOGIN_PATH}` };
    const origin = req.headers.origin;
    let host: string | undefined;
    try {
      host = origin === undefined ? undefined : new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host === undefined || host !== req.headers.host) return { status: 403, why: 'a WebSocket from another origin' };
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
      if (req.headers.origin !== undefined && new URL(req.headers.origin).host !== req.headers.host) return sendProblem(res, 'STANDBY_ERR_UNAUTHORIZED', 'a logout from another origin', { status: 403 });
      res.writeHead(303, { location: LOGIN_PATH, 'set-cookie': `${SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax`, 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }
    if (req.method === 'GET' || req.method === 'HEAD') return this.#page(res, 200, safeNext(url.searchParams.get('next')));
    if (req.method !== 'POST') return this.#page(res, 405, '/', 'log in with the form', { allow: 'GET, POST' });
    const address = this.#throttle.addressOf(req);
    const wait = this.#throttle.retryAfterMs(address);
    if (wait > 0) return tooMany(res, wait);
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return this.#page(res, 415, '/', 'send the form as application/x-www-form-urlencoded');
    const form = await readForm(req);
    if (!form) return this.#page(res, 413, '/', 'that form is too large');
    const next = safeNext(form.get('next'));
    if (!timingSafeEqual(sha256(form.get('password') ?? ''), this.#password)) {
      this.#throttle.failed(address, 'login');
      return this.#page(res, 401, next, 'Wrong password.');
    }
    this.#throttle.succeeded(address);
    this.#log.info({ client: address }, 'developer logged in');
    res.writeHead(303, {
      location: next,
      'set-cookie': `${SESSION_COOKIE}=${this.sessionValue()}; Path=/; Max-Age=${this.#settings.sessionHours * 3600}; Secure; HttpOnly; SameSite=Lax`,
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
