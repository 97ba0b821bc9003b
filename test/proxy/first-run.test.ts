// A first run waits for its GPU: a proxy whose GPU never sent a heartbeat at
// this epoch does not fail over (nor fence, nor revoke), however long it
// waits, and says so; once the GPU's agent has been heard, its death is a
// failure as before. A manual failover still works while waiting.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startWorld } from '../fixtures/failover-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { StateStore } from '../../proxy/state-store.ts';

test('a fresh proxy with no GPU yet waits for it: no failover, no fence, no revocation; once its agent was heard, its death fails over', async () => {
  const world = await startWorld({ agent: false });
  try {
    // the GPU does not exist yet: its code-server does not answer either (what made the first run fail over in 1.5 s)
    world.gpuServer.kill('SIGKILL');
    const d = world.proxy.config.detector;
    const windowMs = d.heartbeatIntervalMs * d.missedHeartbeats;
    await waitFor('the probe sees the GPU down', () => world.proxy.failover.lastVerdict.kind === 'waiting' && (world.proxy.store.state.phase === 'waiting'), { timeoutMs: 5_000 });
    const started = performance.now();
    // three detector windows and more, with the probe failing all along
    while (performance.now() - started < windowMs * 3 + 500) {
      assert.equal(world.proxy.store.state.epoch, 1, 'no new epoch');
      assert.equal(world.proxy.store.state.active, 'primary');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(world.proxy.hub.agents.get('gpu-1')!.lastHeartbeatAt < started, 'no heartbeat came meanwhile');
    const events = world.proxy.store.events();
    assert.ok(!events.some((e) => e.type === 'epoch' || e.type === 'fenced' || e.type === 'routed'), 'no failover step logged');
    assert.equal(existsSync(join(world.receiveState, 'epoch')), false, 'nobody fenced the standby');
    const hosts = (await (await world.proxy.api('hosts')).json()) as { hosts: { id: string; state: string }[] };
    assert.notEqual(hosts.hosts.find((h) => h.id === 'gpu-1')?.state, 'revoked', 'gpu-1 is not revoked');
    const pub = JSON.parse((await world.get('/_standby/status')).body) as { phase: string; message: string; ready: boolean };
    assert.equal(pub.phase, 'waiting');
    assert.equal(pub.ready, false, 'no backend ready: pages get the transition page, not a dead GPU');
    assert.match(pub.message, /Waiting for the GPU/);
    const admin = (await (await world.proxy.api('status')).json()) as { phase: string; waitingForGpu: boolean; verdict: { kind: string; reason: string }; backends: { probe: { failuresInARow: number; ok: boolean } | null }[] };
    assert.equal(admin.waitingForGpu, true);
    assert.ok(admin.backends[0]!.probe!.failuresInARow >= 2, "the GPU's code-server probe failed all along");
    assert.match(admin.verdict.reason, /waiting for the GPU: gpu-1's agent has not sent a heartbeat at epoch 1/);

    // the GPU's agent arrives and heartbeats: seen, durably
    const agent = await world.startAgent();
    await agent.ready(30_000);
    await waitFor('the GPU seen', () => world.proxy.store.state.gpuSeenEpoch === 1 && world.proxy.store.state.phase !== 'waiting', { timeoutMs: 10_000 });
    const logged = readFileSync(join(world.proxy.store.dir, 'events.jsonl'), 'utf8');
    assert.match(logged, /"type":"gpu-seen","epoch":1/);
    const reopened = StateStore.open(world.proxy.store.dir);
    try {
      assert.equal(reopened.state.gpuSeenEpoch, 1, 'a restarted proxy knows the GPU was seen');
    } finally {
      reopened.close();
    }
    writeFileSync(join(world.gpuDir, 'notes.txt'), 'first work');
    await agent.settled(10_000);

    // now its death (agent gone, code-server down) is a failure: failover as before
    world.killGpu();
    await waitFor('failed over', () => world.proxy.store.state.phase === 'failed_over', { timeoutMs: 15_000 });
    assert.equal(world.proxy.store.state.epoch, 2);
    assert.equal((await world.get('/whoami')).body, 'cpu');
    assert.equal(readFileSync(join(world.cpuDir, 'notes.txt'), 'utf8'), 'first work');
  } finally {
    await world.close();
  }
});

test('while waiting for the GPU, standby failover by hand still works', async () => {
  const world = await startWorld({ agent: false });
  try {
    await waitFor('waiting', () => world.proxy.store.state.phase === 'waiting', { timeoutMs: 5_000 });
    const res = await world.proxy.api('failover', { method: 'POST' });
    assert.equal(res.status, 202);
    await waitFor('failed over', () => world.proxy.store.state.phase === 'failed_over', { timeoutMs: 20_000 });
    assert.equal(readFileSync(join(world.receiveState, 'epoch'), 'utf8').trim(), '2');
    assert.equal((await world.get('/whoami')).body, 'cpu');
  } finally {
    await world.close();
  }
});
