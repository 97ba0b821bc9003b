// The detector's rules, one per behaviour, without timers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { doubted, judge, phaseOf, type Doubt, type Signals } from '../../proxy/detector.ts';

const base: Signals = { silenceMs: 0, connectionLost: false, windowMs: 1500, probeFailures: 0, probeError: null, preempted: false };
const at = (o: Partial<Signals>) => judge({ ...base, ...o });

test('heartbeats flowing: healthy, whatever the probe says', () => {
  assert.equal(at({ silenceMs: 1499, probeFailures: 5, probeError: 'ECONNREFUSED' }).kind, 'healthy');
});

test('silence for the window with code-server answering: degraded, no failover', () => {
  const v = at({ silenceMs: 1500 });
  assert.equal(v.kind, 'degraded');
  assert.equal(phaseOf(v), 'degraded');
});

test('silence and one probe timeout: suspect, not yet failed', () => {
  const v = at({ silenceMs: 2000, probeFailures: 1, probeError: 'no answer within 400 ms' });
  assert.equal(v.kind, 'suspect');
  assert.equal(phaseOf(v), 'suspect');
});

test('silence and two failed probes: failed, unplanned', () => {
  const v = at({ silenceMs: 2000, probeFailures: 2, probeError: 'no answer within 400 ms' });
  assert.deepEqual({ kind: v.kind, planned: v.kind === 'failed' && v.planned }, { kind: 'failed', planned: false });
});

test('a refused probe is evidence enough: one is failed', () => {
  assert.equal(at({ silenceMs: 1600, probeFailures: 1, probeError: 'ECONNREFUSED' }).kind, 'failed');
});

test('a lost connection counts as missing heartbeats before the window ends', () => {
  assert.equal(at({ silenceMs: 10, connectionLost: true, probeFailures: 1, probeError: 'ECONNREFUSED' }).kind, 'failed');
  assert.equal(at({ silenceMs: 10, connectionLost: true }).kind, 'degraded');
});

test('a preemption notice is a planned failover even with everything alive', () => {
  const v = at({ preempted: true });
  assert.ok(v.kind === 'failed' && v.planned);
});

test("the editor's doubt comes before any verdict, and not from a busy agent whose code-server answers", () => {
  const calm: Doubt = { silenceMs: 100, connectionLost: false, heartbeatIntervalMs: 500, probeFailures: 0, probeError: null, answeredSinceHeartbeat: false };
  const cases: { name: string; signals: Partial<Doubt>; want: boolean }[] = [
    { name: 'heartbeats on time', signals: {}, want: false },
    { name: "the agent's connection closed (a SIGKILL)", signals: { connectionLost: true }, want: true },
    { name: 'a probe refused, heartbeats on time: nobody listens (a refused forward probes at once)', signals: { probeFailures: 1, probeError: 'ECONNREFUSED' }, want: true },
    { name: 'a probe reset', signals: { probeFailures: 1, probeError: 'ECONNRESET' }, want: true },
    // regression: code-server serving a reload of the workbench missed two probes in a row, and the reloaded page flashed "Switching to the CPU standby..."
    { name: 'probes unanswered, heartbeats on time: a busy code-server', signals: { probeFailures: 2, probeError: 'no answer within 400 ms' }, want: false },
    { name: 'probes answered 503, heartbeats on time', signals: { probeFailures: 3, probeError: 'HTTP 503' }, want: false },
    { name: 'probes unanswered and a whole heartbeat missing', signals: { silenceMs: 1000, probeFailures: 1, probeError: 'no answer within 400 ms' }, want: true },
    { name: 'a whole heartbeat missing, code-server answered once since, then stopped', signals: { silenceMs: 1000, answeredSinceHeartbeat: true, probeFailures: 1, probeError: 'no answer within 400 ms' }, want: true },
    { name: 'a whole heartbeat missing, code-server silent since', signals: { silenceMs: 1000 }, want: true },
    { name: 'a whole heartbeat missing, code-server answering since: load, not death', signals: { silenceMs: 1000, answeredSinceHeartbeat: true }, want: false },
    { name: 'late, but not a whole heartbeat', signals: { silenceMs: 900 }, want: false },
  ];
  for (const c of cases) assert.equal(doubted({ ...calm, ...c.signals }), c.want, c.name);
});
