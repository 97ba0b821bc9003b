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
  #everyMs: number;
  #timeoutMs: number;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  #closed = false;
  last: ProbeResult | undefined;
  lastOkAt: number | undefined;
  /** failed probes in a row */
  failures = 0;
  onResult: ((r: ProbeResult) => void) | undefined;

  constructor(base: string, path: string, everyMs: number, timeoutMs: number) {
    this.url = new URL(path, base);
    this.#everyMs = everyMs;
    this.#timeoutMs = timeoutMs;
  }

  start(): void {
    this.#tick();
  }

  #tick(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => this.#tick(), this.#everyMs);
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
