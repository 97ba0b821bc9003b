// The failover report as a pure function of hand-built event logs: counts and
// success rate, causes (recorded, or read from an older log's reason text),
// each phase's mean and p95 from the durations the events carry, unknown (not
// zero) where an older log lacks them, the RPO at each failover, the window,
// switch backs, recovery's 0/0 and the standby's cost line; `?days=` checked.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gcpStandbySchema } from '../../config/gcp-standby.ts';
import { StandbyError } from '../../core/errors.ts';
import type { FailoverReport } from '../../protocol/admin-api.ts';
import { failoverReport, reportDays, timeStat } from '../../proxy/failover-report.ts';
import type { NewEvent, ProxyEvent } from '../../proxy/state.ts';
import { StateStore } from '../../proxy/state-store.ts';

const NOW = new Date('2026-12-05T00:00:00.000Z');
const DAY = 86_400_000;

/** A log: each event `daysAgo` before NOW (seconds apart when equal), numbered in order. */
function log(...items: [daysAgo: number, e: NewEvent][]): ProxyEvent[] {
  return items.map(([daysAgo, e], i) => ({ ...e, seq: i + 1, at: new Date(NOW.getTime() - daysAgo * DAY + i * 1000).toISOString() }) as ProxyEvent);
}

/** A failover as today's proxy logs it: the cause, and durations on its monotonic clock. */
function unplanned(epoch: number, daysAgo: number, o: { detect?: number; fence?: number; route?: number; total?: number; rpo?: number | null; kind?: 'silence' | 'connection-lost' } = {}): [number, NewEvent][] {
  return [
    [daysAgo, { type: 'epoch', epoch, planned: false, watermark: 40, pending: o.rpo === null ? 0 : 3, reason: 'agent connection lost; code-server probe failing (ECONNREFUSED)', cause: { kind: o.kind ?? 'connection-lost', probeError: 'ECONNREFUSED' }, heartbeatAgeMs: o.detect ?? 1500, oldestPendingAgeMs: o.rpo === undefined ? 250 : o.rpo, leadMs: 0.02 }],
    [daysAgo, { type: 'fenced', epoch, waitedMs: 2, killed: 0, ms: o.fence ?? 120, reason: 'fenced' }],
    [daysAgo, { type: 'routed', side: 'standby', epoch, ms: o.route ?? 0.25, totalMs: o.total ?? 1700, reason: 'closed 3 connections to the GPU' }],
  ];
}

interface Case {
  name: string;
  events: ProxyEvent[];
  days?: number;
  check(r: FailoverReport): void;
}

