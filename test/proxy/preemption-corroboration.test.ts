// An agent's preemption notice is only the GPU host's word (a third party's):
// the proxy freezes and takes the final pass at once (reversible), and makes
// it irreversible (epoch, fence, revocation) only once it sees it too: the
// provider says so, or the GPU goes silent or its code-server down. Not
// corroborated in time: unfrozen, the GPU serves on, nothing fenced or revoked.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { startFakeVastApi, type FakeVastApi } from '../fakes/vast-api.ts';
import { startWorld, type World } from '../fixtures/failover-world.ts';
import { AGENT_TOKEN } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

/** An agent-like client for gpu-1: heartbeats every 200 ms at the granted epoch, answers sync requests, a notice on demand. */
async function fakeAgent(world: World): Promise<{ notice(source: string): void; syncRequests(): number; grants: { role: string; epoch: number }[]; close(): void }> {
  const ws = new WebSocket(`${world.proxy.url.replace('http', 'ws')}/_standby/agent`, { headers: { authorization: `Bearer ${AGENT_TOKEN}` } });
  ws.on('error', () => undefined); // closed by the proxy on revocation: the test asserts on state, not on this socket
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let seq = 0;
  let epoch = 0;
  let syncs = 0;
  let preemption: { source: string; at: number } | null = null;
  const grants: { role: string; epoch: number }[] = [];
  ws.on('message', (data: Buffer) => {
    const m = JSON.parse(data.toString()) as { type: string; epoch?: number; role?: string; id?: string };
    if (m.type === 'grant') {
      epoch = m.epoch!;
      grants.push({ role: m.role!, epoch: m.epoch! });
    } else if (m.type === 'sync-now') {
      syncs++;
      ws.send(JSON.stringify({ type: 'synced', id: m.id, watermark: 0, ok: true, error: null }));
    }
  });
  const beat = () => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({
      type: 'heartbeat',
      hostId: 'gpu-1',
      epoch,
      seq: seq++,
      sync: { watermark: 0, lastSeq: 0, pending: 0, oldestPendingAgeMs: null, lastPassAgeMs: 10, ready: true, held: false, lastError: null },
      codeServer: { healthy: true, checkedAgeMs: 10 },
      preemption: preemption ? { source: preemption.source, ageMs: Math.round(performance.now() - preemption.at) } : null,
    }));
  };
  beat();
  const timer = setInterval(beat, 200);
  return {
    notice(source) {
      preemption = { source, at: performance.now() };
      beat();
    },
    syncRequests: () => syncs,
    grants,
    close() {
      clearInterval(timer);
      ws.terminate();
    },
  };
}

test("one heartbeat's preemption notice, nothing corroborates it: frozen and a final pass, then unfrozen; no epoch, fence or revocation", async () => {
  const world = await startWorld({ agent: false, proxySettings: { detector: { heartbeatIntervalMs: 200, missedHeartbeats: 5, preemptionConfirmMs: 2_000 } } });
  let agent: Awaited<ReturnType<typeof fakeAgent>> | undefined;
  try {
    agent = await fakeAgent(world);
    await waitFor('the GPU seen', () => world.proxy.store.state.phase === 'normal', { timeoutMs: 10_000 });
    const a = agent;
    const noticedAt = performance.now();
    a.notice('gcp-metadata');
    await waitFor('frozen', () => world.proxy.failover.frozen, { timeoutMs: 5_000 });
    assert.equal(JSON.parse((await world.get('/_standby/status')).body).phase, 'failing_over', 'pages show the transition while frozen');
    await waitFor('the final pass asked for', () => a.syncRequests() >= 1, { timeoutMs: 5_000 });
    assert.equal(world.proxy.store.state.epoch, 1, 'no new epoch while corroborating');
    await waitFor('not corroborated', () => world.proxy.store.events().some((e) => e.type === 'notice' && e.outcome === 'not-corroborated'), { timeoutMs: 10_000 });
    assert.ok(performance.now() - noticedAt >= 2_000, 'it waited preemptionConfirmMs');
    assert.equal(world.proxy.failover.frozen, false, 'unfrozen');
    assert.equal((await world.get('/whoami')).body, 'gpu', 'the GPU serves again');
    // the agent keeps carrying the notice in every heartbeat: it is not taken up again
    const until = performance.now() + 2_500;
    while (performance.now() < until) {
      assert.equal(world.proxy.store.state.epoch, 1);
      assert.equal(world.proxy.failover.frozen, false);
      await new Promise((r) => setTimeout(r, 100));
    }
    const s = world.proxy.store.state;
    assert.deepEqual([s.active, s.epoch, s.fencedEpoch], ['primary', 1, 0]);
    assert.equal(world.proxy.store.events().filter((e) => e.type === 'notice' && e.outcome === 'corroborating').length, 1);
    assert.equal(existsSync(join(world.receiveState, 'epoch')), false, 'nobody fenced the standby');
    assert.ok(a.grants.every((g) => g.role === 'primary'), 'the GPU was never told it is fenced');
    const hosts = (await (await world.proxy.api('hosts')).json()) as { hosts: { id: string; state: string }[] };
    assert.notEqual(hosts.hosts.find((h) => h.id === 'gpu-1')?.state, 'revoked');
  } finally {
    agent?.close();
    await world.close();
  }
});

