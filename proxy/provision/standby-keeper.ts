// Keeps the standby host up: looks at it through its StandbyProvider every
// intervalMs (at once, then on a timer, until the AbortSignal), and when it is
// not running (a preempted spot VM: stopped with its disk; or gone) calls
// ensure() to start it again, or to create it anew. A standby created anew
// has an empty disk: the caller must resync it fully (`recreated: true`).
//
// It reports the window in which no standby copy was reachable: one
// `standby-down` when it first sees the host down, one `standby-up` when it
// runs again, with the time between (performance.now()). A tick's error (the
// API down, an ensure that failed) is logged and reported, never ends the
// loop; failed ensures are retried with backoff. Ticks never overlap: a slow
// ensure holds the next look until it is done.
//
// The keeper looks after the host it is given; whoever stops or destroys the
// standby on purpose (the standby goes with its GPU) aborts the keeper first.
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from '../../core/backoff.ts';
import type { Logger } from '../../core/log.ts';
import type { ProvisionedHost, StandbyProvider, StandbySpec } from './provider.ts';

export type StandbyKeeperEvent =
  | {
      kind: 'standby-down';
      /** the provider's id of the standby */
      id: string;
      /** 'gone' when the provider no longer has it (it will be created anew), else its state */
      state: ProvisionedHost['state'] | 'gone';
      /** the provider's words for it, e.g. "TERMINATED (spot e2-medium in europe-west1-b)" */
      detail: string;
    }
  | {
      kind: 'standby-up';
      id: string;
      /** from the look that first saw it down to the one that saw it run again, ms */
      downMs: number;
      /** from the last look that saw it running (it went down after that) to running again, ms: the window's upper bound */
      windowMs: number;
      /** it was created anew, its disk empty: resync it fully */
      recreated: boolean;
      host: ProvisionedHost;
    }
  | {
      kind: 'standby-ensure-failed';
      id: string;
      /** failed ensures in a row */
      attempt: number;
      /** the error's message */
      detail: string;
      /** the next try, ms from now */
      retryInMs: number;
    };

export interface StandbyKeeperOptions {
  provider: StandbyProvider;
  /** what ensure() is asked for (the standby's name, zone, machine, key...); a function is asked at each ensure (the machine settings may change live) */
  spec: StandbySpec | (() => StandbySpec);
  /** the standby's provider id, as ensure() last answered it */
  id: string;
  /** how often to look, ms (default 10000, the seeds' health check interval) */
  intervalMs?: number;
  /** the longest wait between failed ensures, ms (default 300000); the first is intervalMs */
  maxBackoffMs?: number;
  /** hears every event; an exception it throws is logged, not the loop's end */
  onEvent?: (event: StandbyKeeperEvent) => void;
  log: Logger;
}

/** What a look found. */
export type StandbyCheck = 'up' | 'down' | 'recovered' | 'unknown';

export class StandbyKeeper {
  #o: Required<Omit<StandbyKeeperOptions, 'onEvent'>> & Pick<StandbyKeeperOptions, 'onEvent'>;
  #id: string;
  /** performance.now() of the look that first saw it down, while it is down */
  #downSince: number | undefined;
  /** performance.now() of the last look that saw it running */
  #lastUp: number | undefined;
  /** while it is down: the last look that saw it running before (or the first look that saw it down, when none did) */
  #windowStart = 0;
  #recreated = false;
  #failures = 0;
  #backoff: Backoff;
  #nextEnsure = 0;
  #ticking: Promise<StandbyCheck> | undefined;

  constructor(options: StandbyKeeperOptions) {
    const intervalMs = options.intervalMs ?? 10_000;
    this.#o = { ...options, intervalMs, maxBackoffMs: options.maxBackoffMs ?? 300_000 };
    this.#id = options.id;
    this.#backoff = new Backoff(intervalMs, this.#o.maxBackoffMs);
  }

  /** The standby's id now (ensure may answer another one). */
  get id(): string {
    return this.#id;
  }

  /** Whether the last look saw it down (and it has not come back since). */
  get down(): boolean {
    return this.#downSince !== undefined;
  }

