// bench/slow-link: the sync-lag workloads through a relay that stands for a WAN
// link (about 100 ms RTT, 50 Mbit/s each way): the agent at its defaults beside
// lsyncd (delay 1), with a one-shot rsync through the same link as the yardstick.
// The link is calibrated first (RTT and throughput through a relay of the same
// settings to a local echo/sink server), so the figures say what link they had.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { AGENT_DEFAULTS, LSYNCD, ONE_SHOT, lagTable } from '../lag.ts';
import { startRelay, type RelayOptions } from '../relay.ts';
import { percentile, type CaseResult, type Table } from '../report.ts';
import { pickSystems, runLagMatrix, targetsTable } from './sync-lag.ts';

const LINK: Omit<RelayOptions, 'targetHost' | 'targetPort'> = { delayMs: 50, rateBitsPerS: 50_000_000 };

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
}

function connected(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Measures the relay's link: round trips of one byte through an echo server, and the time 16 MiB takes to reach a sink. */
async function calibrate(): Promise<Table> {
  const sockets = new Set<Socket>();
  let sinkBytes = 0;
  let sinkWaiter: { want: number; done: () => void } | undefined;
  const echo = createServer((s) => {
    sockets.add(s);
    s.on('data', (d) => s.write(d));
    s.on('error', () => s.destroy());
  });
  const sink = createServer((s) => {
    sockets.add(s);
    s.on('data', (d: Buffer) => {
      sinkBytes += d.length;
      if (sinkWaiter && sinkBytes >= sinkWaiter.want) sinkWaiter.done();
    });
    s.on('error', () => s.destroy());
  });
  const echoPort = await listen(echo);
  const sinkPort = await listen(sink);
  const echoRelay = await startRelay({ targetHost: '127.0.0.1', targetPort: echoPort, ...LINK });
  const sinkRelay = await startRelay({ targetHost: '127.0.0.1', targetPort: sinkPort, ...LINK });
  try {
    const rtts: number[] = [];
    const c = await connected(echoRelay.port);
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no echo within 5 s')), 5_000);
        c.once('data', () => {
          clearTimeout(timer);
          resolve();
        });
        c.write('x');
      });
      rtts.push(performance.now() - t0);
    }
    c.destroy();

    const bytes = 16 * 1024 * 1024;
    const s = await connected(sinkRelay.port);
    const t0 = performance.now();
    const arrived = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('16 MiB did not cross the link within 60 s')), 60_000);
      sinkWaiter = {
        want: bytes,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
    const chunk = Buffer.alloc(64 * 1024, 7);
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
    }
    await arrived;
    const ms = performance.now() - t0;
    s.destroy();
    const mbit = (bytes * 8) / (ms / 1000) / 1e6;
    return {
      title: 'The link (measured through a relay with the same settings)',
      columns: ['setting', 'asked', 'measured'],
      rows: [
        ['round trip (1 byte, median of 10)', `${2 * (LINK.delayMs ?? 0)} ms`, `${percentile(rtts, 50)!.toFixed(0)} ms`],
        ['throughput one way (16 MiB, includes one-way delay)', `${(LINK.rateBitsPerS ?? 0) / 1e6} Mbit/s`, `${mbit.toFixed(1)} Mbit/s`],
      ],
      notes: ['Bandwidth counts TCP payload (the SSH stream), not IP/TCP headers; the cap is shared by all connections in each direction.'],
    };
  } finally {
    await echoRelay.close();
    await sinkRelay.close();
    for (const s of sockets) s.destroy();
    echo.close();
    sink.close();
  }
}

export async function run(): Promise<CaseResult> {
  const link = await calibrate();
  const result = await runLagMatrix('slow-link', pickSystems([AGENT_DEFAULTS, LSYNCD, ONE_SHOT]), LINK, { trickle: 90_000, burst: 240_000, big: 240_000, 'big-slow': 240_000 });
  return {
    tables: [
      link,
      lagTable('Fresh workspace over the slow link: trickle, saves, burst, big file', result.fresh),
      lagTable('Trickle over the slow link on a workspace that already holds 50,000 files (pre-synced)', result.base),
      targetsTable(result, 'Targets of issue 2, checked over the slow link (they are set for loopback; shown for comparison)'),
    ],
    notes: [
      `Every system reaches sshd through a userspace relay (bench/relay.ts) that adds ${LINK.delayMs} ms each way and caps each direction at ${(LINK.rateBitsPerS ?? 0) / 1e6} Mbit/s (token bucket, 64 KiB deep).`,
      'The one-shot rsync through the same link is the yardstick for the burst; the 200 MiB file alone needs about 34 s at 50 Mbit/s.',
      'Lag and "sent on the wire" are measured as in sync-lag.',
    ],
  };
}

