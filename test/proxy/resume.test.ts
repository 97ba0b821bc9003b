// The resume command on the proxy's side: the grant carries resume: true only
// to a recovery's new GPU once switched back to it (route.ts, hand-built
// states); the new GPU's heartbeats become durable `resume` events, each once,
// also across a restart, and only from the GPU in service (resume-events.ts,
// a real store); the failover report shows them per failover (hand-built
// events) and `standby report` prints them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { humanReport } from '../../cli/report.ts';
import type { Heartbeat, ResumeState } from '../../protocol/messages.ts';
import { failoverReport } from '../../proxy/failover-report.ts';
import { ResumeEvents } from '../../proxy/resume-events.ts';
import { Route } from '../../proxy/route.ts';
import type { Backend } from '../../proxy/router.ts';
import { INITIAL_STATE, type NewEvent, type ProxyEvent, type ProxyState, type RecoveryHost, type RecoveryStep, type Side } from '../../proxy/state.ts';
import { StateStore } from '../../proxy/state-store.ts';

const NEW = 'standby-ws-e2-a1';
const HOST: RecoveryHost = { id: NEW, url: 'http://127.0.0.1:9', provider: 'local', providerId: 'p1', ssh: { host: '127.0.0.1', port: 2222, user: 'root' }, workspace: '/workspace', knownHosts: [], pricePerHour: null };

/** The route over a hand-built state; the GPU in service is state.gpu (as the daemon's backends follow it), else gpu-1. */
function grantOf(s: Partial<ProxyState>, hostId: string) {
  const state: ProxyState = { ...INITIAL_STATE, ...s };
  const backends: Record<Side, Backend> = {
    primary: { side: 'primary', id: state.gpu?.id ?? 'gpu-1', url: 'http://127.0.0.1:1' },
    standby: { side: 'standby', id: 'cpu-1', url: 'http://127.0.0.1:2' },
  };
  return new Route({ state: () => state, machine: { frozen: false, lastVerdict: { kind: 'healthy' }, lastFenceError: null }, probes: { primary: { last: undefined }, standby: { last: undefined } }, backends }).grant(hostId);
}

function recoveryAt(step: RecoveryStep, host: RecoveryHost | null = HOST) {
  return { epoch: 2, attempt: 1, step, provider: 'local', name: 'standby-ws-e2', host, error: null };
}

const switchedBack: Partial<ProxyState> = { epoch: 3, active: 'primary', phase: 'normal', gpuSeenEpoch: 3, gpu: { id: NEW, url: HOST.url, provider: 'local', providerId: 'p1' } };

test('grant: resume: true only to the recovery\'s new GPU once it is switched back to (restored with the route moved, done, old-gpu)', () => {
  for (const step of ['restored', 'done', 'old-gpu'] as const) {
    const g = grantOf({ ...switchedBack, recovery: recoveryAt(step) }, NEW);
    assert.deepEqual([g.role, g.epoch, g.resume], ['primary', 3, true], step);
  }
  const none: [string, Partial<ProxyState>, string][] = [
    ['the configured GPU, no recovery ever', { epoch: 1, gpuSeenEpoch: 1 }, 'gpu-1'],
    ['the configured GPU after a switch back to it (no new GPU)', { epoch: 3, gpuSeenEpoch: 3, recovery: recoveryAt('gave-up', null) }, 'gpu-1'],
    ['the new GPU, restored but not switched back to (the standby serves)', { epoch: 2, active: 'standby', phase: 'recovering', recovery: recoveryAt('restored') }, NEW],
    ['the new GPU, the switch back logged but not routed yet', { ...switchedBack, phase: 'switching_back', active: 'standby', recovery: recoveryAt('restored') }, NEW],
    ['the new GPU failed over from in turn (a later epoch)', { ...switchedBack, epoch: 4, active: 'standby', phase: 'failed_over', recovery: recoveryAt('done') }, NEW],
    ['the standby\'s agent', { ...switchedBack, recovery: recoveryAt('done') }, 'cpu-1'],
    ['the GPU in service, not the recovery\'s host', { ...switchedBack, recovery: { ...recoveryAt('done'), host: { ...HOST, id: 'other' } } }, NEW],
  ];
  for (const [name, s, hostId] of none) assert.equal(grantOf(s, hostId).resume, undefined, name);
});

function beat(hostId: string, seq: number, resume: ResumeState | null): Heartbeat {
  return {
    type: 'heartbeat', hostId, epoch: 3, seq,
    sync: { watermark: 0, lastSeq: 0, pending: 0, oldestPendingAgeMs: null, lastPassAgeMs: null, ready: true, held: false, lastError: null, target: null, progress: null },
    codeServer: { healthy: true, checkedAgeMs: 1 }, preemption: null, frozen: false, resume,
  };
}

const running: ResumeState = { epoch: 3, state: 'running', pid: 4242, exitCode: null, signal: null, startedAgeMs: 10, endedAgeMs: null, error: null };
const exited: ResumeState = { ...running, state: 'exited', exitCode: 3, endedAgeMs: 5, startedAgeMs: 900 };

