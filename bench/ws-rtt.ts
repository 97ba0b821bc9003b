// WebSocket round trips to an echo server (the workspace-server fixture, which
// greets first, then echoes): one connection, `count` small messages sent one
// after the other, each timed from send to its echo with performance.now().
// The first `warmup` are not counted (JIT, socket buffers).
import { WebSocket } from 'ws';

export interface RttOptions {
  /** ws:// URL */
  url: string;
  count: number;
  warmup?: number;
  /** the message (default 16 bytes) */
  message?: string;
  /** bound on the whole run, ms (default 60000) */
  timeoutMs?: number;
}

/** Round-trip times in ms, in the order they were measured. */
export async function wsRoundTrips(o: RttOptions): Promise<number[]> {
  const ws = new WebSocket(o.url);
  const message = o.message ?? 'ping-0123456789a';
  const warmup = o.warmup ?? 200;
  let onMessage: ((data: string) => void) | undefined;
  let failed: Error | undefined;
  const timer = setTimeout(() => ws.terminate(), o.timeoutMs ?? 60_000);
  try {
    const closed = new Promise<never>((_, reject) => {
      ws.once('error', (err) => reject((failed = err)));
      ws.once('close', () => reject((failed ??= new Error(`ws ${o.url} closed before the run ended`))));
    });
    closed.catch(() => undefined);
    const next = (): Promise<string> => Promise.race([new Promise<string>((resolve) => (onMessage = resolve)), closed]);
    ws.on('message', (data) => {
      const f = onMessage;
      onMessage = undefined;
      f?.(data.toString());
    });
    const hello = await next(); // the server greets first
    if (!hello.includes('hello')) throw new Error(`ws ${o.url}: unexpected greeting ${hello.slice(0, 100)}`);
    const rtts: number[] = [];
    for (let i = 0; i < warmup + o.count; i++) {
      const echoed = next();
      const t = performance.now();
      ws.send(message);
      const got = await echoed;
      const ms = performance.now() - t;
      if (got !== message) throw new Error(`ws ${o.url}: echo ${got.slice(0, 100)} is not what was sent`);
      if (i >= warmup) rtts.push(ms);
    }
    return rtts;
  } catch (err) {
    throw failed ?? err;
  } finally {
    clearTimeout(timer);
    ws.terminate();
  }
}
