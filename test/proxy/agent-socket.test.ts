// The agent socket (/_standby/agent): tokens checked before the upgrade,
// heartbeats answered with grants, malformed messages closing only that
// connection, and an agent that is never granted primary pushing nothing.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { HeartbeatClient } from '../../agent/heartbeat.ts';
import { AGENT_PATH, CLOSE_PROTOCOL_ERROR, CLOSE_REPLACED, type Grant, type Heartbeat } from '../../protocol/messages.ts';
import { freePort } from '../../core/free-port.ts';
import { AGENT_TOKEN, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { startPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

const STANDBY_TOKEN = 'agent-token-cpu-1';

function heartbeat(seq: number, o: Partial<Heartbeat> = {}): Heartbeat {
  return {
    type: 'heartbeat',
    hostId: 'gpu-1',
    epoch: 0,
    seq,
    sync: { watermark: 0, lastSeq: 0, pending: 0, oldestPendingAgeMs: null, lastPassAgeMs: null, ready: true, held: false, lastError: null, target: null, progress: null },
    codeServer: { healthy: true, checkedAgeMs: 10 },
    preemption: null,
    frozen: false,
    resume: null,
    ...o,
  };
}

/** Opens the agent socket; resolves on open or with the HTTP status it was refused with. */
function connect(url: string, token: string | undefined): Promise<{ ws?: WebSocket; refused?: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, handshakeTimeout: 5_000 });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ refused: res.statusCode });
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
}

function next(ws: WebSocket): Promise<Grant> {
  return new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()) as Grant)));
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

