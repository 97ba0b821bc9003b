// A userspace TCP relay on loopback that stands for a network link in front of
// the standby's sshd (tc netem is not available here): it forwards each
// connection to the target port, adds a one-way delay in each direction, caps
// each direction's bandwidth with a token bucket shared by all connections, and
// counts the bytes it carries. With no delay and no cap it is a byte counter.
//
// It runs in its own child process (`startRelay`) so that the benchmark's own
// work (writing thousands of files, polling the standby) cannot stall the link.
// Delivery is timer-driven: each chunk gets a departure time from the token
// bucket (kept as a "theoretical arrival time", GCRA) and is written when its
// time plus the delay comes; no busy loop. A direction stops reading from its
// source while more than `bufferBytes` wait to go (beyond what is in flight), so TCP flow control pushes
// back on the sender as a router's full queue would.
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Socket, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface RelayOptions {
  /** where connections go (the sshd) */
  targetHost: string;
  targetPort: number;
  /** added to every byte in each direction, in ms (default 0) */
  delayMs?: number;
  /** cap per direction in bits per second, shared by all connections; 0 = no cap (default 0) */
  rateBitsPerS?: number;
  /** token bucket depth in bytes (default 64 KiB) */
  burstBytes?: number;
  /** bytes a direction may queue before the link (beyond those in flight) before it stops reading its source (default 256 KiB) */
  bufferBytes?: number;
}

export interface RelayStats {
  /** bytes from clients towards the target (what a sync sends) */
  up: number;
  /** bytes from the target back to clients */
  down: number;
  /** connections accepted so far */
  connections: number;
}

export interface Relay {
  port: number;
  stats(): Promise<RelayStats>;
  close(): Promise<void>;
}

const CHUNK = 16 * 1024;

/** One direction of the link: a token bucket, shared by every connection's traffic that way. */
class Link {
  private readonly bytesPerMs: number;
  private readonly burstMs: number;
  private tat = 0; // when the bucket will have refilled what was already spent

  constructor(rateBitsPerS: number, burstBytes: number) {
    this.bytesPerMs = rateBitsPerS / 8 / 1000;
    this.burstMs = this.bytesPerMs > 0 ? burstBytes / this.bytesPerMs : 0;
  }

  /** The time the last byte of a chunk of `bytes` leaves, if it arrives now. */
  depart(bytes: number, now: number): number {
    if (this.bytesPerMs <= 0) return now;
    this.tat = Math.max(this.tat, now - this.burstMs) + bytes / this.bytesPerMs;
    return Math.max(now, this.tat - this.burstMs);
  }
}

interface Queued {
  buf: Buffer;
  at: number;
}

/** Moves bytes from `src` to `dst` through `link` with `delayMs`; counts them into `count`. */
function shape(src: Socket, dst: Socket, link: Link, delayMs: number, hold: { pauseAbove: number; resumeBelow: number }, count: (n: number) => void): () => void {
  const queue: Queued[] = [];
  let queued = 0;
  let paused = false;
  let ended = false;
  let timer: NodeJS.Timeout | undefined;

  const flush = (): void => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now + 0.5) {
      const item = queue.shift()!;
      queued -= item.buf.length;
      if (!dst.destroyed) dst.write(item.buf);
    }
    if (paused && queued < hold.resumeBelow) {
      paused = false;
      src.resume();
    }
    if (queue.length > 0) timer = setTimeout(flush, Math.max(0, queue[0]!.at - performance.now()));
    else if (ended && !dst.destroyed) dst.end();
  };

  src.on('data', (data: Buffer) => {
    count(data.length);
    const now = performance.now();
    for (let off = 0; off < data.length; off += CHUNK) {
      const buf = data.subarray(off, Math.min(data.length, off + CHUNK));
      queue.push({ buf, at: link.depart(buf.length, now) + delayMs });
      queued += buf.length;
    }
    if (queued > hold.pauseAbove && !paused) {
      paused = true;
      src.pause();
    }
    if (timer === undefined) timer = setTimeout(flush, Math.max(0, queue[0]!.at - performance.now()));
  });
  src.on('end', () => {
    ended = true;
    if (queue.length === 0 && timer === undefined && !dst.destroyed) dst.end();
  });
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
}