const cases: Case[] = [
  {
    name: 'an empty log: nothing to count, nothing invented',
    events: log([40, { type: 'started', reason: 'start' }]),
    check(r) {
      assert.deepEqual(r.failovers, { total: 0, succeeded: 0, failed: 0, inProgress: 0, drills: 0, successRate: null });
      assert.deepEqual(r.mttr.toStandby, { measured: 0, unknown: 0, meanMs: null, p95Ms: null, maxMs: null });
      assert.deepEqual(r.phases.map((p) => [p.name, p.measured, p.meanMs]), [['detection', 0, null], ['final-pass', 0, null], ['fence', 0, null], ['route', 0, null], ['switch-back', 0, null]]);
      assert.deepEqual(r.causes, []);
      assert.deepEqual(r.list, []);
    },
  },
  {
    name: "today's unplanned failover: cause, phases, MTTR and RPO from the events' own durations",
    events: log([2, { type: 'started', reason: 'start' }], [2, { type: 'gpu-seen', epoch: 1, reason: 'seen' }], [2, { type: 'phase', phase: 'suspect', reason: 'x' }], ...unplanned(2, 1)),
    check(r) {
      assert.deepEqual(r.failovers, { total: 1, succeeded: 1, failed: 0, inProgress: 0, drills: 0, successRate: 1 });
      const f = r.list[0]!;
      assert.equal(f.outcome, 'succeeded');
      assert.deepEqual(f.cause, { kind: 'connection-lost', source: null, by: null, probeError: 'ECONNREFUSED', inferred: false, label: "unplanned: the agent's connection lost, code-server down (probe: ECONNREFUSED)" });
      assert.deepEqual(f.phases, [{ name: 'detection', ms: 1500 }, { name: 'fence', ms: 120 }, { name: 'route', ms: 0.25 }]);
      assert.equal(f.toStandbyMs, 1700);
      assert.deepEqual(f.rpo, { rpoMs: 250, unsyncedChanges: 3, watermark: 40, heartbeatAgeMs: 1500 });
      assert.deepEqual(r.causes, [{ kind: 'connection-lost', label: "unplanned: the agent's connection lost, code-server down", count: 1 }]);
      assert.equal(r.mttr.toStandby.meanMs, 1700);
      assert.equal(r.phases.find((p) => p.name === 'detection')!.meanMs, 1500);
      assert.equal(r.phases.find((p) => p.name === 'final-pass')!.measured, 0, 'a planned phase does not apply');
      assert.equal(r.rpo.meanMs, 250);
    },
  },
  {
    name: 'nothing outstanding at the last heartbeat: an RPO of 0, not unknown',
    events: log(...unplanned(2, 1, { rpo: null })),
    check(r) {
      assert.deepEqual(r.list[0]!.rpo, { rpoMs: 0, unsyncedChanges: 0, watermark: 40, heartbeatAgeMs: 1500 });
      assert.deepEqual([r.rpo.measured, r.rpo.meanMs], [1, 0]);
    },
  },
  {
    name: 'an older log (no cause, no durations, routed ms null): causes read from the reason, every duration unknown, never zero',
    events: log(
      [3, { type: 'epoch', epoch: 2, planned: false, watermark: 41, pending: 3, reason: 'no heartbeat for 3012 ms; code-server probe failing (ETIMEDOUT)' }],
      [3, { type: 'fenced', epoch: 2, waitedMs: 5, killed: 0, reason: 'fenced in 130 ms' }],
      [3, { type: 'routed', side: 'standby', epoch: 2, ms: null, reason: 'closed 0 connections to the GPU' }],
      [2, { type: 'switch-back', epoch: 3, reason: 'back' }],
      [2, { type: 'fenced', epoch: 3, waitedMs: 1, killed: 0, reason: 'fenced' }],
      [2, { type: 'routed', side: 'primary', epoch: 3, ms: null, reason: 'closed' }],
      [1, { type: 'epoch', epoch: 4, planned: true, watermark: 50, pending: 0, reason: 'preemption notice (gcp-metadata), corroborated: the agent\'s connection closed' }],
      [1, { type: 'fenced', epoch: 4, waitedMs: 1, killed: 0, reason: 'fenced' }],
      [1, { type: 'routed', side: 'standby', epoch: 4, ms: null, reason: 'closed' }],
    ),
    check(r) {
      assert.deepEqual(r.failovers, { total: 2, succeeded: 2, failed: 0, inProgress: 0, drills: 0, successRate: 1 });
      const [a, b] = r.list;
      assert.deepEqual(a!.cause, { kind: 'silence', source: null, by: null, probeError: 'ETIMEDOUT', inferred: true, label: 'unplanned: heartbeats stopped, code-server down (probe: ETIMEDOUT)' });
      assert.deepEqual(a!.phases, [{ name: 'detection', ms: null }, { name: 'fence', ms: null }, { name: 'route', ms: null }, { name: 'switch-back', ms: null }]);
      assert.equal(a!.toStandbyMs, null);
      assert.deepEqual(a!.rpo, { rpoMs: null, unsyncedChanges: 3, watermark: 41, heartbeatAgeMs: null }, '3 changes above the watermark, their age not recorded');
      assert.deepEqual(b!.cause, { kind: 'preemption', source: 'gcp-metadata', by: 'agent', probeError: null, inferred: true, label: "preemption notice (gcp-metadata, the agent's, corroborated)" });
      assert.equal(b!.rpo!.rpoMs, 0, 'nothing above the watermark: 0 even in an older log');
      for (const p of r.phases.filter((x) => x.name !== 'final-pass')) assert.deepEqual([p.name, p.measured, p.meanMs], [p.name, 0, null], `${p.name}: no figure invented`);
      assert.deepEqual([r.phases[0]!.unknown, r.phases[2]!.unknown, r.phases[4]!.unknown], [1, 2, 1]);
      assert.deepEqual(r.mttr.toStandby, { measured: 0, unknown: 2, meanMs: null, p95Ms: null, maxMs: null });
      assert.deepEqual(r.switchBacks, { total: 1, done: 1, aborted: 0 });
    },
  },
  {
    name: 'planned failovers: the freeze and final pass instead of detection; manual and the proxy\'s own notice',
    events: log(
      [5, { type: 'epoch', epoch: 2, planned: true, watermark: 9, pending: 0, reason: 'manual failover (API)', cause: { kind: 'manual' }, heartbeatAgeMs: 180, oldestPendingAgeMs: null, leadMs: 420 }],
      [5, { type: 'fenced', epoch: 2, waitedMs: 1, killed: 0, ms: 90, reason: 'fenced' }],
      [5, { type: 'routed', side: 'standby', epoch: 2, ms: 0.5, totalMs: 530, reason: 'closed' }],
      [4, { type: 'switch-back', epoch: 3, reason: 'back' }],
      [4, { type: 'fenced', epoch: 3, waitedMs: 1, killed: 0, ms: 80, reason: 'fenced' }],
      [4, { type: 'routed', side: 'primary', epoch: 3, ms: 0.4, totalMs: 2400, reason: 'closed' }],
      [3, { type: 'epoch', epoch: 4, planned: true, watermark: 9, pending: 0, reason: 'preemption notice (vast-status)', cause: { kind: 'preemption', source: 'vast-status', by: 'proxy' }, heartbeatAgeMs: 100, oldestPendingAgeMs: null, leadMs: 620 }],
      [3, { type: 'fenced', epoch: 4, waitedMs: 1, killed: 0, ms: 110, reason: 'fenced' }],
      [3, { type: 'routed', side: 'standby', epoch: 4, ms: 0.3, totalMs: 740, reason: 'closed' }],
    ),
    check(r) {
      assert.deepEqual(r.list.map((f) => f.phases.map((p) => p.name)), [['final-pass', 'fence', 'route', 'switch-back'], ['final-pass', 'fence', 'route']]);
      const phase = (n: string) => r.phases.find((p) => p.name === n)!;
      assert.deepEqual([phase('final-pass').meanMs, phase('final-pass').p95Ms, phase('fence').meanMs, phase('detection').measured], [520, 620, 100, 0]);
      assert.deepEqual([phase('switch-back').meanMs, phase('switch-back').measured], [2400, 1]);
      assert.deepEqual([r.mttr.toStandby.meanMs, r.mttr.toStandby.maxMs], [635, 740]);
      assert.deepEqual(r.causes.map((c) => [c.label, c.count]), [['manual (an admin asked)', 1], ["preemption notice (vast-status, the proxy's own watcher)", 1]]);
    },
  },
  {
    name: 'failed and in progress: an aborted failover fails, one still fencing is neither; the success rate counts the ended ones',
    events: log(
      ...unplanned(2, 6),
      [5, { type: 'switch-back', epoch: 3, reason: 'back' }],
      [5, { type: 'aborted', epoch: 3, side: 'standby', reason: 'the standby serves again' }],
      [4, { type: 'switch-back', epoch: 4, reason: 'back' }],
      [4, { type: 'fenced', epoch: 4, waitedMs: 1, killed: 0, ms: 80, reason: 'fenced' }],
      [4, { type: 'routed', side: 'primary', epoch: 4, ms: 0.4, totalMs: 2000, reason: 'closed' }],
      [3, { type: 'epoch', epoch: 5, planned: false, watermark: 60, pending: 1, reason: 'x', cause: { kind: 'silence', probeError: null }, heartbeatAgeMs: 3100, oldestPendingAgeMs: 900, leadMs: 0.01 }],
      [3, { type: 'aborted', epoch: 5, reason: 'aborted by the admin (API): the fence had not completed' }],
      [1, { type: 'epoch', epoch: 6, planned: false, watermark: 70, pending: 2, reason: 'x', cause: { kind: 'silence', probeError: null }, heartbeatAgeMs: 3000, oldestPendingAgeMs: 400, leadMs: 0.01 }],
    ),
    check(r) {
      assert.deepEqual(r.failovers, { total: 3, succeeded: 1, failed: 1, inProgress: 1, drills: 0, successRate: 0.5 });
      assert.deepEqual(r.list.map((f) => [f.epoch, f.outcome, f.failure]), [[2, 'succeeded', null], [5, 'failed', 'aborted before its fence completed'], [6, 'in-progress', null]]);
      assert.equal(r.list[1]!.toStandbyMs, null);
      assert.deepEqual(r.switchBacks, { total: 2, done: 1, aborted: 1 });
      assert.deepEqual(r.mttr.toStandby.measured, 1, 'only a failover that reached the standby has a time to it');
      assert.deepEqual([r.rpo.measured, r.rpo.maxMs], [3, 900]);
      assert.deepEqual(r.causes[0], { kind: 'silence', label: 'unplanned: heartbeats stopped, code-server down', count: 2 });
    },
  },
  {
    name: 'a proxy restart between the new epoch and the route: succeeded, its whole time unknown',
    events: log(
      [1, { type: 'epoch', epoch: 2, planned: false, watermark: 40, pending: 3, reason: 'x', cause: { kind: 'silence', probeError: null }, heartbeatAgeMs: 3000, oldestPendingAgeMs: 100, leadMs: 0.01 }],
      [1, { type: 'started', reason: 'start' }],
      [1, { type: 'fenced', epoch: 2, waitedMs: 1, killed: 0, ms: 70, reason: 'fenced' }],
      [1, { type: 'routed', side: 'standby', epoch: 2, ms: 0.2, reason: 'closed' }],
    ),
    check(r) {
      const f = r.list[0]!;
      assert.deepEqual([f.outcome, f.resumed, f.toStandbyMs], ['succeeded', true, null]);
      assert.deepEqual(r.mttr.toStandby, { measured: 0, unknown: 1, meanMs: null, p95Ms: null, maxMs: null });
    },
  },
  {
    name: 'a new epoch while one is open: the open one failed (superseded)',
    events: log(
      [2, { type: 'epoch', epoch: 2, planned: false, watermark: 1, pending: 0, reason: 'no heartbeat for 3000 ms; code-server probe failing (no answer)' }],
      ...unplanned(3, 1),
    ),
    check(r) {
      assert.deepEqual(r.list.map((f) => [f.outcome, f.failure]), [['failed', 'superseded: a new failover (epoch 3) began before it ended'], ['succeeded', null]]);
      assert.equal(r.list[0]!.cause.probeError, null, '"no answer" is no error code');
    },
  },
  {
    name: 'the window: failovers that began before it are left out, also when they ended inside it',
    days: 7,
    events: log(...unplanned(2, 30), ...unplanned(3, 8).map(([d, e]): [number, NewEvent] => [e.type === 'epoch' ? d : 6.5, e]), ...unplanned(4, 6.9)),
    check(r) {
      assert.deepEqual(r.list.map((f) => f.epoch), [4]);
      assert.deepEqual(r.window, { days: 7, from: '2026-11-28T00:00:00.000Z', to: '2026-12-05T00:00:00.000Z' });
    },
  },
  {
    name: 'mean and p95 over 20 failovers (nearest rank)',
    events: log(...Array.from({ length: 20 }, (_, i) => unplanned(i + 2, 10 - i * 0.1, { detect: (i + 1) * 100, total: (i + 1) * 100 + 200 })).flat()),
    check(r) {
      const detection = r.phases[0]!;
      assert.deepEqual([detection.measured, detection.meanMs, detection.p95Ms, detection.maxMs], [20, 1050, 1900, 2000]);
      assert.deepEqual([r.mttr.toStandby.meanMs, r.mttr.toStandby.p95Ms], [1250, 2100]);
    },
  },
  {
    name: 'a drill is counted like any failover and marked',
    events: log(
      [1, { type: 'epoch', epoch: 2, planned: true, watermark: 1, pending: 0, reason: 'drill', cause: { kind: 'drill' }, heartbeatAgeMs: 100, oldestPendingAgeMs: null, leadMs: 300 }],
      [1, { type: 'fenced', epoch: 2, waitedMs: 1, killed: 0, ms: 50, reason: 'fenced' }],
      [1, { type: 'routed', side: 'standby', epoch: 2, ms: 0.2, totalMs: 400, reason: 'closed' }],
    ),
    check(r) {
      assert.deepEqual([r.failovers.total, r.failovers.drills, r.list[0]!.drill, r.causes[0]!.label], [1, 1, true, 'drill']);
    },
  },
];

