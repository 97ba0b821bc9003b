// Failed authentication, the same everywhere (admin API, agent socket,
// enrollment, the bundle download): counted per client address, locked out
// after too many failures (429 with Retry-After, escalating on repeat
// offences), logged sampled, and answered with one uniform body, so a wrong
// token says nothing about why it was wrong. Memory is bounded: at most
// `maxAddresses` addresses are tracked, the least recently seen go first.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../core/log.ts';
import { clientKey, peerAddress } from './client-address.ts';
import { rawProblem, sendProblem } from './problem.ts';

export interface AuthLimits {
  /** failures of one address within windowMs before it is locked out (default 10) */
  maxFailures: number;
  /** the window the failures are counted in, ms (default 60000) */
  windowMs: number;
  /** the first lockout, ms (default 30000); each lockout that follows a lockout without a success in between doubles it */
  lockoutMs: number;
  /** the longest lockout, ms (default 900000) */
  maxLockoutMs: number;
  /** addresses tracked at most (default 10000); the least recently seen are forgotten first */
  maxAddresses: number;
  /** after an address's first 3 failures are logged, at most one line per this interval with the count, ms (default 60000) */
  logEveryMs: number;
}

export const DEFAULT_AUTH_LIMITS: AuthLimits = {
  maxFailures: 10,
  windowMs: 60_000,
  lockoutMs: 30_000,
  maxAddresses: 10_000,
  maxLockoutMs: 900_000,
  logEveryMs: 60_000,
};

/** Where a failure happened, for the log. */
export type AuthSurface = 'admin' | 'agent' | 'enroll' | 'bundle' | 'metrics' | 'login' | 'dashboard';

/** The one message of a failed authentication, wherever it happens: it says nothing about why. */
const UNAUTHORIZED = 'unauthorized';
/** The message while an address is locked out. */
const TOO_MANY = 'too many failed attempts: retry later';

/** Retry-After in whole seconds, at least 1. */
function retryAfter(waitMs: number): string {
  return String(Math.max(1, Math.ceil(waitMs / 1000)));
}

const LOG_FIRST = 3;

interface Entry {
  /** failures in the current window */
  failures: number;
  windowStart: number;
  /** performance.now() until which the address is refused, 0 when it is not */
  lockedUntil: number;
  /** the lockout the next one will last (doubles on repeat offences) */
  nextLockoutMs: number;
  /** failures over the entry's life, for the sampled log */
  total: number;
  lastLogAt: number;
  unlogged: number;
}

export class AuthThrottle {
  #limits: AuthLimits;
  #log: Logger;
  #now: () => number;
  #addressOf: (req: IncomingMessage) => string;
  #entries = new Map<string, Entry>();
  /** failures refused or counted since start, for the status */
  failures = 0;
  lockouts = 0;

  /** `addressOf`: who a request comes from (the TCP peer; behind trustedProxies, the client they forwarded: ForwardedHeaders.clientOf) */
  constructor(limits: AuthLimits, log: Logger, now: () => number = () => performance.now(), addressOf: (req: IncomingMessage) => string = (req) => peerAddress(req.socket.remoteAddress)) {
    this.#limits = limits;
    this.#log = log;
    this.#now = now;
    this.#addressOf = addressOf;
  }

  /** The address a request's failures count against. */
  addressOf(req: IncomingMessage): string {
    return this.#addressOf(req) || 'unknown';
  }

  /** Addresses tracked now (bounded by maxAddresses). */
  get tracked(): number {
    return this.#entries.size;
  }

  /** ms the address must still wait before it may try again (0: it may). */
  retryAfterMs(address: string): number {
    const e = this.#entries.get(clientKey(address));
    if (!e) return 0;
    const left = e.lockedUntil - this.#now();
    return left > 0 ? Math.ceil(left) : 0;
  }

  /** A failed attempt from `address` at `surface`. */
  failed(address: string, surface: AuthSurface): void {
    const key = clientKey(address);
    const now = this.#now();
    let e = this.#entries.get(key);
    if (e) {
      this.#entries.delete(key); // re-inserted below: most recently seen last
    } else {
      e = { failures: 0, windowStart: now, lockedUntil: 0, nextLockoutMs: this.#limits.lockoutMs, total: 0, lastLogAt: -Infinity, unlogged: 0 };
      while (this.#entries.size >= this.#limits.maxAddresses) {
        const oldest = this.#entries.keys().next().value;
        if (oldest === undefined) break;
        this.#entries.delete(oldest);
      }
    }
    this.#entries.set(key, e);
    this.failures++;
    if (now - e.windowStart > this.#limits.windowMs) {
      e.failures = 0;
      e.windowStart = now;
    }
    e.failures++;
    e.total++;
    let lockedNow = false;
    if (e.failures >= this.#limits.maxFailures && e.lockedUntil <= now) {
      e.lockedUntil = now + e.nextLockoutMs;
      e.nextLockoutMs = Math.min(e.nextLockoutMs * 2, this.#limits.maxLockoutMs);
      e.failures = 0;
      e.windowStart = now;
      lockedNow = true;
      this.lockouts++;
    }
    // sampled: an address's first failures each, then one line per interval with the count
    if (e.total <= LOG_FIRST || lockedNow || now - e.lastLogAt >= this.#limits.logEveryMs) {
      const fields = { remote: key, surface, failures: e.total, unloggedSinceLast: e.unlogged };
      if (lockedNow) this.#log.warn({ ...fields, lockoutMs: Math.ceil(e.lockedUntil - now) }, 'failed authentication: address locked out');
      else this.#log.warn(fields, 'failed authentication');
      e.lastLogAt = now;
      e.unlogged = 0;
    } else {
      e.unlogged++;
    }
  }

  /** A successful authentication: the address's failures are forgotten. */
  succeeded(address: string): void {
    this.#entries.delete(clientKey(address));
  }

  /**
   * Checks an HTTP request's credentials with the throttle around it: a locked
   * out address gets 429, a failure gets the uniform 401, both answered here.
   * Returns the value `check` gave (truthy: authenticated), or undefined when
   * the request was answered.
   */
  guard<T>(req: IncomingMessage, res: ServerResponse, surface: AuthSurface, check: () => T | undefined | false): T | undefined {
    const address = this.addressOf(req);
    const wait = this.retryAfterMs(address);
    if (wait > 0) {
      tooMany(res, wait);
      return undefined;
    }
    const ok = check();
    if (ok === undefined || ok === false) {
      this.failed(address, surface);
      unauthorized(res);
      return undefined;
    }
    this.succeeded(address);
    return ok;
  }
}

export function unauthorized(res: ServerResponse): void {
  sendProblem(res, 'STANDBY_ERR_UNAUTHORIZED', UNAUTHORIZED, { headers: { 'www-authenticate': 'Bearer' } });
}

export function tooMany(res: ServerResponse, waitMs: number): void {
  sendProblem(res, 'STANDBY_ERR_TOO_MANY_REQUESTS', TOO_MANY, { headers: { 'retry-after': retryAfter(waitMs) } });
}

/** The same answers as raw HTTP/1.1, for a socket before a WebSocket upgrade. */
export function rawUnauthorized(): string {
  return rawProblem('STANDBY_ERR_UNAUTHORIZED', UNAUTHORIZED, 'Unauthorized', { 'WWW-Authenticate': 'Bearer' });
}

export function rawTooMany(waitMs: number): string {
  return rawProblem('STANDBY_ERR_TOO_MANY_REQUESTS', TOO_MANY, 'Too Many Requests', { 'Retry-After': retryAfter(waitMs) });
}
