// Stateless signed session cookies, what the developer's login (login.ts) and
// the admin's dashboard session (admin-session.ts) share. A value is
// "v1.<expiry s>.<HMAC>": the HMAC of the expiry under a key kept in a file of
// <stateDir> (so a session survives a proxy restart and a failover: the proxy
// serves both machines), bound to a secret (the password, the admin token) so
// that a new secret, or a deleted key file, logs every browser out. Nothing is
// stored per session: a logout clears the cookie in that browser only.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { readStateFile, writeStateFile } from '../core/durable-file.ts';

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Constant-time equality of two secrets of any length (compared as their SHA-256). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

/** The value of one cookie in a Cookie header, or undefined. */
export function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export interface CookieScope {
  name: string;
  path: string;
  sameSite: 'Strict' | 'Lax';
}

/** The Set-Cookie line of a session: Secure (browsers accept it on http://localhost too), HttpOnly, SameSite. */
export function setCookieLine(scope: CookieScope, value: string, maxAgeS: number): string {
  return `${scope.name}=${value}; Path=${scope.path}; Max-Age=${maxAgeS}; Secure; HttpOnly; SameSite=${scope.sameSite}`;
}

/** The Set-Cookie line that clears the session in the browser. */
export function clearCookieLine(scope: CookieScope): string {
  return setCookieLine(scope, '', 0);
}

const VALUE = /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

export class SessionSigner {
  #key: Buffer;
  #secret: () => Buffer;

  /**
   * `keyFile`: the signing key's file in `stateDir` (made on first use, 0600); `secret`: what sessions are
   * bound to, read at every check (a reloaded admin token takes effect at once).
   */
  constructor(stateDir: string, keyFile: string, what: string, secret: () => Buffer) {
    this.#secret = secret;
    const file = join(stateDir, keyFile);
    let key = readStateFile(file, { what });
    if (key === undefined || !/^[0-9a-f]{64}$/.test(key.trim())) {
      key = randomBytes(32).toString('hex');
      writeStateFile(file, key + '\n', { what });
    }
    this.#key = Buffer.from(key.trim(), 'hex');
  }

  #mac(expiry: string): string {
    return createHmac('sha256', this.#key).update(`v1.${expiry}.`).update(this.#secret()).digest('base64url');
  }

  /** A session's value, good for `lifetimeS` from `now` (ms). */
  value(lifetimeS: number, now = Date.now()): string {
    const expiry = String(Math.floor(now / 1000) + lifetimeS);
    return `v1.${expiry}.${this.#mac(expiry)}`;
  }

  /** `value` was signed here under the current secret and has not expired. */
  valid(value: string | undefined, now = Date.now()): boolean {
    const m = value === undefined ? null : VALUE.exec(value);
    if (!m) return false;
    const given = Buffer.from(m[2]!);
    const want = Buffer.from(this.#mac(m[1]!));
    return given.length === want.length && timingSafeEqual(given, want) && Number(m[1]) * 1000 > now;
  }
}