describe('the agent socket', () => {
  let gpu: WorkspaceServer;
  let cpu: WorkspaceServer;
  let proxy: TestProxy;
  let agentUrl: string;
  before(async () => {
    [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
    proxy = await startTestProxy({
      primaryUrl: gpu.url,
      standbyUrl: cpu.url,
      fence: () => Promise.reject(new Error('no fence in this test')),
      settings: { standby: { agentToken: STANDBY_TOKEN } },
    });
    agentUrl = proxy.url.replace('http', 'ws') + AGENT_PATH;
  });
  after(async () => {
    await proxy?.close();
    await Promise.all([gpu?.close(), cpu?.close()]);
  });

  test('a missing or wrong token is refused with 401 before the upgrade', async () => {
    assert.deepEqual(await connect(agentUrl, undefined), { refused: 401 });
    assert.deepEqual(await connect(agentUrl, 'wrong-token-123'), { refused: 401 });
    assert.deepEqual(await connect(agentUrl, AGENT_TOKEN.slice(0, -1)), { refused: 401 });
    assert.ok(proxy.hub.refused >= 3);
  });

  test('a heartbeat is answered with the grant: the GPU is primary at epoch 1', async () => {
    const { ws } = await connect(agentUrl, AGENT_TOKEN);
    const answer = next(ws!);
    ws!.send(JSON.stringify(heartbeat(1)));
    assert.deepEqual(await answer, { type: 'grant', epoch: 1, role: 'primary', reason: 'the GPU serves', heartbeatSeq: 1 });
    ws!.close();
  });

  test('malformed messages close that connection with a reason and change nothing', async () => {
    const cases: [string, string | Buffer, RegExp][] = [
      ['not JSON', '{"type": "heartbeat", ', /not JSON/],
      ['a field missing', JSON.stringify({ ...heartbeat(1), sync: undefined }), /sync/],
      ['a wrong type', JSON.stringify({ ...heartbeat(1), seq: 'one' }), /seq/],
      ['an unknown message', JSON.stringify({ type: 'takeover' }), /type/],
      ['another host\'s id', JSON.stringify(heartbeat(1, { hostId: 'cpu-1' })), /token is gpu-1's/],
      ['a binary frame', Buffer.from([1, 2, 3]), /binary/],
    ];
    const before = proxy.store.state;
    for (const [what, payload, reason] of cases) {
      const { ws } = await connect(agentUrl, AGENT_TOKEN);
      const end = closed(ws!);
      ws!.send(payload);
      const c = await end;
      assert.equal(c.code, CLOSE_PROTOCOL_ERROR, what);
      assert.match(c.reason, reason, what);
    }
    // (the phase may move: the previous test's agent left, which is what degraded means)
    const after = proxy.store.state;
    assert.deepEqual([after.epoch, after.active, after.failovers, after.fencedEpoch], [before.epoch, before.active, before.failovers, before.fencedEpoch]);
    const s = await (await fetch(`${proxy.url}/_standby/whoami`)).status;
    assert.equal(s, 404);
    assert.equal(await (await fetch(`${proxy.url}/whoami`)).text(), 'gpu', 'still routed to the GPU');
  });

  test('a second connection for the same host replaces the first', async () => {
    const a = (await connect(agentUrl, AGENT_TOKEN)).ws!;
    const aClosed = closed(a);
    const b = (await connect(agentUrl, AGENT_TOKEN)).ws!;
    assert.equal((await aClosed).code, CLOSE_REPLACED);
    const answer = next(b);
    b.send(JSON.stringify(heartbeat(7)));
    assert.equal((await answer).role, 'primary');
    b.close();
  });

  test('an agent that is never granted primary pushes nothing', async () => {
    // The standby's own agent (a host the proxy knows, never primary today) with its own standby target.
    const pair = await startPair({ noStart: true, settings: { hostId: 'cpu-1', proxy: { url: agentUrl, token: STANDBY_TOKEN, heartbeatIntervalMs: 100 } } });
    const client = new HeartbeatClient(pair.config.proxy!, pair.config.hostId, pair.engine, pino({ level: 'silent' }));
    try {
      client.start();
      await pair.engine.start();
      await waitFor('a grant', () => client.grants > 0, { timeoutMs: 5_000 });
      writeFileSync(join(pair.gpu, 'never-pushed.txt'), 'stays here');
      await waitFor('the change seen', () => pair.engine.status().lastSeq > 0, { timeoutMs: 5_000 });
      const grantsBefore = client.grants;
      const s0 = () => pair.engine.status();
      await waitFor('several more heartbeats answered', () => client.grants >= grantsBefore + 5, { timeoutMs: 5_000 });
      assert.equal(pair.engine.pushing, false);
      assert.equal(existsSync(join(pair.cpu, 'never-pushed.txt')), false, 'nothing reached the standby');
      assert.deepEqual([s0().passes, s0().failedPasses, s0().bytesSent], [0, 0, 0], 'no pass was even tried');
      const s = pair.engine.status();
      assert.equal(s.watermark, 0);
      assert.ok(s.pending >= 1);
      assert.ok(pair.logs.some((l) => l.msg === 'not primary: pushing nothing until the proxy grants it'));
    } finally {
      client.close();
      await pair.close();
    }
  });

  test('an agent whose proxy cannot be reached pushes nothing either', async () => {
    const port = await freePort();
    const pair = await startPair({ noStart: true, settings: { proxy: { url: `ws://127.0.0.1:${port}${AGENT_PATH}`, token: AGENT_TOKEN } } });
    const client = new HeartbeatClient(pair.config.proxy!, pair.config.hostId, pair.engine, pino({ level: 'silent' }));
    try {
      client.start();
      await pair.engine.start();
      writeFileSync(join(pair.gpu, 'waits.txt'), 'x');
      await waitFor('the change seen', () => pair.engine.status().lastSeq > 0, { timeoutMs: 5_000 });
      await new Promise((r) => setTimeout(r, 500)); // a window in which a push would have happened (delay 250 ms)
      assert.equal(existsSync(join(pair.cpu, 'waits.txt')), false);
      assert.deepEqual([pair.engine.status().passes, pair.engine.status().failedPasses], [0, 0], 'no pass was even tried');
    } finally {
      client.close();
      await pair.close();
    }
  });
});