/** A recovery as proxy/recovery.ts logs it after failover `epoch`: one try that failed on the price cap, a second that switched back. */
function recovered(epoch: number, daysAgo: number): [number, NewEvent][] {
  const base = { epoch, provider: 'vast', name: `standby-ws-e${epoch}` };
  const host = { id: `standby-ws-e${epoch}-a2`, url: 'http://10.0.0.9:8080', provider: 'vast', providerId: '9000001', ssh: { host: '10.0.0.9', port: 40022, user: 'root' }, workspace: '/workspace', knownHosts: [], pricePerHour: 0.42 };
  return [
    [daysAgo, { type: 'recovery', step: 'started', attempt: 1, ...base, elapsedMs: 1, reason: 'try 1' }],
    [daysAgo, { type: 'recovery', step: 'search', attempt: 1, ...base, ms: 900, elapsedMs: 901, error: 'no offer under $0.50/h in TH, VN, JP, EU (cheapest seen: $0.62/h in US)', reason: 'no GPU' }],
    [daysAgo, { type: 'recovery', step: 'failed', attempt: 1, ...base, elapsedMs: 902, error: 'no offer under $0.50/h in TH, VN, JP, EU (cheapest seen: $0.62/h in US)', reason: 'failed' }],
    [daysAgo, { type: 'recovery', step: 'started', attempt: 2, ...base, elapsedMs: 30_902, reason: 'try 2' }],
    [daysAgo, { type: 'recovery', step: 'search', attempt: 2, ...base, ms: 400, elapsedMs: 31_302, offer: { id: '77', pricePerHour: 0.42, gpuName: 'RTX 4090', location: 'Bangkok, TH' }, reason: 'offer' }],
    [daysAgo, { type: 'recovery', step: 'intent', attempt: 2, ...base, elapsedMs: 31_303, reason: 'creating' }],
    [daysAgo, { type: 'recovery', step: 'created', attempt: 2, ...base, ms: 150_000, elapsedMs: 181_303, host, reason: 'runs' }],
    [daysAgo, { type: 'recovery', step: 'ssh-ready', attempt: 2, ...base, ms: 20_000, elapsedMs: 201_303, host, reason: 'ssh' }],
    [daysAgo, { type: 'recovery', step: 'agent-ready', attempt: 2, ...base, ms: 60_000, elapsedMs: 261_303, host, reason: 'agent' }],
    [daysAgo, { type: 'recovery', step: 'restore', attempt: 2, ...base, elapsedMs: 261_304, host, reason: 'restore' }],
    [daysAgo, { type: 'recovery', step: 'restored', attempt: 2, ...base, ms: 300_000, elapsedMs: 561_304, host, reason: 'restored' }],
    [daysAgo, { type: 'switch-back', epoch: epoch + 1, gpu: { id: host.id, url: host.url, provider: 'vast', providerId: '9000001' }, reason: 'switch back' }],
    [daysAgo, { type: 'fenced', epoch: epoch + 1, waitedMs: 1, killed: 0, ms: 80, reason: 'fenced' }],
    [daysAgo, { type: 'routed', side: 'primary', epoch: epoch + 1, ms: 0.3, totalMs: 2_500, reason: 'closed 1' }],
    [daysAgo, { type: 'recovery', step: 'done', attempt: 2, ...base, elapsedMs: 563_900, host, reason: 'done' }],
    [daysAgo, { type: 'recovery', step: 'old-gpu', attempt: 2, ...base, elapsedMs: 570_000, conflicts: CONFLICTS, reason: "gpu-1's unsent changes: 2 files (30 bytes) copied to /ws.conflicts/20261205T090000Z-gpu-1 on the standby, 1 deletions listed; gpu-1 destroyed (vast 8000001)" }],
  ];
}

