// Fuzzer for the heartbeat: mutated heartbeats (types, ranges,
// huge strings, extra or missing fields, wrong host, wrong epoch, replays,
// non-JSON, binary frames) over a real agent WebSocket. Nothing but a valid
// heartbeat from the right host, moving forward, changes the hub's record of
// that host, nothing changes the proxy's state, and the proxy stays up.
// Bounded in count and time; the seed is in any failure's message
// (STANDBY_FUZZ_SEED=N replays it).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { AGENT_PATH, agentMessageSchema, heartbeatSchema, type Heartbeat } from '../../protocol/messages.ts';
import { seededRandom, withSeed, type Random } from '../fixtures/fuzz-random.ts';
import { AGENT_TOKEN, startProxyWithBackends, type ProxyWithBackends, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const ROUNDS = 400;
const TIME_LIMIT_MS = 60_000;
const STANDBY_TOKEN = 'agent-token-cpu-1';
const MAX_PAYLOAD = 64 * 1024;

interface Conn { ws: WebSocket; closed: boolean; previous: Heartbeat | undefined; host: string }

async function open(url: string, token: string, host: string): Promise<Conn> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}${AGENT_PATH}`, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: 5_000 });
  const c: Conn = { ws, closed: false, previous: undefined, host };
  ws.on('close', () => (c.closed = true));
  ws.on('error', () => (c.closed = true));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return c;
}

/** Every frame sent before it has been read by the proxy: a ping's pong comes after them, or the close. */
function barrier(c: Conn): Promise<void> {
  if (c.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      c.ws.off('pong', done);
      c.ws.off('close', done);
      resolve();
    };
    c.ws.once('pong', done);
    c.ws.once('close', done);
    try {
      c.ws.ping();
    } catch {
      done();
    }
  });
}

function valid(c: Conn, r: Random): Heartbeat {
  const p = c.previous;
  const lastSeq = (p?.sync.lastSeq ?? 0) + r.int(0, 20);
  const watermark = Math.min(lastSeq, (p?.sync.watermark ?? 0) + r.int(0, 20));
  return {
    type: 'heartbeat',
    hostId: c.host,
    epoch: p ? p.epoch : r.pick([0, 1]),
    seq: (p?.seq ?? 0) + r.int(1, 3),
    sync: { watermark, lastSeq, pending: r.int(0, lastSeq - watermark), oldestPendingAgeMs: r.chance(0.5) ? null : r.int(0, 5000), lastPassAgeMs: null, ready: r.chance(0.8), held: false, lastError: r.chance(0.9) ? null : r.string(r.int(0, 50)), target: null, progress: null },
    codeServer: { healthy: r.chance(0.9), checkedAgeMs: r.int(0, 1000) },
    preemption: null,
    frozen: false,
    resume: null,
  };
}

const ODD_VALUES: unknown[] = [null, true, false, -1, 0.5, 1e308, -0, Number.MAX_SAFE_INTEGER + 2, 'x', '', [], {}, [1, 2], { a: 1 }];

/** A heartbeat with one or more things wrong with it, or a frame that is no heartbeat at all. */
function mutate(c: Conn, r: Random): string | Buffer {
  const hb = valid(c, r) as unknown as Record<string, unknown>;
  const sync = hb['sync'] as Record<string, unknown>;
  const p = c.previous;
  switch (r.int(0, 13)) {
    case 0: return r.string(r.int(0, 200)); // not JSON (mostly)
    case 1: return Buffer.from(JSON.stringify(hb)); // binary frame (sent as binary below)
    case 2: hb[r.pick(['type', 'hostId', 'epoch', 'seq', 'sync', 'codeServer', 'preemption'])] = r.pick(ODD_VALUES); break;
    case 3: sync[r.pick(['watermark', 'lastSeq', 'pending', 'oldestPendingAgeMs', 'lastPassAgeMs', 'ready', 'held', 'lastError'])] = r.pick(ODD_VALUES); break;
    case 4: hb[r.string(r.int(1, 10), 'abcdefghij')] = r.pick(ODD_VALUES); break; // extra field
    case 5: delete hb[r.pick(['type', 'hostId', 'epoch', 'seq', 'sync', 'codeServer'])]; break;
    case 6: hb['hostId'] = r.pick(['gpu-2', 'cpu-1', 'gpu-1 ', 'GPU-1', r.string(r.int(1, 300))]); break; // wrong host
    case 7: hb['epoch'] = r.pick([2, 3, 999, 2 ** 31, p && p.epoch === 1 ? 0 : 5]); break; // wrong epoch
    case 8: if (p) return JSON.stringify(p); hb['seq'] = 0; break; // replay
    case 9: if (p) hb['seq'] = r.int(0, p.seq); break; // out of order
    case 10: if (p && p.sync.watermark > 0) sync['watermark'] = r.int(0, p.sync.watermark - 1); else sync['watermark'] = (sync['lastSeq'] as number) + r.int(1, 100); break;
    case 11: sync['lastError'] = r.string(r.int(2_001, 70_000), 'ab'); break; // huge string (and over the frame limit at times)
    case 12: hb['preemption'] = r.pick([{ source: '', ageMs: 1 }, { source: 'x', ageMs: -1 }, { source: 'x', ageMs: 1, extra: true }, 'now', 1]); break;
    default: return JSON.stringify(r.pick([[hb], 'heartbeat', 42, null, { type: 'synced' }, { type: 'grant', epoch: 1 }]));
  }
  return JSON.stringify(hb);
}

/** What the proxy must do with a frame, by the protocol's contract (messages.ts) and the forward-only rules. */
function expected(c: Conn, frame: string | Buffer, binary: boolean): 'accept' | 'drop' | 'close' {
  if (binary || Buffer.byteLength(frame) > MAX_PAYLOAD) return 'close';
  let data: unknown;
  try {
    data = JSON.parse(frame.toString());
  } catch {
    return 'close';
  }
  if (!agentMessageSchema.safeParse(data).success) return 'close';
  const hb = heartbeatSchema.safeParse(data);
  if (!hb.success) return 'drop'; // a valid 'synced' message for nobody: no change
  const h = hb.data;
  if (h.hostId !== c.host || h.epoch > 1) return 'close';
  const p = c.previous;
  if (h.sync.watermark > h.sync.lastSeq) return 'drop';
  if (p && (h.seq <= p.seq || h.sync.watermark < p.sync.watermark || h.sync.lastSeq < p.sync.lastSeq || h.epoch < p.epoch)) return 'drop';
  return 'accept';
}

let world: ProxyWithBackends;
let proxy: TestProxy;
const conns: Conn[] = [];
before(async () => {
  // both code-servers answer, and the detector's window is long: nothing here may fail over
  world = await startProxyWithBackends({
    fence: () => Promise.reject(new Error('no fence in this test')),
    settings: { standby: { agentToken: STANDBY_TOKEN }, detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 }, logLevel: 'warn' },
  });
  proxy = world.proxy;
});
after(async () => {
  for (const c of conns) c.ws.terminate();
  await world?.close();
});

test(`heartbeat fuzzer: ${ROUNDS} frames, only valid forward heartbeats of the right host count`, { timeout: TIME_LIMIT_MS + 30_000 }, async (t) => {
  const r = seededRandom();
  t.diagnostic(`seed ${r.seed} (STANDBY_FUZZ_SEED to replay)`);
  await withSeed(r, 'heartbeat fuzzer', async () => {
    // a closed agent socket with code-server answering may make the phase "degraded" for a moment (reported, no failover); nothing else may move
    const durable = () => { const s = proxy.store.state; return JSON.stringify({ epoch: s.epoch, active: s.active, failovers: s.failovers, fencedEpoch: s.fencedEpoch }); };
    const stateBefore = durable();
    const started = performance.now();
    let gpuConn = await open(proxy.url, AGENT_TOKEN, 'gpu-1');
    let cpuConn = await open(proxy.url, STANDBY_TOKEN, 'cpu-1');
    conns.push(gpuConn, cpuConn);
    const counts = { accept: 0, drop: 0, close: 0 };
    for (let i = 0; i < ROUNDS && performance.now() - started < TIME_LIMIT_MS; i++) {
      // most frames go to the GPU's connection; some, in the GPU's name, to the standby's
      const onCpu = r.chance(0.1);
      const c = onCpu ? cpuConn : gpuConn;
      const mutated = r.chance(0.7);
      let frame: string | Buffer = mutated ? mutate(c, r) : JSON.stringify(valid(c, r));
      const binary = Buffer.isBuffer(frame);
      if (onCpu && typeof frame === 'string' && r.chance(0.5)) frame = frame.replaceAll('"cpu-1"', '"gpu-1"');
      const want = expected(c, frame, binary);
      const rec = proxy.hub.agents.get(c.host)!;
      const gpuRec = proxy.hub.agents.get('gpu-1')!;
      const before = { n: rec.heartbeats, last: JSON.stringify(rec.last), at: rec.lastHeartbeatAt, gpuN: gpuRec.heartbeats, gpuAt: gpuRec.lastHeartbeatAt };
      c.ws.send(frame, { binary });
      await barrier(c);
      if (want === 'close') {
        await waitFor(`frame ${i} closes its connection`, () => c.closed, { timeoutMs: 5_000 });
      } else {
        assert.equal(c.closed, false, `frame ${i} (${want}) must not close the connection: ${frame.toString().slice(0, 200)}`);
      }
      if (want === 'accept') {
        assert.equal(rec.heartbeats, before.n + 1, `frame ${i} is recorded`);
        assert.equal(JSON.stringify(rec.last), JSON.stringify(heartbeatSchema.parse(JSON.parse(frame.toString()))));
        c.previous = rec.last;
      } else {
        assert.equal(rec.heartbeats, before.n, `frame ${i} (${want}) changes no count: ${frame.toString().slice(0, 200)}`);
        assert.equal(JSON.stringify(rec.last), before.last, `frame ${i} (${want}) changes no record`);
        assert.equal(rec.lastHeartbeatAt, before.at, `frame ${i} (${want}) is no liveness`);
      }
      if (c.host !== 'gpu-1') assert.deepEqual([gpuRec.heartbeats, gpuRec.lastHeartbeatAt], [before.gpuN, before.gpuAt], 'a frame on another host\'s connection never touches the GPU\'s record');
      counts[want]++;
      assert.ok(!['failing_over', 'failed_over'].includes(proxy.store.state.phase), `frame ${i} started no failover`);
      if (c.closed) {
        // a fresh connection: a restarted agent, numbering from the start
        if (c === gpuConn) conns.push((gpuConn = await open(proxy.url, AGENT_TOKEN, 'gpu-1')));
        else conns.push((cpuConn = await open(proxy.url, STANDBY_TOKEN, 'cpu-1')));
      }
    }
    t.diagnostic(`accepted ${counts.accept}, dropped ${counts.drop}, closed ${counts.close}`);
    assert.ok(counts.accept > 20 && counts.drop > 20 && counts.close > 20, `every outcome was exercised: ${JSON.stringify(counts)}`);
    assert.equal(durable(), stateBefore, "the proxy's state is unchanged: same epoch, same side, no failover");
    assert.ok(['normal', 'degraded', 'suspect'].includes(proxy.store.state.phase), proxy.store.state.phase);
    const health = await fetch(`${proxy.url}/_standby/healthz`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(health.status, 200, 'the proxy is up');
  });
});
