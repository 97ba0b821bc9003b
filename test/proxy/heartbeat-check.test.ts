// Heartbeats checked against what the proxy knows, over
// a real agent WebSocket: an epoch nobody granted closes the connection; a
// replayed or out-of-order heartbeat, a watermark that goes back or passes
// lastSeq, and a stale epoch are dropped: not recorded, not liveness. A new
// connection (a restarted agent) may number from 1 again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { checkHeartbeat } from '../../proxy/heartbeat-check.ts';
import { AGENT_PATH, CLOSE_PROTOCOL_ERROR, type Grant, type Heartbeat } from '../../protocol/messages.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

const STANDBY_TOKEN = 'agent-token-cpu-1';

export function heartbeat(seq: number, o: { hostId?: string; epoch?: number; watermark?: number; lastSeq?: number; pending?: number; target?: string | null } = {}): Heartbeat {
  const lastSeq = o.lastSeq ?? 0;
  return {
    type: 'heartbeat',
    hostId: o.hostId ?? 'gpu-1',
    epoch: o.epoch ?? 0,
    seq,
    sync: { watermark: o.watermark ?? lastSeq, lastSeq, pending: o.pending ?? 0, oldestPendingAgeMs: null, lastPassAgeMs: null, ready: true, held: false, lastError: null, target: o.target ?? null, progress: null },
    codeServer: { healthy: true, checkedAgeMs: 10 },
    preemption: null,
    frozen: false,
    resume: null,
  };
}

/** An agent connection that collects what the proxy says. */
async function agentSocket(url: string, token: string): Promise<{ ws: WebSocket; grants: Grant[]; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}${AGENT_PATH}`, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: 5_000 });
  const grants: Grant[] = [];
  ws.on('message', (d) => grants.push(JSON.parse(d.toString()) as Grant));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, grants, closed };
}

/** Sends, then a valid heartbeat `probeSeq` whose grant proves the proxy read everything before it. */
async function sendThenProbe(a: { ws: WebSocket; grants: Grant[] }, bad: Heartbeat[], probe: Heartbeat): Promise<Grant[]> {
  const before = a.grants.length;
  for (const hb of bad) a.ws.send(JSON.stringify(hb));
  a.ws.send(JSON.stringify(probe));
  await waitFor(`the grant for heartbeat ${probe.seq}`, () => a.grants.slice(before).some((g) => g.heartbeatSeq === probe.seq), { timeoutMs: 5_000 });
  return a.grants.slice(before);
}

describe('heartbeats checked against what the proxy knows', () => {
  let proxy: TestProxy;
  let gpu: WorkspaceServer;
  let cpu: WorkspaceServer;
  const sockets: WebSocket[] = [];
  before(async () => {
    // both code-servers answer: a closed agent socket is no failover here, only the one the last test asks for
    [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
    proxy = await startTestProxy({
      primaryUrl: gpu.url,
      standbyUrl: cpu.url,
      fence: () => Promise.resolve({ waitedMs: 0, killed: 0 }),
      settings: { standby: { agentToken: STANDBY_TOKEN }, detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } },
    });
  });
  after(async () => {
    for (const ws of sockets) ws.terminate();
    await proxy?.close();
    await Promise.all([gpu?.close(), cpu?.close()]);
  });
  const record = () => proxy.hub.agents.get('gpu-1')!;

  test('an epoch above the proxy\'s closes the connection with a protocol error; nothing is recorded', async () => {
    const a = await agentSocket(proxy.url, AGENT_TOKEN);
    sockets.push(a.ws);
    const before = { heartbeats: record().heartbeats, at: record().lastHeartbeatAt };
    a.ws.send(JSON.stringify(heartbeat(1, { epoch: 999 })));
    const c = await a.closed;
    assert.equal(c.code, CLOSE_PROTOCOL_ERROR);
    assert.match(c.reason, /epoch 999 is above the proxy's epoch 1/);
    assert.equal(record().heartbeats, before.heartbeats);
    assert.equal(record().lastHeartbeatAt, before.at, 'not liveness');
    assert.equal(a.grants.length, 0);
  });

  test('replayed and out-of-order sequence numbers are dropped, not liveness; a new connection numbers from 1 again', async () => {
    const a = await agentSocket(proxy.url, AGENT_TOKEN);
    sockets.push(a.ws);
    let got = await sendThenProbe(a, [], heartbeat(5, { lastSeq: 10 }));
    assert.deepEqual(got.map((g) => g.heartbeatSeq), [5]);
    const counted = record().heartbeats;
    const droppedBefore = record().dropped;
    const at = record().lastHeartbeatAt;
    got = await sendThenProbe(a, [heartbeat(5, { lastSeq: 10 }), heartbeat(3, { lastSeq: 10 }), heartbeat(4, { lastSeq: 10 })], heartbeat(6, { lastSeq: 10 }));
    assert.deepEqual(got.map((g) => g.heartbeatSeq), [6], 'only the valid one is answered');
    assert.equal(record().heartbeats, counted + 1);
    assert.equal(record().dropped, droppedBefore + 3);
    assert.equal(record().last?.seq, 6);
    assert.ok(record().lastHeartbeatAt > at);
    assert.ok(proxy.logs.some((l) => /heartbeat dropped/.test(String(l['msg'])) && l['kind'] === 'replayed'), 'logged');

    // a restarted agent: a new connection starts again at 1
    a.ws.close();
    await a.closed;
    const b = await agentSocket(proxy.url, AGENT_TOKEN);
    sockets.push(b.ws);
    got = await sendThenProbe(b, [], heartbeat(1, { epoch: 1 }));
    assert.deepEqual(got.map((g) => [g.heartbeatSeq, g.epoch]), [[1, 1]]);
  });

  test('a watermark that goes back or passes lastSeq is dropped: the pending gauge never goes negative', async () => {
    const a = await agentSocket(proxy.url, AGENT_TOKEN);
    sockets.push(a.ws);
    await sendThenProbe(a, [], heartbeat(1, { epoch: 1, watermark: 40, lastSeq: 60, pending: 5 }));
    const dropped = record().dropped;
    const got = await sendThenProbe(a, [
      heartbeat(2, { epoch: 1, watermark: 30, lastSeq: 60 }), // back
      heartbeat(3, { epoch: 1, watermark: 109, lastSeq: 60 }), // the -49 of the probe
      heartbeat(4, { epoch: 1, watermark: 40, lastSeq: 50 }), // lastSeq back
    ], heartbeat(5, { epoch: 1, watermark: 45, lastSeq: 61 }));
    assert.deepEqual(got.map((g) => g.heartbeatSeq), [5]);
    assert.equal(record().dropped, dropped + 3);
    assert.deepEqual([record().last?.sync.watermark, record().last?.sync.lastSeq], [45, 61]);
    const metrics = await (await fetch(`${proxy.url}/_standby/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5_000) })).text();
    assert.match(metrics, /standby_sync_pending_changes\{host="gpu-1"\} 16\b/);
    a.ws.close();
  });

  test('after a failover, an epoch the host was not granted is dropped and answered with the grant it has now', async () => {
    // the GPU's sockets go first: a connected GPU agent that never answers would hold the planned failover's final pass for 10 s
    for (const ws of sockets) ws.terminate();
    await waitFor('the GPU agent gone', () => !record().connected, { timeoutMs: 5_000 });
    assert.equal((await proxy.api('failover', { method: 'POST' })).status, 202);
    await waitFor('failed over at epoch 2', async () => proxy.store.state.phase === 'failed_over' && proxy.store.state.epoch === 2);
    const s = await agentSocket(proxy.url, STANDBY_TOKEN);
    sockets.push(s.ws);
    const rec = () => proxy.hub.agents.get('cpu-1')!;
    const before = rec().heartbeats;
    s.ws.send(JSON.stringify(heartbeat(1, { hostId: 'cpu-1', epoch: 1 })));
    await waitFor('the grant after the stale heartbeat', () => s.grants.length === 1, { timeoutMs: 5_000 });
    assert.equal(s.grants[0]!.epoch, 2, 'told the current epoch');
    assert.equal(rec().heartbeats, before, 'not recorded');
    assert.equal(rec().dropped, 1);
    const got = await sendThenProbe(s, [], heartbeat(2, { hostId: 'cpu-1', epoch: 2 }));
    assert.deepEqual(got.map((g) => g.heartbeatSeq), [2]);
    assert.equal(rec().heartbeats, before + 1);
  });
});

