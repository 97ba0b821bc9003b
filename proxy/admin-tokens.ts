// The admin tokens the proxy accepts now: proxy.json's adminToken, the
// previousAdminTokens still before their `until`, and, after a reload
// (SIGHUP) that changed adminToken, the former one for auth.rotationGraceMs.
// So the admin token is rotated without a restart and without a moment when
// the tools that hold the old one are locked out.
import { tokensEqual } from '../protocol/auth.ts';

export interface AdminTokenSettings {
  adminToken: string;
  previousAdminTokens: readonly { token: string; until: string }[];
}

export class AdminTokens {
  #current: string;
  /** accepted until the Date.now() value beside it */
  #previous: { token: string; until: number }[] = [];
  #graceMs: number;
  #now: () => number;

  constructor(settings: AdminTokenSettings, graceMs: number, now: () => number = () => Date.now()) {
    this.#current = settings.adminToken;
    this.#graceMs = graceMs;
    this.#now = now;
    this.#previous = settings.previousAdminTokens.map((p) => ({ token: p.token, until: Date.parse(p.until) }));
  }

  /** The admin token of now (proxy.json's adminToken): what a dashboard session is bound to, so a rotation ends them. */
  get current(): string {
    return this.#current;
  }

  /** Constant time per token; every listed token is compared, so the answer's time says nothing about which matched. */
  accepts(token: string): boolean {
    const now = this.#now();
    let ok = tokensEqual(token, this.#current);
    for (const p of this.#previous) if (tokensEqual(token, p.token) && p.until > now) ok = true;
    return ok;
  }

  /** New settings (re-read proxy.json): a changed adminToken keeps the former one valid for the grace window. Returns what changed, for the log. */
  reload(settings: AdminTokenSettings): { changed: boolean; previous: number } {
    const now = this.#now();
    const listed = settings.previousAdminTokens.map((p) => ({ token: p.token, until: Date.parse(p.until) }));
    const changed = settings.adminToken !== this.#current;
    // the former tokens given a grace window by earlier reloads stay until theirs ends
    const kept = this.#previous.filter((p) => p.until > now && !listed.some((l) => l.token === p.token) && p.token !== settings.adminToken);
    if (changed && !listed.some((l) => l.token === this.#current)) kept.push({ token: this.#current, until: now + this.#graceMs });
    this.#current = settings.adminToken;
    this.#previous = [...listed, ...kept];
    return { changed, previous: this.#previous.filter((p) => p.until > now).length };
  }

  /** When each retired token stops being accepted (ISO), for the admin status; never the tokens. */
  retiring(): string[] {
    const now = this.#now();
    return this.#previous.filter((p) => p.until > now).map((p) => new Date(p.until).toISOString());
  }
}