  /** Looks every intervalMs until `signal` aborts; resolves then. Never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let found: StandbyCheck = 'unknown';
      try {
        found = await this.check(signal);
      } catch (err) {
        if (signal.aborted) break;
        // check() reports its own errors; anything here is a bug, still not the loop's end
        this.#o.log.error({ err, id: this.#id }, 'standby keeper: a look failed');
      }
      // while it is down and ensure fails, the next look waits for the backoff
      const wait = found === 'down' && this.#failures > 0 ? Math.max(this.#o.intervalMs, this.#nextEnsure - performance.now()) : this.#o.intervalMs;
      try {
        await sleep(wait, undefined, { signal });
      } catch {
        break; // aborted
      }
    }
  }

  /**
   * One look (and, when it is down, one ensure). Concurrent calls share one
   * look: the orchestrator may ask for one at once (an agent's push to the
   * standby failed) while the loop runs.
   */
  check(signal?: AbortSignal): Promise<StandbyCheck> {
    if (!this.#ticking) {
      this.#ticking = this.#check(signal).finally(() => {
        this.#ticking = undefined;
      });
    }
    return this.#ticking;
  }

  async #check(signal: AbortSignal | undefined): Promise<StandbyCheck> {
    let host: ProvisionedHost | undefined;
    try {
      host = await this.#o.provider.get(this.#id, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      // the API, not the standby: nothing is known, nothing changes
      this.#o.log.warn({ id: this.#id, provider: this.#o.provider.name, err: (err as Error).message }, 'standby keeper: could not look at the standby; trying again at the next look');
      return 'unknown';
    }
    const now = performance.now();
    if (host && host.state === 'running' && host.ssh) {
      this.#lastUp = now;
      if (this.#downSince === undefined) return 'up';
      this.#up(host, now);
      return 'recovered';
    }
    if (this.#downSince === undefined) {
      this.#downSince = now;
      this.#windowStart = this.#lastUp ?? now;
      this.#recreated = false;
      this.#failures = 0;
      this.#backoff.reset();
      this.#nextEnsure = 0;
      const state = host ? host.state : 'gone';
      const detail = host ? host.detail : 'the provider no longer has it';
      this.#o.log.warn({ id: this.#id, provider: this.#o.provider.name, state, detail }, 'standby down: no standby copy is reachable until it runs again');
      this.#emit({ kind: 'standby-down', id: this.#id, state, detail });
    }
    if (!host || host.state === 'gone') this.#recreated = true;
    if (now < this.#nextEnsure) return 'down';
    try {
      this.#o.log.info({ id: this.#id, provider: this.#o.provider.name, state: host?.state ?? 'gone' }, host && host.state !== 'gone' ? 'standby keeper: starting the standby again' : 'standby keeper: creating the standby anew (it must be resynced fully)');
      const spec = typeof this.#o.spec === 'function' ? this.#o.spec() : this.#o.spec;
      const ensured = await this.#o.provider.ensure(spec, signal);
      this.#id = ensured.id;
      if (ensured.state === 'running' && ensured.ssh) {
        this.#lastUp = performance.now();
        this.#up(ensured, this.#lastUp);
        return 'recovered';
      }
      throw new Error(`ensure answered ${ensured.state} without an SSH address: ${ensured.detail}`);
    } catch (err) {
      if (signal?.aborted) throw err;
      this.#failures++;
      const retryInMs = this.#backoff.next();
      this.#nextEnsure = performance.now() + retryInMs;
      const detail = (err as Error).message;
      this.#o.log.error({ id: this.#id, provider: this.#o.provider.name, attempt: this.#failures, retryInMs, err: detail }, 'standby keeper: the standby could not be brought back; trying again');
      this.#emit({ kind: 'standby-ensure-failed', id: this.#id, attempt: this.#failures, detail, retryInMs });
      return 'down';
    }
  }

  #up(host: ProvisionedHost, now: number): void {
    const since = this.#downSince ?? now;
    const downMs = Math.round(now - since);
    const windowMs = Math.round(now - this.#windowStart);
    const recreated = this.#recreated;
    this.#downSince = undefined;
    this.#recreated = false;
    this.#failures = 0;
    this.#backoff.reset();
    this.#o.log.info({ id: host.id, provider: this.#o.provider.name, downMs, windowMs, recreated }, recreated ? 'standby up again, created anew: resync it fully' : 'standby up again');
    this.#emit({ kind: 'standby-up', id: host.id, downMs, windowMs, recreated, host });
  }

  #emit(event: StandbyKeeperEvent): void {
    try {
      this.#o.onEvent?.(event);
    } catch (err) {
      this.#o.log.error({ err, kind: event.kind }, 'standby keeper: a listener threw');
    }
  }
}
