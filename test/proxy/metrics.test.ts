// /_standby/metrics read as Prometheus reads it (the text parsed), from a real
// proxy fed real heartbeats over its agent WebSocket and a real failover:
// the sync lag histogram, pending changes, heartbeat age, failovers and their
// phases by cause, the phase and recovery-step gauges, recovery failures and
// whether a standby copy is reachable. Label values come from fixed lists.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { CAUSES, PHASES, RECOVERY_STEPS } from '../../proxy/metrics.ts';
import { AGENT_PATH, type Grant, type Heartbeat } from '../../protocol/messages.ts';
import { parsePrometheusText, sampleValue, type Sample } from '../fixtures/prometheus-text.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

function heartbeat(seq: number, epoch: number, sync: Partial<Heartbeat['sync']> = {}): Heartbeat {
  return {
    type: 'heartbeat',
    hostId: 'gpu-1',
    epoch,
    seq,
    sync: { watermark: 0, lastSeq: 0, pending: 0, oldestPendingAgeMs: null, lastPassAgeMs: null, ready: true, held: false, lastError: null, target: null, progress: null, ...sync },
    codeServer: { healthy: true, checkedAgeMs: 10 },
    preemption: null,
    frozen: false,
    resume: null,
  };
}

export async function scrape(url: string): Promise<Sample[]> {
  const r = await fetch(`${url}/_standby/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5_000) });
  assert.equal(r.status, 200);
  return parsePrometheusText(await r.text());
}

describe('/_standby/metrics follows heartbeats, failovers and recoveries', () => {
  let proxy: TestProxy;
  let gpu: WorkspaceServer;
  let cpu: WorkspaceServer;
  let ws: WebSocket | undefined;
  const grants: Grant[] = [];
  let seq = 0;
  let epoch = 0;
  // the proxy drops a heartbeat whose numbers go back: each one carries the last numbers on
  let numbers = { watermark: 0, lastSeq: 0 };

  before(async () => {
    [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
    proxy = await startTestProxy({
      primaryUrl: gpu.url,
      standbyUrl: cpu.url,
      fence: () => Promise.resolve({ waitedMs: 0, killed: 0 }),
      // no failover unless the test asks for one; the standby probed often, so its answer shows at once
      settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100, passiveProbeIntervalMs: 50 } },
    });
    ws = new WebSocket(`${proxy.url.replace('http', 'ws')}${AGENT_PATH}`, { headers: { authorization: `Bearer ${AGENT_TOKEN}` }, handshakeTimeout: 5_000 });
    ws.on('message', (d) => grants.push(JSON.parse(d.toString()) as Grant));
    await new Promise<void>((resolve, reject) => {
      ws!.once('open', () => resolve());
      ws!.once('error', reject);
    });
  });
  after(async () => {
    ws?.terminate();
    await proxy?.close();
    await Promise.all([gpu?.close(), cpu?.close()]);
  });

  /** Sends a heartbeat and waits for its grant (the proxy has recorded it); takes the granted epoch for the next. */
  async function beat(sync: Partial<Heartbeat['sync']> = {}): Promise<void> {
    seq++;
    numbers = { watermark: sync.watermark ?? numbers.watermark, lastSeq: sync.lastSeq ?? numbers.lastSeq };
    ws!.send(JSON.stringify(heartbeat(seq, epoch, { ...sync, ...numbers })));
    const g = await waitFor(`the grant for heartbeat ${seq}`, () => grants.find((x) => x.heartbeatSeq === seq), { timeoutMs: 5_000 });
    epoch = g.epoch;
  }

  test('sync lag is a histogram of what each heartbeat said; pending and heartbeat age are gauges', async () => {
    await beat(); // granted epoch 1
    const before = await scrape(proxy.url);
    const count0 = sampleValue(before, 'standby_heartbeat_sync_lag_seconds_count', { host: 'gpu-1' }) ?? 0;
    const sum0 = sampleValue(before, 'standby_heartbeat_sync_lag_seconds_sum', { host: 'gpu-1' }) ?? 0;
    const under1 = sampleValue(before, 'standby_heartbeat_sync_lag_seconds_bucket', { host: 'gpu-1', le: '1' }) ?? 0;
    const under10 = sampleValue(before, 'standby_heartbeat_sync_lag_seconds_bucket', { host: 'gpu-1', le: '10' }) ?? 0;
    await beat({ watermark: 10, lastSeq: 12, pending: 2, oldestPendingAgeMs: 400 });
    await beat({ watermark: 10, lastSeq: 30, pending: 20, oldestPendingAgeMs: 12_500 });
    const m = await scrape(proxy.url);
    assert.equal(sampleValue(m, 'standby_heartbeat_sync_lag_seconds_count', { host: 'gpu-1' }), count0 + 2);
    assert.ok(Math.abs(sampleValue(m, 'standby_heartbeat_sync_lag_seconds_sum', { host: 'gpu-1' })! - (sum0 + 12.9)) < 1e-9);
    assert.equal(sampleValue(m, 'standby_heartbeat_sync_lag_seconds_bucket', { host: 'gpu-1', le: '1' }), under1 + 1, '0.4 s falls under 1 s');
    assert.equal(sampleValue(m, 'standby_heartbeat_sync_lag_seconds_bucket', { host: 'gpu-1', le: '10' }), under10 + 1, '12.5 s does not fall under 10 s');
    assert.equal(sampleValue(m, 'standby_sync_lag_seconds', { host: 'gpu-1' }), 12.5, 'the gauge says the last heartbeat');
    assert.equal(sampleValue(m, 'standby_sync_pending_changes', { host: 'gpu-1' }), 20);
    const age = sampleValue(m, 'standby_heartbeat_age_seconds', { host: 'gpu-1' })!;
    assert.ok(age >= 0 && age < 5, `heartbeat age ${age} s just after a heartbeat`);
    assert.equal(sampleValue(m, 'standby_phase', { phase: 'normal' }), 1);
    assert.equal(m.filter((s) => s.name === 'standby_phase' && s.value === 1).length, 1, 'one phase at a time');
  });

  test('a standby copy is reachable while its code-server answers, the GPU agent passes to it without error, and its machine is not down', async () => {
    await waitFor('the standby copy reachable', async () => sampleValue(await scrape(proxy.url), 'standby_copy_reachable') === 1);
    await beat({ lastError: 'rsync exited 255: ssh: connect to host standby port 22: Connection refused' });
    assert.equal(sampleValue(await scrape(proxy.url), 'standby_copy_reachable'), 0, "the agent's last pass failed");
    await beat();
    assert.equal(sampleValue(await scrape(proxy.url), 'standby_copy_reachable'), 1);
    proxy.store.append({ type: 'standby', kind: 'down', id: 'cpu-1', detail: 'PREEMPTED', reason: 'test: the provider says the standby is preempted' });
    assert.equal(sampleValue(await scrape(proxy.url), 'standby_copy_reachable'), 0, 'its machine is down');
    proxy.store.append({ type: 'standby', kind: 'up', id: 'cpu-1', detail: 'RUNNING', downMs: 10, windowMs: 20, recreated: false, reason: 'test: up again' });
    assert.equal(sampleValue(await scrape(proxy.url), 'standby_copy_reachable'), 1);
  });

  test('a failover counts by cause and times its phases by cause; the standby serving leaves no standby copy', async () => {
    const m0 = await scrape(proxy.url);
    for (const cause of CAUSES) assert.equal(sampleValue(m0, 'standby_failovers_total', { cause, planned: 'true' }), 0, `${cause} starts at 0`);
    // the GPU agent goes first: a connected agent that never answers the final pass would hold the failover for 10 s
    ws!.terminate();
    await waitFor('the GPU agent gone', () => !proxy.hub.agents.get('gpu-1')!.connected, { timeoutMs: 5_000 });
    assert.equal((await proxy.api('failover', { method: 'POST' })).status, 202);
    await waitFor('failed over', () => proxy.store.state.phase === 'failed_over', { timeoutMs: 15_000 });
    const m = await scrape(proxy.url);
    assert.equal(sampleValue(m, 'standby_failovers_total', { cause: 'manual', planned: 'true' }), 1);
    assert.equal(sampleValue(m, 'standby_failovers_total', { cause: 'silence', planned: 'false' }), 0);
    for (const phase of ['final-pass', 'fence', 'route']) {
      assert.equal(sampleValue(m, 'standby_failover_phase_duration_seconds_count', { phase, cause: 'manual' }), 1, `${phase} timed once`);
    }
    assert.equal(sampleValue(m, 'standby_failover_phase_duration_seconds_count', { phase: 'detection', cause: 'manual' }), undefined, 'a planned failover has no detection');
    assert.equal(sampleValue(m, 'standby_phase', { phase: 'failed_over' }), 1);
    assert.equal(sampleValue(m, 'standby_active_backend', { side: 'standby' }), 1);
    assert.equal(sampleValue(m, 'standby_copy_reachable'), 0);
    assert.ok((sampleValue(m, 'standby_phase_duration_seconds_count', { phase: 'failing_over' }) ?? 0) >= 1);
  });

  test('recovery: a gauge per step (1 for the current), its phases by the failover\'s cause, and its failures counted', async () => {
    const m0 = await scrape(proxy.url);
    for (const step of RECOVERY_STEPS) assert.equal(sampleValue(m0, 'standby_recovery_step', { step }), 0, 'no recovery yet');
    const base = { type: 'recovery' as const, epoch: proxy.store.state.epoch, attempt: 1, provider: 'local', name: 'standby-gpu-test' };
    proxy.store.append({ ...base, step: 'started', reason: 'test: recovery started' });
    proxy.store.append({ ...base, step: 'search', ms: 1_500, offer: { id: 'o1', pricePerHour: 0.5, gpuName: 'RTX 4090', location: 'here' }, reason: 'test: found an offer' });
    let m = await scrape(proxy.url);
    assert.equal(sampleValue(m, 'standby_recovery_step', { step: 'search' }), 1);
    assert.equal(m.filter((s) => s.name === 'standby_recovery_step' && s.value === 1).length, 1);
    assert.equal(sampleValue(m, 'standby_failover_phase_duration_seconds_sum', { phase: 'gpu-search', cause: 'manual' }), 1.5);
    assert.equal(sampleValue(m, 'standby_phase', { phase: 'recovering' }), 1);
    proxy.store.append({ ...base, step: 'failed', error: 'the provider refused: out of capacity', reason: 'test: the try failed' });
    proxy.store.append({ ...base, attempt: 2, step: 'gave-up', error: 'no try left', reason: 'test: gave up' });
    m = await scrape(proxy.url);
    assert.equal(sampleValue(m, 'standby_recovery_failures_total', { step: 'failed' }), 1);
    assert.equal(sampleValue(m, 'standby_recovery_failures_total', { step: 'gave-up' }), 1);
    assert.equal(sampleValue(m, 'standby_recovery_step', { step: 'gave-up' }), 1);
    assert.equal(sampleValue(m, 'standby_phase', { phase: 'failed_over' }), 1);
  });

  test('every cause, phase and step label is a word from a fixed list: never free text', async () => {
    const m = await scrape(proxy.url);
    const phases = new Set<string>(['detection', 'final-pass', 'fence', 'route', 'gpu-search', 'provisioning', 'ssh-ready', 'agent-ready', 'restore', 'switch-back']);
    for (const s of m) {
      if (s.labels['cause'] !== undefined) assert.ok((CAUSES as readonly string[]).includes(s.labels['cause']), `${s.name} cause=${s.labels['cause']}`);
      if (s.name.startsWith('standby_failover_phase_duration_seconds')) assert.ok(phases.has(s.labels['phase']!), `${s.name} phase=${s.labels['phase']}`);
      if (s.name === 'standby_phase') assert.ok((PHASES as readonly string[]).includes(s.labels['phase']!));
      if (s.labels['step'] !== undefined) assert.ok((RECOVERY_STEPS as readonly string[]).includes(s.labels['step']));
      for (const v of Object.values(s.labels)) assert.ok(v.length <= 200 && !/\s/.test(v), `${s.name}: a label value ${JSON.stringify(v)}`);
    }
  });
});

describe('/_standby/metrics after a restart', () => {
  let gpu: WorkspaceServer;
  let cpu: WorkspaceServer;
  let proxy: TestProxy | undefined;
  const stateDir = mkdtempSync(join(tmpdir(), 'standby-metrics-restart-'));
  const start = () => startTestProxy({
    primaryUrl: gpu.url,
    standbyUrl: cpu.url,
    stateDir,
    fence: () => Promise.resolve({ waitedMs: 0, killed: 0 }),
    settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } },
  });
  before(async () => {
    [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
  });
  after(async () => {
    await proxy?.close();
    await Promise.all([gpu?.close(), cpu?.close()]);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("counters start again at 0, the phase and step gauges come from the durable state, and a recovery's phases keep the failover's cause", async () => {
    proxy = await start();
    assert.equal((await proxy.api('failover', { method: 'POST' })).status, 202);
    await waitFor('failed over', () => proxy!.store.state.phase === 'failed_over', { timeoutMs: 15_000 });
    const base = { type: 'recovery' as const, epoch: proxy.store.state.epoch, attempt: 1, provider: 'local', name: 'standby-gpu-test' };
    proxy.store.append({ ...base, step: 'started', reason: 'test: recovery started' });
    await proxy.close();
    proxy = undefined;

    proxy = await start();
    let m = await scrape(proxy.url);
    assert.equal(sampleValue(m, 'standby_failovers_total', { cause: 'manual', planned: 'true' }), 0, 'what the log held before the start is not counted again');
    assert.equal(sampleValue(m, 'standby_phase', { phase: 'recovering' }), 1);
    assert.equal(sampleValue(m, 'standby_recovery_step', { step: 'started' }), 1);
    assert.equal(sampleValue(m, 'standby_failover_phase_duration_seconds_count', { phase: 'fence', cause: 'manual' }), undefined, 'nothing observed twice');
    proxy.store.append({ ...base, step: 'search', ms: 800, offer: { id: 'o1', pricePerHour: 0.5, gpuName: 'RTX 4090', location: 'here' }, reason: 'test: found an offer' });
    m = await scrape(proxy.url);
    assert.equal(sampleValue(m, 'standby_failover_phase_duration_seconds_sum', { phase: 'gpu-search', cause: 'manual' }), 0.8, 'the failover it recovers from was read back from the log');
    assert.equal(sampleValue(m, 'standby_recovery_step', { step: 'search' }), 1);
  });
});