const CONFLICTS = { folder: '/ws.conflicts/20261205T090000Z-gpu-1', files: 2, bytes: 30, deletions: 1, paths: ['a.txt', 'b/c.txt', 'gone.txt (deleted here)'], complete: true, error: null };

test('report: a recovery after a failover: its phases, tries, the price-cap failure, GPUs provisioned and data restored, MTTR to the new GPU', () => {
  const r = failoverReport(log([2, { type: 'started', reason: 'start' }], ...unplanned(2, 1, { total: 1700 }), ...recovered(2, 1), ...unplanned(4, 0.5)), { now: NOW, days: 30, recoveryConfigured: true });
  const [first, second] = r.list;
  assert.deepEqual(first!.recovery, {
    outcome: 'done', attempts: 2, newGpu: 'standby-ws-e2-a2', provisioned: true, restored: true, error: 'no offer under $0.50/h in TH, VN, JP, EU (cheapest seen: $0.62/h in US)',
    oldGpu: "gpu-1's unsent changes: 2 files (30 bytes) copied to /ws.conflicts/20261205T090000Z-gpu-1 on the standby, 1 deletions listed; gpu-1 destroyed (vast 8000001)",
    conflicts: CONFLICTS,
  });
  assert.deepEqual(first!.phases.map((p) => [p.name, p.ms]), [['detection', 1500], ['fence', 120], ['route', 0.25], ['gpu-search', 400], ['provisioning', 150_000], ['ssh-ready', 20_000], ['agent-ready', 60_000], ['restore', 300_000], ['switch-back', 2_500]]);
  assert.equal(first!.toNewGpuMs, 1700 + 563_900);
  assert.equal(second!.recovery, null, 'no recovery ran after the second failover (yet)');
  assert.deepEqual(r.recovery, { configured: true, note: null, gpusProvisioned: { done: 1, of: 1 }, dataRestored: { done: 1, of: 1 } });
  assert.equal(r.mttr.toNewGpu.meanMs, 565_600);
  assert.equal(r.phases.find((p) => p.name === 'provisioning')?.meanMs, 150_000);
});