test("an agent's notice the provider confirms (Vast says stopped): failover, planned, and only then the GPU is revoked", async () => {
  let vast: FakeVastApi | undefined;
  let world: World | undefined;
  let agent: Awaited<ReturnType<typeof fakeAgent>> | undefined;
  try {
    vast = await startFakeVastApi();
    vast.setStatus(77, 'running');
    world = await startWorld({
      agent: false,
      proxySettings: {
        detector: { heartbeatIntervalMs: 200, missedHeartbeats: 5, preemptionConfirmMs: 30_000 },
        primary: { notices: { vast: { apiUrl: vast.apiUrl, apiKey: vast.apiKey, instanceId: 77, everyMs: 500 } } },
      },
    });
    const w = world;
    agent = await fakeAgent(w);
    await waitFor('the GPU seen', () => w.proxy.store.state.phase === 'normal', { timeoutMs: 10_000 });
    agent.notice('gcp-metadata');
    await waitFor('frozen', () => w.proxy.failover.corroborating !== undefined, { timeoutMs: 5_000 });
    assert.equal(w.proxy.store.state.epoch, 1);
    vast.setStatus(77, 'stopped');
    await waitFor('failed over', () => w.proxy.store.state.phase === 'failed_over', { timeoutMs: 20_000 });
    const epoch = w.proxy.store.events().find((e) => e.type === 'epoch');
    assert.ok(epoch && epoch.type === 'epoch' && epoch.planned);
    assert.match(epoch.reason, /corroborated: vast-status/);
    assert.equal((await w.get('/whoami')).body, 'cpu');
    const hosts = (await (await w.proxy.api('hosts')).json()) as { hosts: { id: string; state: string }[] };
    assert.equal(hosts.hosts.find((h) => h.id === 'gpu-1')?.state, 'revoked', 'revoked once the fence succeeded');
  } finally {
    agent?.close();
    await world?.close();
    await vast?.close();
  }
});

test("an agent's notice being corroborated can be dismissed by the admin: unfrozen at once, nothing fenced", async () => {
  const world = await startWorld({ agent: false, proxySettings: { detector: { heartbeatIntervalMs: 200, missedHeartbeats: 5, preemptionConfirmMs: 60_000 } } });
  let agent: Awaited<ReturnType<typeof fakeAgent>> | undefined;
  try {
    agent = await fakeAgent(world);
    await waitFor('the GPU seen', () => world.proxy.store.state.phase === 'normal', { timeoutMs: 10_000 });
    agent.notice('sigterm');
    await waitFor('corroborating', () => world.proxy.failover.corroborating !== undefined, { timeoutMs: 5_000 });
    const started = performance.now();
    const res = await world.proxy.api('failover/abort', { method: 'POST' });
    assert.equal(res.status, 200, await res.clone().text());
    assert.ok(performance.now() - started < 5_000, 'at once, not after preemptionConfirmMs');
    assert.equal(world.proxy.failover.frozen, false);
    assert.equal(world.proxy.failover.corroborating, undefined);
    assert.deepEqual([world.proxy.store.state.epoch, world.proxy.store.state.active], [1, 'primary']);
    assert.ok(world.proxy.store.events().some((e) => e.type === 'notice' && e.outcome === 'not-corroborated' && /aborted by the admin/.test(e.reason)));
    assert.equal((await world.get('/whoami')).body, 'gpu');
    assert.equal(existsSync(join(world.receiveState, 'epoch')), false, 'nobody fenced the standby');
  } finally {
    agent?.close();
    await world.close();
  }
});