describe('checkHeartbeat', () => {
  const cases: { name: string; hb: Heartbeat; previous?: Heartbeat; epoch?: number; lastGranted?: number; want: string }[] = [
    { name: 'first heartbeat, never granted (epoch 0)', hb: heartbeat(1), want: 'accept' },
    { name: 'the current epoch', hb: heartbeat(1, { epoch: 3 }), epoch: 3, want: 'accept' },
    { name: 'the epoch granted last, the proxy moved on since', hb: heartbeat(2, { epoch: 2 }), epoch: 3, lastGranted: 2, want: 'accept' },
    { name: 'an older epoch never granted', hb: heartbeat(2, { epoch: 1 }), epoch: 3, lastGranted: 3, want: 'stale-epoch' },
    { name: 'an epoch above the proxy\'s', hb: heartbeat(1, { epoch: 4 }), epoch: 3, want: 'impossible-epoch' },
    { name: 'the epoch going back on one connection', hb: heartbeat(3, { epoch: 0 }), previous: heartbeat(2, { epoch: 3 }), epoch: 3, want: 'stale-epoch' },
    { name: 'the same seq again', hb: heartbeat(2), previous: heartbeat(2), want: 'replayed' },
    { name: 'watermark above lastSeq', hb: heartbeat(1, { watermark: 5, lastSeq: 4 }), want: 'inconsistent' },
    { name: 'watermark back', hb: heartbeat(3, { watermark: 4, lastSeq: 9 }), previous: heartbeat(2, { watermark: 5, lastSeq: 9 }), want: 'inconsistent' },
    { name: 'everything forward', hb: heartbeat(3, { watermark: 6, lastSeq: 10 }), previous: heartbeat(2, { watermark: 5, lastSeq: 9 }), want: 'accept' },
    { name: 'a new push target starts the numbers afresh (a restore granted)', hb: heartbeat(3, { watermark: 0, lastSeq: 12, target: 'gpu-e2' }), previous: heartbeat(2, { watermark: 900, lastSeq: 916 }), want: 'accept' },
    { name: 'regression: numbers going back on the same target are still refused', hb: heartbeat(3, { watermark: 0, lastSeq: 12, target: 'gpu-e2' }), previous: heartbeat(2, { watermark: 13, lastSeq: 20, target: 'gpu-e2' }), want: 'inconsistent' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const v = checkHeartbeat(c.hb, { previous: c.previous, epoch: c.epoch ?? 1, lastGranted: c.lastGranted });
      assert.equal(v.accept ? 'accept' : v.kind, c.want);
    });
  }
});