for (const c of cases) {
  test(`report: ${c.name}`, () => {
    const r = failoverReport(c.events, { now: NOW, days: c.days ?? 30 });
    c.check(r);
    // recovery is not built: 0 of 0, said so, never a figure
    assert.deepEqual(r.recovery, { configured: false, note: r.recovery.note, gpusProvisioned: { done: 0, of: 0 }, dataRestored: { done: 0, of: 0 } });
    assert.match(r.recovery.note!, /recovery not configured/);
    assert.deepEqual([r.mttr.toNewGpu.measured, r.mttr.toNewGpu.meanMs], [0, null]);
    assert.equal(r.standbyCost.known, false);
  });
}

test('report: the standby cost line only for a gcp standby, from its machine, disk and spot setting', () => {
  const none = failoverReport([], { now: NOW, days: 30 });
  assert.ok(!none.standbyCost.known && /no estimate: the proxy does not provision the standby on GCP/.test(none.standbyCost.reason));
  const gcp = failoverReport([], { now: NOW, days: 30, gcpStandby: gcpStandbySchema.parse({}) });
  assert.ok(gcp.standbyCost.known);
  assert.equal(gcp.standbyCost.monthly, 19.16, 'spot e2-medium with 100 GB pd-balanced (provision-gcp-cost.test.ts)');
  const onDemand = failoverReport([], { now: NOW, days: 30, gcpStandby: gcpStandbySchema.parse({ spot: false, diskGb: 50 }) });
  assert.ok(onDemand.standbyCost.known && onDemand.standbyCost.summary.startsWith('$33.11/month (on-demand e2-medium'));
});

