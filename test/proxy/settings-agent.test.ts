// Settings applied live through the proxy to a real agent (its own process,
// syncing over a real sshd to the standby's receiver): a PATCH of the sync
// delay reaches the agent in its grant, its status and the proxy's settings
// answer show the value in force, and its next pass waits by it; held mass
// deletions confirmed through the proxy; autoFailover off: a dead GPU is
// reported, not failed over from, and a manual failover still works.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { LiveSettingsAnswer, ProxyConfirmDeletesAnswer } from '../../protocol/admin-api.ts';
import type { SyncStatus } from '../../protocol/agent-status.ts';
import { heartbeatsFlowing, startWorld, type World } from '../fixtures/failover-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const json = { 'content-type': 'application/json' };

describe('sync settings pushed to the serving agent', () => {
  let world: World;
  before(async () => {
    world = await startWorld();
    await heartbeatsFlowing(world, { normal: true });
  });
  after(async () => {
    await world?.close();
  });
  const agentStatus = async () => (await world.agent!.status()) as unknown as SyncStatus;

  test('a PATCH of the delay: the agent applies it without a restart, both statuses show it, the next pass waits by it', async () => {
    const own = (await agentStatus()).settings!;
    assert.deepEqual(own, { delayMs: 250, maxDelayMs: 1_000, exclude: [], pushed: false }, "agent.json's to begin with");
    const res = await world.proxy.api('settings', { method: 'PATCH', headers: json, body: JSON.stringify({ agentSync: { delayMs: 2_000, maxDelayMs: 8_000 } }) });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    await waitFor("the agent's status shows the pushed delay", async () => (await agentStatus()).settings?.delayMs === 2_000, { timeoutMs: 10_000 });
    assert.deepEqual((await agentStatus()).settings, { delayMs: 2_000, maxDelayMs: 8_000, exclude: [], pushed: true });
    const answer = await waitFor("the proxy's settings answer shows what the agent applied", async () => {
      const a = (await (await world.proxy.api('settings')).json()) as LiveSettingsAnswer;
      return a.agent?.applied.delayMs === 2_000 ? a : undefined;
    }, { timeoutMs: 10_000 });
    assert.deepEqual(answer.agent, { hostId: 'gpu-1', applied: { delayMs: 2_000, maxDelayMs: 8_000, exclude: [] } });

    await world.agent!.settled(10_000, { quietMs: 300 });
    const passesBefore = (await agentStatus()).passes;
    const wroteAt = performance.now();
    writeFileSync(join(world.gpuDir, 'after-patch.txt'), 'waits for the new delay');
    // the pass's start, from the agent's answer: its end's age and its duration (asked before the answer: never later than the truth)
    const startedAt = await waitFor('the next pass', async () => {
      const askedAt = performance.now();
      const s = await agentStatus();
      return s.passes > passesBefore && s.lastPassAgeMs !== null && s.passDurationMs.last !== null ? askedAt - s.lastPassAgeMs - s.passDurationMs.last : undefined;
    }, { timeoutMs: 15_000, everyMs: 50 });
    const waited = startedAt - wroteAt;
    assert.ok(waited >= 1_800, `the pass began ${Math.round(waited)} ms after the write: the pushed 2000 ms quiet delay (agent.json's is 250)`);
    assert.ok(waited < 8_000 + 5_000, `the pass began ${Math.round(waited)} ms after the write: within the pushed maxDelayMs and some load`);

    // null: the proxy pushes nothing, the agent is back on agent.json's
    const back = await world.proxy.api('settings', { method: 'PATCH', headers: json, body: JSON.stringify({ agentSync: { delayMs: null, maxDelayMs: null } }) });
    assert.equal(back.status, 200);
    await back.body?.cancel();
    await waitFor("agent.json's delay again", async () => (await agentStatus()).settings?.pushed === false, { timeoutMs: 10_000 });
    assert.deepEqual((await agentStatus()).settings, own);
  });

  test('held mass deletions confirmed through the proxy: the agent applies them', async () => {
    mkdirSync(join(world.gpuDir, 'proj'));
    for (let i = 0; i < 200; i++) writeFileSync(join(world.gpuDir, 'proj', `f-${i}.txt`), `file ${i}`);
    await world.agent!.settled(15_000, { quietMs: 300 });
    assert.equal(readdirSync(join(world.cpuDir, 'proj')).length, 200);
    rmSync(join(world.gpuDir, 'proj'), { recursive: true });
    await waitFor('the deletions held', async () => (await agentStatus()).held, { timeoutMs: 15_000 });
    assert.equal(readdirSync(join(world.cpuDir, 'proj')).length, 200, 'nothing deleted on the standby yet');
    const res = await world.proxy.api('sync/confirm-deletes', { method: 'POST' });
    assert.equal(res.status, 200);
    const a = (await res.json()) as ProxyConfirmDeletesAnswer;
    assert.equal(a.hostId, 'gpu-1');
    assert.ok(a.deletions >= 200, `deletions ${a.deletions}`);
    await waitFor('the deletions applied on the standby', () => !existsSync(join(world.cpuDir, 'proj')), { timeoutMs: 15_000 });
    await waitFor('nothing held', async () => (await agentStatus()).held === null, { timeoutMs: 10_000 });
  });
});

test('autoFailover off: a dead GPU is reported, not failed over from; a manual failover still works', async () => {
  const world = await startWorld();
  try {
    await heartbeatsFlowing(world, { normal: true });
    const res = await world.proxy.api('settings', { method: 'PATCH', headers: json, body: JSON.stringify({ autoFailover: false }) });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    world.killGpu();
    type Status = { phase: string; active: string; epoch: number; verdict: { kind: string; reason: string } };
    const status = async () => (await (await world.proxy.api('status')).json()) as Status;
    const reported = await waitFor('the failure reported', async () => {
      const s = await status();
      return s.verdict.kind === 'failed' ? s : undefined;
    }, { timeoutMs: 10_000 });
    assert.equal(reported.phase, 'suspect');
    assert.match(reported.verdict.reason, /code-server probe failing/);
    // three detection windows (1.5 s each) later: still no failover
    const until = performance.now() + 4_500;
    while (performance.now() < until) {
      const s = world.proxy.store.state;
      assert.deepEqual([s.active, s.epoch, s.phase], ['primary', 1, 'suspect'], 'no failover by itself');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(world.proxy.logs.some((l) => String(l['msg']).includes('automatic failover is off')), 'the log says why nothing happens');
    const manual = await world.proxy.api('failover', { method: 'POST' });
    assert.equal(manual.status, 202);
    await manual.body?.cancel();
    await waitFor('the standby served', async () => (await world.get('/whoami', 500)).body === 'cpu', { timeoutMs: 20_000 });
    assert.equal(world.proxy.store.state.epoch, 2);
  } finally {
    await world.close();
  }
});
