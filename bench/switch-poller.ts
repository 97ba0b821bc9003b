// Sees the moment a proxy starts answering from another backend: from start(),
// a new GET every `everyMs` (whether or not earlier ones have answered; a proxy
// may hold a request while it retries a dead server), each abandoned after
// `requestTimeoutMs`, until one answers 200 with the wanted body. The figure is
// performance.now() when that answer's body arrived.
import { Agent, request } from 'node:http';

export interface PollOptions {
  /** http://host:port/path */
  url: string;
  /** the body that means "switched" (the standby stand-in's /whoami answer) */
  want: string;
  /** default 10 */
  everyMs?: number;
  /** default 500 */
  requestTimeoutMs?: number;
  /** give up after this long, ms (default 20000) */
  timeoutMs?: number;
  /** at most this many requests out at once (default 100) */
  maxInFlight?: number;
}

export interface Poll {
  /** performance.now() of the first wanted answer; rejects after timeoutMs */
  answered: Promise<number>;
  /** what the other requests got, e.g. {"HTTP 502": 12, "gpu": 40, "timeout": 3} */
  outcomes: Record<string, number>;
  stop(): void;
}

export function pollUntil(o: PollOptions): Poll {
  const agent = new Agent({ keepAlive: true, maxSockets: o.maxInFlight ?? 100 });
  const outcomes: Record<string, number> = {};
  const count = (k: string): void => void (outcomes[k] = (outcomes[k] ?? 0) + 1);
  let inFlight = 0;
  let done = false;
  let resolveAnswered!: (at: number) => void;
  let rejectAnswered!: (err: Error) => void;
  const answered = new Promise<number>((res, rej) => {
    resolveAnswered = res;
    rejectAnswered = rej;
  });
  answered.catch(() => undefined);
  const stop = (): void => {
    done = true;
    clearInterval(ticker);
    clearTimeout(deadline);
    agent.destroy();
  };
  const one = (): void => {
    if (done || inFlight >= (o.maxInFlight ?? 100)) return;
    inFlight++;
    const req = request(o.url, { agent, timeout: o.requestTimeoutMs ?? 500 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        const at = performance.now();
        inFlight--;
        if (res.statusCode === 200 && body === o.want) {
          if (!done) {
            stop();
            resolveAnswered(at);
          }
          return;
        }
        count(res.statusCode === 200 ? body.slice(0, 20) : `HTTP ${res.statusCode}`);
      });
      res.on('error', () => undefined);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      inFlight--;
      if (!done) count(err.message === 'timeout' ? 'timeout' : (err.code ?? err.message));
    });
    req.end();
  };
  const ticker = setInterval(one, o.everyMs ?? 10);
  const deadline = setTimeout(() => {
    stop();
    rejectAnswered(new Error(`no ${JSON.stringify(o.want)} from ${o.url} within ${o.timeoutMs ?? 20_000} ms (other answers: ${JSON.stringify(outcomes)})`));
  }, o.timeoutMs ?? 20_000);
  one();
  return { answered, outcomes, stop };
}
