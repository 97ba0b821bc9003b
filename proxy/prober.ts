// Probes a backend's code-server directly (GET /healthz), on its own timer,
// so the detector has a fresh answer the moment heartbeats go missing.
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface ProbeResult {
  ok: boolean;
  /** performance.now() of the answer (or the failure) */
  at: number;
  ms: number;
  error: string | null;
}

export class Prober {
  readonly url: URL;
  /** the pause before the next probe, read at each tick (the side that does not serve is probed less often) */
  #everyMs: () => number;
  #timeoutMs: number;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  #closed = false;
  last: ProbeResult | undefined;
  lastOkAt: number | undefined;
  /** failed probes in a row */
  failures = 0;
  onResult: ((r: ProbeResult) => void) | undefined;

  constructor(base: string, path: string, everyMs: number | (() => number), timeoutMs: number) {
    this.url = new URL(path, base);
    this.#everyMs = typeof everyMs === 'number' ? () => everyMs : everyMs;
    this.#timeoutMs = timeoutMs;
  }

  start(): void {
    this.#tick();
  }

  #tick(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => this.#tick(), this.#everyMs());
    if (this.#inFlight) return; // a slow probe is still out: its timeout decides
    this.#inFlight = true;
    void this.probe().then((r) => {
      this.#inFlight = false;
      if (this.#closed) return;
      this.last = r;
      if (r.ok) {
        this.lastOkAt = r.at;
        this.failures = 0;
      } else {
        this.failures++;
      }
      this.onResult?.(r);
    });
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
    return new Promise((resolve) => {
      let done = false;
      const finish = (ok: boolean, error: string | null) => {
        if (done) return;
        done = true;
        const at = performance.now();
        resolve({ ok, at, ms: at - started, error });
      };
      const req = (this.url.protocol === 'https:' ? httpsRequest : request)(this.url, { method: 'GET', agent: false, timeout: this.#timeoutMs, rejectUnauthorized: false }, (res) => {
        res.resume();
        finish((res.statusCode ?? 500) < 500, (res.statusCode ?? 500) < 500 ? null : `HTTP ${res.statusCode}`);
        req.destroy();
      });
      req.on('timeout', () => {
        finish(false, `no answer within ${this.#timeoutMs} ms`);
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