test('report: ?days= is a whole number from 1 to 3650 (default 30), anything else a clear 400', () => {
  assert.equal(reportDays(null), 30);
  assert.equal(reportDays('7'), 7);
  assert.equal(reportDays('3650'), 3650);
  for (const bad of ['0', '-1', '1.5', 'abc', '3651', '', '1e3', ' 7', '99999999999']) {
    assert.throws(() => reportDays(bad), (err: unknown) => err instanceof StandbyError && err.code === 'STANDBY_ERR_BAD_REQUEST' && err.status === 400 && /days: expected a whole number of days from 1 to 3650/.test(err.message), bad);
  }
});

test('report: timeStat counts null as unknown, never as zero', () => {
  assert.deepEqual(timeStat([null, 10, null, 30]), { measured: 2, unknown: 2, meanMs: 20, p95Ms: 30, maxMs: 30 });
});

test("report: the store's history is the whole log, beyond the 1000 events it keeps in memory", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-report-history-'));
  // a log a long-running proxy wrote: 1,100 phase flaps, then a failover
  const flaps = Array.from({ length: 1_100 }, (_, i): [number, NewEvent] => [0.5, { type: 'phase', phase: i % 2 ? 'suspect' : 'normal', reason: `flap ${i}` }]);
  const written = log(...flaps, [0.4, { type: 'epoch', epoch: 2, planned: true, watermark: 1, pending: 0, reason: 'manual failover (API)', cause: { kind: 'manual' }, leadMs: 5 }]);
  writeFileSync(join(dir, 'events.jsonl'), written.map((e) => JSON.stringify(e) + '\n').join(''), { mode: 0o600 });
  const store = StateStore.open(dir);
  try {
    assert.equal(store.events(2_000).length, 1_000);
    const history = await store.history();
    assert.equal(history.length, 1_101);
    assert.deepEqual(history.map((e) => e.seq), Array.from({ length: 1_101 }, (_, i) => i + 1));
    assert.equal(failoverReport(history, { now: NOW, days: 1 }).failovers.inProgress, 1);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
