// Switching back by hand after a failover: the GPU is invited again and
// enrolls (a new token, its key back on the standby), its agent connects and
// is granted fenced; `standby switch-back` refuses, naming what is missing,
// until the agent heartbeats, its code-server answers and its agent finds its
// workspace equal to the standby's (the admin restores it by hand); then: freeze the standby, new epoch, fence the standby's
// receiver under it, route to the GPU, grant it primary; every step logged.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { standby } from '../fixtures/cli-run.ts';
import { proxySettingsFor, startManagedStandby, type HostKey, type ManagedStandby } from '../fixtures/managed-standby.ts';
import { ADMIN_TOKEN, startProxyWithBackends, whoami as whoamiVia, type ProxyWithBackends, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { StateStore } from '../../proxy/state-store.ts';

interface Client {
  grants: { role: string; epoch: number }[];
  /** what it answers when the proxy asks it to compare its workspace with the standby's (a real agent runs agent/verify.ts: switch-back-verify.test.ts) */
  differences: number;
  close(): void;
}

/** An agent-like client: heartbeats every 200 ms at the epoch it was granted; keeps the grants it heard. */
function agentClient(url: string, token: string): Promise<Client> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/_standby/agent`, { headers: { authorization: `Bearer ${token}` } });
  ws.on('error', () => undefined); // a revoked host's socket is closed by the proxy: the test asserts on state
  const grants: { role: string; epoch: number }[] = [];
  let epoch = 0;
  let seq = 0;
  const beat = () => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({
      type: 'heartbeat', hostId: 'gpu-1', epoch, seq: seq++,
      sync: { watermark: 0, lastSeq: 0, pending: 0, oldestPendingAgeMs: null, lastPassAgeMs: null, ready: true, held: false, lastError: null },
      codeServer: { healthy: true, checkedAgeMs: 0 }, preemption: null,
    }));
  };
  ws.on('message', (data: Buffer) => {
    const m = JSON.parse(data.toString()) as { type: string; role?: string; epoch?: number; id?: string };
    if (m.type === 'grant') {
      grants.push({ role: m.role!, epoch: m.epoch! });
      if (m.role === 'primary') epoch = m.epoch!;
    } else if (m.type === 'sync-now') ws.send(JSON.stringify({ type: 'synced', id: m.id, watermark: 0, ok: true, error: null }));
    else if (m.type === 'verify') {
      const differences = Array.from({ length: client.differences }, (_, i) => ({ root: '/workspace', path: `only-on-the-standby-${i}.txt`, kind: 'missing here' }));
      ws.send(JSON.stringify({ type: 'verified', id: m.id, ok: true, total: client.differences, differences, error: null }));
    }
  });
  const client: Client = { grants, differences: 0, close: () => { clearInterval(timer); ws.terminate(); } };
  const timer = setInterval(beat, 200);
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      beat();
      resolve(client);
    });
    ws.once('unexpected-response', (_req, res) => {
      clearInterval(timer);
      reject(new Error(`agent socket refused: ${res.statusCode}`));
    });
  });
}

describe('standby switch-back', () => {
  let m: ManagedStandby;
  let proxy: TestProxy;
  let world: ProxyWithBackends;
  const clients: { close(): void }[] = [];

  const invite = async (): Promise<string> => {
    const res = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'gpu-1', ttlSeconds: 600 }) });
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as { token: string }).token;
  };
  const enroll = async (key: HostKey): Promise<string> => {
    const res = await fetch(`${proxy.url}/_standby/enroll`, { method: 'POST', headers: { authorization: `Bearer ${await invite()}`, 'content-type': 'application/json' }, body: JSON.stringify({ publicKey: key.pub }), signal: AbortSignal.timeout(30_000) });
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { agentToken: string }).agentToken;
  };
  const switchBack = async (body: unknown = {}): Promise<{ status: number; message: string }> => {
    const res = await proxy.api('switch-back', { method: 'POST', body: JSON.stringify(body) });
    const b = (await res.json()) as { message?: string; error?: { message: string } };
    return { status: res.status, message: b.error?.message ?? b.message ?? '' };
  };
  const whoami = (): Promise<string> => whoamiVia(proxy.url);

  before(async () => {
    m = await startManagedStandby('switch-back');
    world = await startProxyWithBackends({ settings: proxySettingsFor(m) });
    proxy = world.proxy;
  });
  after(async () => {
    for (const c of clients) c.close();
    await world?.close();
    await m?.close();
  });

  test('after a failover: refused until the GPU is back and its restore confirmed; then fence, route, grant, every step logged', async () => {
    // the GPU enrolls and heartbeats; a failover by hand revokes it once its fence succeeded
    const first = m.newKey('gpu-1');
    const c1 = await agentClient(proxy.url, await enroll(first));
    clients.push(c1);
    await waitFor('the GPU seen', () => proxy.store.state.phase === 'normal', { timeoutMs: 10_000 });
    assert.equal((await proxy.api('failover', { method: 'POST' })).status, 202);
    await waitFor('failed over', () => proxy.store.state.phase === 'failed_over', { timeoutMs: 20_000 });
    assert.equal(await whoami(), 'cpu');
    assert.equal(readFileSync(join(m.state, 'epoch'), 'utf8').trim(), '2');

    // the GPU's agent, fenced for good by the failover (it stays connected until the host is retired): refused, naming what to do
    const none = await switchBack({ confirmRestored: true });
    assert.equal(none.status, 409);
    assert.match(none.message, /gpu-1's agent is connected but fenced for good \(fenced at epoch 2 by a failover\): bring the GPU back \(standby hosts add gpu-1/);

    // the operator brings the GPU back: invited and enrolled again, its agent connects and is granted fenced
    const second = m.newKey('gpu-1');
    const c2 = await agentClient(proxy.url, await enroll(second));
    clients.push(c2);
    await waitFor('granted fenced at epoch 2', () => c2.grants.some((g) => g.role === 'fenced' && g.epoch === 2), { timeoutMs: 5_000 });
    // its old key is gone from the standby, the new one may write at the current epoch (the restore goes the other way, by hand)
    // its agent compares its workspace with the standby's: the developer's work on the standby is not there yet
    c2.differences = 2;
    const unrestored = await switchBack({ confirmRestored: true });
    assert.equal(unrestored.status, 409);
    assert.match(unrestored.message, /gpu-1's workspace differs from the standby's in 2 paths: restore it from the standby/);
    assert.equal(proxy.store.state.phase, 'failed_over', 'a refusal changes nothing');
    assert.equal(await whoami(), 'cpu', 'and unfreezes nothing it froze');

    c2.differences = 0; // restored by hand
    // the standby's sshd is down: the switch back cannot fence; the admin aborts it and the standby serves again
    m.sshd.kill();
    const stuck = await switchBack({ confirmRestored: true });
    assert.equal(stuck.status, 202, stuck.message);
    await waitFor('the fence refused', () => proxy.store.state.phase === 'switching_back' && proxy.failover.lastFenceError !== null, { timeoutMs: 30_000 });
    assert.notEqual(await whoami(), 'gpu', 'no route to the GPU before the fence');
    const aborted = await proxy.api('failover/abort', { method: 'POST' });
    assert.equal(aborted.status, 200, await aborted.clone().text());
    assert.deepEqual([proxy.store.state.active, proxy.store.state.phase, proxy.store.state.epoch], ['standby', 'failed_over', 3]);
    assert.equal(await whoami(), 'cpu', 'the standby serves again');
    assert.ok(c2.grants.every((g) => g.role === 'fenced'), 'the GPU was never granted primary');
    await m.sshd.start();

    // the CLI, with the restore confirmed
    const r = await standby(['switch-back', '--restored', '--proxy', proxy.url, '--token', ADMIN_TOKEN, '--wait', '30']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /the GPU serves again/);
    const s = proxy.store.state;
    assert.deepEqual([s.active, s.phase, s.epoch, s.fencedEpoch, s.gpuSeenEpoch], ['primary', 'normal', 4, 4, 4]);
    assert.equal(readFileSync(join(m.state, 'epoch'), 'utf8').trim(), '4', "the standby's receiver is fenced at the new epoch");
    await waitFor('the GPU granted primary at epoch 4', () => c2.grants.some((g) => g.role === 'primary' && g.epoch === 4), { timeoutMs: 5_000 });
    assert.equal(await whoami(), 'gpu');
    // the GPU's writes under the new epoch are accepted; an older epoch's are not
    assert.equal((await m.rsyncAs(second.file, 4)).code, 0);
    assert.notEqual((await m.rsyncAs(second.file, 3)).code, 0);
    const steps = proxy.store.events().filter((e) => ['switch-back', 'fenced', 'routed'].includes(e.type)).slice(-3).map((e) => e.type);
    assert.deepEqual(steps, ['switch-back', 'fenced', 'routed'], 'every step logged, fence before route');
    const reopened = StateStore.open(proxy.store.dir);
    try {
      assert.deepEqual({ ...reopened.state }, { ...proxy.store.state }, 'the log replays to the same state');
    } finally {
      reopened.close();
    }
    const twice = await switchBack({ confirmRestored: true });
    assert.equal(twice.status, 409);
    assert.match(twice.message, /the GPU already serves/);
  });
});