test('heartbeats become resume events: started and exited once each, across a restart, only from the GPU in service', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-resume-events-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let store = StateStore.open(dir);
  t.after(() => store.close());
  let gpu = NEW;
  let events = new ResumeEvents(store, () => gpu);
  store.append({ type: 'switch-back', epoch: 3, gpu: { id: NEW, url: HOST.url }, reason: 'test' });
  const before = store.state;
  const resumeEvents = () => store.events(1000).filter((e) => e.type === 'resume');
  events.heartbeat(NEW, beat(NEW, 1, null));
  events.heartbeat('gpu-1', beat('gpu-1', 1, exited)); // not the GPU in service: not heard
  events.heartbeat(NEW, beat(NEW, 2, running));
  events.heartbeat(NEW, beat(NEW, 3, running));
  assert.deepEqual(resumeEvents().map((e) => e.type === 'resume' && [e.hostId, e.epoch, e.state]), [[NEW, 3, 'started']]);
  events.heartbeat(NEW, beat(NEW, 4, exited));
  events.heartbeat(NEW, beat(NEW, 5, exited));
  events.heartbeat(NEW, beat(NEW, 6, { ...exited, epoch: 99 })); // an epoch the proxy never reached
  const logged = resumeEvents();
  assert.equal(logged.length, 2);
  assert.deepEqual(logged.map((e) => e.type === 'resume' && [e.state, e.exitCode ?? null, e.signal ?? null, e.error ?? null]), [['started', null, null, null], ['exited', 3, null, null]]);
  // the state is what it was (the sequence aside): the events are for the report
  assert.deepEqual({ ...store.state, seq: 0 }, { ...before, seq: 0 });

  // a restarted proxy hears the same heartbeats again: nothing logged twice
  store.close();
  store = StateStore.open(dir);
  events = new ResumeEvents(store, () => gpu);
  events.heartbeat(NEW, beat(NEW, 1, exited));
  assert.equal(resumeEvents().length, 2);

  // failed to start: one event, exited with its error, never started
  gpu = 'gpu-9';
  events.heartbeat('gpu-9', beat('gpu-9', 1, { epoch: 3, state: 'failed-to-start', exitCode: null, signal: null, startedAgeMs: 5, endedAgeMs: 5, error: 'did not start: spawn EACCES' }));
  const last = resumeEvents().at(-1);
  assert.ok(last?.type === 'resume');
  assert.deepEqual([resumeEvents().length, last.hostId, last.state, last.error], [3, 'gpu-9', 'exited', 'did not start: spawn EACCES']);
});

const NOW = new Date('2026-12-05T00:00:00.000Z');

function log(items: NewEvent[]): ProxyEvent[] {
  return items.map((e, i) => ({ ...e, seq: i + 1, at: new Date(NOW.getTime() - 3_600_000 + i * 1000).toISOString() }) as ProxyEvent);
}

/** A failover at epoch 2, a recovery to NEW, the switch back at 3, then `tail`. */
function story(tail: NewEvent[]): ProxyEvent[] {
  const base = { epoch: 2, attempt: 1, provider: 'local', name: 'standby-ws-e2' };
  return log([
    { type: 'epoch', epoch: 2, planned: false, watermark: 4, pending: 0, cause: { kind: 'silence', probeError: null }, heartbeatAgeMs: 1500, oldestPendingAgeMs: null, reason: 'silence' },
    { type: 'fenced', epoch: 2, waitedMs: 1, killed: 0, ms: 50, reason: 'fenced' },
    { type: 'routed', side: 'standby', epoch: 2, ms: 0.2, totalMs: 1600, reason: 'routed' },
    { type: 'recovery', step: 'started', ...base, reason: 'try 1' },
    { type: 'recovery', step: 'created', ...base, ms: 100, host: HOST, reason: 'runs' },
    { type: 'recovery', step: 'restored', ...base, ms: 100, host: HOST, reason: 'restored' },
    { type: 'switch-back', epoch: 3, gpu: { id: NEW, url: HOST.url }, reason: 'switch back' },
    { type: 'routed', side: 'primary', epoch: 3, ms: 0.2, totalMs: 900, reason: 'routed' },
    { type: 'recovery', step: 'done', ...base, host: HOST, reason: 'done' },
    ...tail,
  ]);
}

test('report: the resume command per failover (started, its exit; did not start; none reported), and standby report prints it', () => {
  const ran = failoverReport(story([
    { type: 'resume', hostId: NEW, epoch: 3, state: 'started', reason: 'started' },
    { type: 'resume', hostId: NEW, epoch: 3, state: 'exited', exitCode: 3, signal: null, error: null, reason: 'exited' },
  ]), { now: NOW, days: 30, recoveryConfigured: true });
  assert.deepEqual(ran.list[0]!.resume, { hostId: NEW, epoch: 3, started: true, exited: true, exitCode: 3, signal: null, error: null });
  assert.match(humanReport(ran), /resume\n.*exit 3$/ms);

  const still = failoverReport(story([{ type: 'resume', hostId: NEW, epoch: 3, state: 'started', reason: 'started' }]), { now: NOW, days: 30, recoveryConfigured: true });
  assert.deepEqual(still.list[0]!.resume, { hostId: NEW, epoch: 3, started: true, exited: false, exitCode: null, signal: null, error: null });
  assert.match(humanReport(still), /running$/m);

  const failed = failoverReport(story([{ type: 'resume', hostId: NEW, epoch: 3, state: 'exited', exitCode: null, signal: null, error: 'did not start: spawn EACCES', reason: 'exited' }]), { now: NOW, days: 30, recoveryConfigured: true });
  assert.deepEqual(failed.list[0]!.resume, { hostId: NEW, epoch: 3, started: false, exited: true, exitCode: null, signal: null, error: 'did not start: spawn EACCES' });
  assert.match(humanReport(failed), /did not start \(did not start: spawn EACCES\)$/m);

  const none = failoverReport(story([{ type: 'resume', hostId: 'someone-else', epoch: 3, state: 'started', reason: 'x' }]), { now: NOW, days: 30, recoveryConfigured: true });
  assert.equal(none.list[0]!.resume, null, 'a host no recovery made is no failover\'s resume');
});
