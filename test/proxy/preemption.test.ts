// Planned failover on a preemption notice, from each kind of watcher: GCP's
// metadata server (the agent waits on it), Vast.ai's instance status (the
// proxy polls it) and the stop signal a container runtime sends. Freeze, final
// sync, fence, route: every write made before the notice is on the standby.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startFakeGcpMetadata, type FakeGcpMetadata } from '../fakes/gcp-metadata.ts';
import { startFakeVastApi, type FakeVastApi } from '../fakes/vast-api.ts';
import { heartbeatsFlowing, startWorld, type World } from '../fixtures/failover-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';

interface Writer {
  stop(): number;
  count(): number;
}

/** Writes a file every 10 ms into the GPU's workspace until stopped (a test stops it in `finally` too); returns how many were written before `stop`. */
function writer(world: World): Writer {
  let n = 0;
  const timer = setInterval(() => writeFileSync(join(world.gpuDir, `w-${String(n++).padStart(5, '0')}.txt`), `write ${n}`), 10);
  return {
    stop() {
      clearInterval(timer);
      return n;
    },
    count: () => n,
  };
}

function assertAllOnStandby(world: World, count: number): void {
  for (let i = 0; i < count; i++) {
    const name = `w-${String(i).padStart(5, '0')}.txt`;
    assert.ok(existsSync(join(world.cpuDir, name)), `${name}, written before the notice, is on the standby`);
  }
}

async function plannedFailoverDone(world: World): Promise<void> {
  await waitFor('failed over', () => world.proxy.store.state.phase === 'failed_over', { timeoutMs: 20_000 });
  const epoch = world.proxy.store.events().find((e) => e.type === 'epoch');
  assert.ok(epoch && epoch.type === 'epoch' && epoch.planned, 'a planned failover');
  assert.equal((await world.get('/whoami')).body, 'cpu');
}

test('GCP metadata says preempted: the agent reports it at once and the proxy fails over, planned, nothing lost', async () => {
  let gcp: FakeGcpMetadata | undefined;
  let world: World | undefined;
  let w: Writer | undefined;
  try {
    gcp = await startFakeGcpMetadata();
    world = await startWorld({ agentSettings: { notices: { gcpMetadata: true, gcpMetadataUrl: gcp.preemptedUrl } } });
    await waitFor('the agent waits on the metadata server', () => gcp!.requests.some((r) => r.url.includes('wait_for_change=true')), { timeoutMs: 10_000 });
    assert.ok(gcp.requests.every((r) => r.flavor === 'Google'), 'it sends Metadata-Flavor: Google');
    w = writer(world);
    await waitFor('writes under way', () => w!.count() >= 35, { timeoutMs: 10_000 });
    const before = w.count();
    gcp.preempt();
    // the agent's word freezes and takes the final pass at once; GCP stops the VM about 30 s later, which corroborates it
    await waitFor('frozen, final pass taken', () => world!.proxy.logs.some((l) => l.msg === 'final pass before the corroboration'), { timeoutMs: 10_000 });
    assert.equal(world.proxy.store.state.epoch, 1, 'nothing irreversible before the notice is corroborated');
    world.killGpu();
    await plannedFailoverDone(world);
    w.stop();
    assertAllOnStandby(world, before);
    const epoch = world.proxy.store.events().find((e) => e.type === 'epoch');
    assert.match(epoch!.reason, /gcp-metadata/);
    assert.match(epoch!.reason, /corroborated/);
  } finally {
    w?.stop();
    await world?.close();
    await gcp?.close();
  }
});

test('Vast.ai says the GPU left running: the proxy fails over, planned, nothing lost', async () => {
  let vast: FakeVastApi | undefined;
  let world: World | undefined;
  let w: Writer | undefined;
  try {
    vast = await startFakeVastApi();
    vast.setStatus(4242, 'running');
    world = await startWorld({ proxySettings: { primary: { notices: { vast: { apiUrl: vast.apiUrl, apiKey: vast.apiKey, instanceId: 4242, everyMs: 500 } } } } });
    await waitFor('the proxy polls Vast', () => vast!.requests >= 2, { timeoutMs: 10_000 });
    assert.equal(world.proxy.store.state.phase, 'normal', 'running is not a notice');
    w = writer(world);
    await waitFor('writes under way', () => w!.count() >= 35, { timeoutMs: 10_000 });
    const before = w.count();
    vast.setStatus(4242, 'stopped');
    await plannedFailoverDone(world);
    w.stop();
    assertAllOnStandby(world, before);
    assert.match(world.proxy.store.events().find((e) => e.type === 'epoch')!.reason, /vast-status/);
  } finally {
    w?.stop();
    await world?.close();
    await vast?.close();
  }
});

test('a wrong Vast key is reported once and is no notice', async () => {
  let vast: FakeVastApi | undefined;
  let world: World | undefined;
  try {
    vast = await startFakeVastApi();
    vast.setStatus(1, 'stopped');
    world = await startWorld({ agent: false, proxySettings: { primary: { notices: { vast: { apiUrl: vast.apiUrl, apiKey: 'wrong-key', instanceId: 1, everyMs: 500 } } } } });
    await waitFor('three polls', () => vast!.requests >= 3, { timeoutMs: 10_000 });
    const warnings = world.proxy.logs.filter((l) => String(l.err ?? '').includes('refused the key'));
    assert.equal(warnings.length, 1, 'said once, not per poll');
    assert.notEqual(world.proxy.store.state.phase, 'failing_over');
    assert.equal(world.proxy.store.state.epoch, 1);
  } finally {
    await world?.close();
    await vast?.close();
  }
});

test('the stop signal of a container runtime (SIGTERM, notices.stopSignal): the agent hands over before it exits', async () => {
  const world = await startWorld({ agentSettings: { notices: { stopSignal: true, stopGraceMs: 15_000 } } });
  let w: Writer | undefined;
  try {
    await heartbeatsFlowing(world);
    w = writer(world);
    await waitFor('writes under way', () => w!.count() >= 35, { timeoutMs: 10_000 });
    const before = w.count();
    // a container runtime stops the whole container: code-server too (its probe failing corroborates the notice)
    world.agent!.kill('SIGTERM');
    world.gpuServer.kill('SIGTERM');
    await plannedFailoverDone(world);
    w.stop();
    assertAllOnStandby(world, before);
    await world.agent!.exited;
    assert.match(world.agent!.logTail(), /handed over: the standby has every change/);
  } finally {
    w?.stop();
    await world.close();
  }
});
