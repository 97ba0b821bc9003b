// Probes a backend's code-server directly (GET /healthz), on its own timer,
// so the detector has a fresh answer the moment heartbeats go missing.
// Passive health (as HAProxy's `observe layer7`): when the backend answered
// requests the proxy forwarded to it since the last tick, and none of them
// failed, that answer stands in for the tick's probe (no connection made);
// a failed forwarded request makes the next probe real, and runs one at once
// when the last tick was stood in for, so a backend that dies under traffic
// is noticed no later than by the probe alone (docs/benchmarks.md).
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface ProbeResult {
  ok: boolean;
  /** performance.now() of the answer (or the failure) */
  at: number;
  ms: number;
  error: string | null;
  /** answers to forwarded requests stood in for this probe (passive health): no probe was sent */
  fromTraffic: boolean;
}

export class Prober {
  url: URL;
  /** the pause before the next probe, read at each tick (the side that does not serve is probed less often) */
  #everyMs: () => number;
  /** read at each probe (a live settings change applies to the next one) */
  #timeoutMs: () => number;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  #closed = false;
  last: ProbeResult | undefined;
  lastOkAt: number | undefined;
  /** failed probes in a row */
  failures = 0;
  onResult: ((r: ProbeResult) => void) | undefined;
  /**
   * Passive health: asked at every tick, true when forwarded requests got answers from this
   * backend since the previous tick (the tick then probes nothing). Unset: every tick probes.
   */
  answeredSinceTick: (() => boolean) | undefined;
  /** a forwarded request failed since the last tick: the next tick probes, whatever answered */
  #failedSinceTick = false;
  /** the last tick was stood in for by forwarded answers (no probe was sent) */
  #stoodIn = false;
  /** a refused forward made this tick's probe early (forwardFailed): no second one until the next tick */
  #hurriedThisTick = false;

  constructor(base: string, path: string, everyMs: number | (() => number), timeoutMs: number | (() => number)) {
    this.url = new URL(path, base);
    this.#everyMs = typeof everyMs === 'number' ? () => everyMs : everyMs;
    this.#timeoutMs = typeof timeoutMs === 'number' ? () => timeoutMs : timeoutMs;
  }

  start(): void {
    this.#tick();
  }

  /** Probes another backend from now on (a recovery's new GPU): what was learnt of the old one is forgotten. */
  retarget(base: string): void {
    const next = new URL(this.url.pathname + this.url.search, base);
    if (next.href === this.url.href) return;
    this.url = next;
    this.last = undefined;
    this.lastOkAt = undefined;
    this.failures = 0;
  }

  #tick(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#hurriedThisTick = false;
      this.#tick();
    }, this.#everyMs());
    // asked at every tick: it counts from the last one
    const answered = this.answeredSinceTick?.() === true;
    const failed = this.#failedSinceTick;
    this.#failedSinceTick = false;
    this.#stoodIn = false;
    if (this.#inFlight) return; // a slow probe is still out: its timeout decides
    if (answered && !failed) {
      this.#stoodIn = true;
      this.#record({ ok: true, at: performance.now(), ms: 0, error: null, fromTraffic: true });
      return;
    }
    this.#inFlight = true;
    void this.probe().then((r) => {
      this.#inFlight = false;
      if (!this.#closed) this.#record(r);
    });
  }

  #record(r: ProbeResult): void {
    this.last = r;
    if (r.ok) {
      this.lastOkAt = r.at;
      this.failures = 0;
    } else {
      this.failures++;
    }
    this.onResult?.(r);
  }

  /**
   * A request forwarded to this backend failed (no answer, or a 5xx): the next tick probes.
   * When the last tick sent no probe (forwarded answers stood in), or `refused` (the connection
   * was refused or reset), one is sent now: at most one such probe per tick, so a dead backend
   * under traffic, or met by a reload in the detection window, is probed at once.
   */
  forwardFailed(refused = false): void {
    this.#failedSinceTick = true;
    if (this.#stoodIn) return this.hurry();
    // a connection refused or reset is the backend's own word: probed now, not at the next tick (once
    // a tick: a storm of refused requests is one probe, and counts as one failure)
    if (refused && !this.#inFlight && !this.#hurriedThisTick) {
      this.hurry();
      this.#hurriedThisTick = true;
    }
  }

  /** The pace changed (a live settings change): the next tick comes at the new pace from now, not at the end of the old wait. */
  repace(): void {
    if (this.#closed || this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#hurriedThisTick = false;
      this.#tick();
    }, this.#everyMs());
  }

  /** Probes now and goes on at the current pace (the pace just changed: the side is about to matter). */
  hurry(): void {
    if (this.#closed || this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#tick();
  }

  /** One probe: any HTTP answer below 500 counts as alive (code-server answers /healthz with 200). */
  probe(): Promise<ProbeResult> {
    const started = performance.now();
    const timeoutMs = this.#timeoutMs();
    return new Promise((resolve) => {
      let done = false;
      const finish = (ok: boolean, error: string | null) => {
        if (done) return;
        done = true;
        const at = performance.now();
        resolve({ ok, at, ms: at - started, error, fromTraffic: false });
      };
      const req = (this.url.protocol === 'https:' ? httpsRequest : request)(this.url, { method: 'GET', agent: false, timeout: timeoutMs, rejectUnauthorized: false }, (res) => {
        res.resume();
        finish((res.statusCode ?? 500) < 500, (res.statusCode ?? 500) < 500 ? null : `HTTP ${res.statusCode}`);
        req.destroy();
      });
      req.on('timeout', () => {
        finish(false, `no answer within ${timeoutMs} ms`);
        req.destroy();
      });
      req.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
      req.end();
    });
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
