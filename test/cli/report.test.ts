// `standby report` over a real failover: the GPU's agent and code-server
// SIGKILLed in the failover world (real sshd, receiver, agent process, proxy),
// the proxy fails over, and the CLI, run as a child process, reads the report
// from the proxy's admin API: one failover, succeeded, its cause, detection,
// fence and route measured, the RPO from the last heartbeat.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FailoverReport } from '../../protocol/admin-api.ts';
import { standby } from '../fixtures/cli-run.ts';
import { heartbeatsFlowing, startWorld } from '../fixtures/failover-world.ts';
import { ADMIN_TOKEN } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('the GPU killed: standby report shows one failover, succeeded, its cause, its phases measured and the RPO', async () => {
  const world = await startWorld();
  try {
    writeFileSync(join(world.gpuDir, 'notes.txt'), 'written on the GPU');
    const settled = await world.agent!.settled(10_000);
    await heartbeatsFlowing(world, { normal: true });
    // the RPO comes from the last heartbeat the proxy got: wait for one that carries the write's acknowledgement
    // (a kill within a heartbeat interval of the pass found the proxy still holding the one before: watermark 0)
    await waitFor('a heartbeat with the write acknowledged', () => (world.proxy.hub.agents.get('gpu-1')?.last?.sync.watermark ?? -1) >= settled.lastSeq, { timeoutMs: 10_000 });
    const flags = ['--proxy', world.proxy.url, '--token', ADMIN_TOKEN];

    const before = await standby(['report', '--json', ...flags]);
    assert.equal(before.code, 0, before.stderr);
    assert.equal((JSON.parse(before.stdout) as FailoverReport).failovers.total, 0, 'no failover yet');

    world.killGpu();
    await waitFor('the standby served', () => world.proxy.store.state.phase === 'failed_over', { timeoutMs: 15_000, everyMs: 20 });

    const r = await standby(['report', '--json', '--days', '30', ...flags]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as FailoverReport;
    assert.deepEqual(report.failovers, { total: 1, succeeded: 1, failed: 0, inProgress: 0, drills: 0, successRate: 1 });
    const f = report.list[0]!;
    assert.equal(f.epoch, 2);
    assert.equal(f.planned, false);
    // the agent's socket closed with the process (positive evidence), and the proxy's probe found nobody on the port
    assert.equal(f.cause.kind, 'connection-lost');
    // refused, or reset when a probe was in flight at the kill: either way nobody answers on the port
    assert.ok(f.cause.probeError === 'ECONNREFUSED' || f.cause.probeError === 'ECONNRESET', String(f.cause.probeError));
    assert.equal(f.cause.inferred, false);
    const ms = Object.fromEntries(f.phases.map((p) => [p.name, p.ms]));
    assert.deepEqual(Object.keys(ms), ['detection', 'fence', 'route']);
    for (const [name, v] of Object.entries(ms)) assert.ok(typeof v === 'number' && v > 0, `${name}: ${v} ms`);
    assert.ok(f.toStandbyMs !== null && f.toStandbyMs >= ms['detection']! + ms['fence']!, `to the standby ${f.toStandbyMs} ms`);
    assert.ok(f.toStandbyMs < 15_000);
    assert.ok(f.rpo !== null, 'the RPO, from the last heartbeat');
    assert.ok(typeof f.rpo.rpoMs === 'number' && f.rpo.rpoMs >= 0 && f.rpo.watermark >= 1, JSON.stringify(f.rpo));
    assert.ok(f.rpo.heartbeatAgeMs !== null && f.rpo.heartbeatAgeMs === ms['detection'], "detection starts at the last heartbeat's arrival");
    assert.deepEqual(report.causes, [{ kind: 'connection-lost', label: "unplanned: the agent's connection lost, code-server down", count: 1 }]);
    assert.deepEqual([report.mttr.toStandby.measured, report.mttr.toStandby.meanMs], [1, f.toStandbyMs]);
    assert.deepEqual(report.recovery.gpusProvisioned, { done: 0, of: 0 });

    // for people: the counts, the phase table and the failover's row
    const human = await standby(['report', ...flags]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^failovers {4}1 in the last 30 days: 1 succeeded, 0 failed; success rate 100\.0 %$/m);
    assert.match(human.stdout, /^fence +\d/m);
    assert.match(human.stdout, /^2 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +unplanned: the agent's connection lost, code-server down \(probe: (ECONNREFUSED|ECONNRESET)\) +succeeded /m);
    assert.match(human.stdout, /GPUs provisioned 0\/0, data restored 0\/0 \(recovery not configured/);

    const bad = await standby(['report', '--days', '0', ...flags]);
    assert.equal(bad.code, 78, 'a bad --days is a usage error');
    assert.match(bad.stderr, /days: expected a whole number of days from 1 to 3650, got "0"/);
  } finally {
    await world.close();
  }
});