/** Runs the relay in this process; used by the relay's child process. */
function serveRelay(options: RelayOptions, listenPort = 0): Promise<{ server: Server; port: number; stats: RelayStats; close(): Promise<void> }> {
  const delayMs = options.delayMs ?? 0;
  const rate = options.rateBitsPerS ?? 0;
  const burst = options.burstBytes ?? 64 * 1024;
  const bufferBytes = options.bufferBytes ?? 256 * 1024;
  // Bytes on their way (departed, within the delay) are not queued at the sender's end of the
  // link: a direction may hold its buffer plus one bandwidth-delay product before it pushes back.
  const bdp = rate > 0 ? (rate / 8) * (delayMs / 1000) : 0;
  const hold = { pauseAbove: bufferBytes + bdp, resumeBelow: bufferBytes / 2 + bdp };
  const upLink = new Link(rate, burst);
  const downLink = new Link(rate, burst);
  const stats: RelayStats = { up: 0, down: 0, connections: 0 };
  const sockets = new Set<Socket>();
  const plain = delayMs <= 0 && rate <= 0;

  const server = createServer((client) => {
    stats.connections++;
    const upstream = connect({ host: options.targetHost, port: options.targetPort });
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const closers: Array<() => void> = [];
    const finish = (): void => {
      for (const close of closers) close();
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', finish);
    upstream.on('error', finish);
    client.on('close', finish);
    upstream.on('close', finish);
    if (plain) {
      client.on('data', (d: Buffer) => void (stats.up += d.length));
      upstream.on('data', (d: Buffer) => void (stats.down += d.length));
      client.pipe(upstream);
      upstream.pipe(client);
    } else {
      closers.push(shape(client, upstream, upLink, delayMs, hold, (n) => void (stats.up += n)));
      closers.push(shape(upstream, client, downLink, delayMs, hold, (n) => void (stats.down += n)));
    }
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      resolve({
        server,
        port,
        stats,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

type ToChild = { type: 'stats'; id: number } | { type: 'close' };
type FromChild = { type: 'ready'; port: number } | { type: 'stats'; id: number; stats: RelayStats } | { type: 'error'; message: string };

/** Starts the relay in a child process and resolves once it listens. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [JSON.stringify(options)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('relay did not start within 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`relay exited ${code} before listening`)));
    child.on('message', (m: FromChild) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve(m.port);
      } else if (m.type === 'error') {
        clearTimeout(timer);
        reject(new Error(m.message));
      }
    });
  }).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });

  let nextId = 0;
  const waiting = new Map<number, (s: RelayStats) => void>();
  child.on('message', (m: FromChild) => {
    if (m.type === 'stats') {
      waiting.get(m.id)?.(m.stats);
      waiting.delete(m.id);
    }
  });
  return {
    port,
    stats() {
      const id = nextId++;
      return new Promise<RelayStats>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('relay did not answer for its stats within 5 s')), 5_000);
        waiting.set(id, (s) => {
          clearTimeout(timer);
          resolve(s);
        });
        child.send({ type: 'stats', id } satisfies ToChild);
      });
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send({ type: 'close' } satisfies ToChild);
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function childMain(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as RelayOptions;
  try {
    const relay = await serveRelay(options);
    process.on('message', (m: ToChild) => {
      if (m.type === 'stats') process.send?.({ type: 'stats', id: m.id, stats: relay.stats } satisfies FromChild);
      else if (m.type === 'close') void relay.close().then(() => process.exit(0));
    });
    // The parent going away (even by SIGKILL) closes the IPC channel: stop with it.
    process.on('disconnect', () => process.exit(0));
    process.send?.({ type: 'ready', port: relay.port } satisfies FromChild);
  } catch (err) {
    process.send?.({ type: 'error', message: (err as Error).message } satisfies FromChild);
    process.exit(1);
  }
}

if (import.meta.main) await childMain();
