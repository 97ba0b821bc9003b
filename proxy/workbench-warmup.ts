// code-server loads VS Code's server only when its workbench route is first
// asked for (out/node/routes/vscode.js, ensureVSCodeLoaded): seconds of CPU
// that a standby nobody has opened would spend while the developer waits for
// the editor after a switch. As soon as a switch may be near (the GPU in
// doubt, a switch under way: proxy/daemon.ts), the proxy asks the side it
// would go to for its workbench route, once until that side's code-server
// fails a probe (a restarted code-server is cold again): a GET / without a
// folder, which code-server answers with a redirect once VS Code is loaded;
// nothing is opened, nothing is written. In steady phases it asks nothing.
import { request, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from '../core/log.ts';

export class WorkbenchWarmup {
  #log: Logger;
  #timeoutMs: number;
  /** the sides' code-server URLs warmed since they last failed a probe */
  #warm = new Set<string>();
  #inFlight = new Map<string, ClientRequest>();
  #closed = false;

  constructor(log: Logger, timeoutMs = 30_000) {
    this.#log = log;
    this.#timeoutMs = timeoutMs;
  }

  /** A probe of the code-server at `base` answered: a failed one means it may have restarted, cold. */
  probed(base: string, ok: boolean): void {
    if (!ok) this.#warm.delete(base);
  }

  /** Asks `base`'s workbench route, unless it was warmed since it last failed a probe (or is being warmed). */
  warm(base: string): void {
    if (this.#closed || this.#warm.has(base) || this.#inFlight.has(base)) return;
    const started = performance.now();
    const url = new URL('/', base);
    const req = (url.protocol === 'https:' ? httpsRequest : request)(url, { method: 'GET', agent: false, timeout: this.#timeoutMs, rejectUnauthorized: false, headers: { accept: 'text/html' } }, (res) => {
      res.resume();
      this.#inFlight.delete(base);
      if ((res.statusCode ?? 500) < 500) this.#warm.add(base);
      this.#log.debug({ url: base, status: res.statusCode, ms: Math.round(performance.now() - started) }, "code-server's workbench warmed");
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      this.#inFlight.delete(base);
      this.#log.debug({ url: base, err: err.code ?? err.message }, "code-server's workbench could not be warmed; the next probe tries again");
    });
    this.#inFlight.set(base, req);
    req.end();
  }

  close(): void {
    this.#closed = true;
    for (const req of this.#inFlight.values()) req.destroy();
    this.#inFlight.clear();
  }
}
