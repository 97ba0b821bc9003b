// The failover state machine on its own, with stand-ins for what it drives
// (the agent hub, the router, the probes, the fence) and a real state store in
// a temporary folder: each detector verdict, unplanned and planned failovers, a
// fence that fails and is retried, a restart mid-fence, abort, switch back, and
// that every transition is appended, logged and told to the listeners once.
// Silence is a heartbeat time set in the past, not waited for; the proxy-level
// tests (failover.test.ts, switch-back.test.ts, ...) run the same with real processes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, test } from 'node:test';
import { pino } from 'pino';
import type { Heartbeat, Synced } from '../../protocol/messages.ts';
import type { AgentRecord } from '../../proxy/agent-hub.ts';
import { Failover, type FailoverDeps, type FenceOutcome, type FencePurpose, type Transition } from '../../proxy/failover.ts';
import type { ProbeResult } from '../../proxy/prober.ts';
import type { FailoverCause, Side } from '../../proxy/state.ts';
import { StateStore } from '../../proxy/state-store.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const GPU = 'gpu-1';
const WINDOW_MS = 1_000;

function heartbeat(o: Partial<Heartbeat> = {}): Heartbeat {
  return {
    type: 'heartbeat',
    hostId: GPU,
    epoch: 1,
    seq: 1,
    sync: { watermark: 40, lastSeq: 43, pending: 3, oldestPendingAgeMs: 120, lastPassAgeMs: 300, ready: true, held: false, lastError: null, target: null, progress: null },
    codeServer: { healthy: true, checkedAgeMs: 100 },
    preemption: null,
    frozen: false,
    resume: null,
    ...o,
  };
}

function probe(ok: boolean, error: string | null = ok ? null : 'ECONNREFUSED'): ProbeResult {
  return { ok, at: performance.now(), ms: 1, error, fromTraffic: false };
}

/** A fence's answer to come: the test settles it. */
interface PendingFence {
  epoch: number;
  purpose: FencePurpose;
  succeed(): void;
  fail(message: string): void;
}

function probeOf(): { failures: number; last: ProbeResult | undefined; probe(): Promise<ProbeResult> } {
  const side = {
    failures: 0,
    last: undefined as ProbeResult | undefined,
    probe: async (): Promise<ProbeResult> => side.last ?? { ok: false, at: performance.now(), ms: 0, error: 'not probed yet', fromTraffic: false },
  };
  return side;
}

/** Everything the state machine drives, observable; a real StateStore underneath. */
class Rig {
  readonly dir: string;
  store: StateStore;
  readonly agent: AgentRecord = { hostId: GPU, connected: false, lastHeartbeatAt: performance.now(), disconnectedAt: undefined, last: undefined, heartbeats: 0, rejected: 0, dropped: 0, grantedEpoch: undefined, publicKey: undefined, fenced: undefined };
  /** `probe()` (a probe asked for now) answers with the side's last result: a test sets what the backend would say */
  readonly probes: Record<Side, { failures: number; last: ProbeResult | undefined; probe(): Promise<ProbeResult> }> = { primary: probeOf(), standby: probeOf() };
  readonly closed: Side[] = [];
  readonly regrants: string[] = [];
  readonly syncRequests: number[] = [];
  /** every fence asked for, in order */
  readonly fences: { epoch: number; purpose: FencePurpose }[] = [];
  /** how the next fences answer: 'ok', 'fail', or 'hold' (the test settles it through `held`) */
  fencePlan: ('ok' | 'fail' | 'hold')[] = [];
  held: PendingFence | undefined;
  /** the agent's answer to a final-pass request; a promise to hold the pass open */
  syncAnswer: () => Promise<Synced | undefined> = async () => ({ type: 'synced', id: 'x', watermark: 43, ok: true, error: null });
  verify: FailoverDeps['verifyPrimary'];
  readonly transitions: Transition[] = [];
  readonly logs: Record<string, unknown>[] = [];
  failover!: Failover;
  #stops: (() => void)[] = [];

  constructor(dir?: string) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'standby-failover-machine-'));
    this.store = StateStore.open(this.dir);
  }

  build(o: Partial<FailoverDeps> = {}): Failover {
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const line of chunk.toString().split('\n')) if (line) this.logs.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const fence = (epoch: number, purpose: FencePurpose): Promise<FenceOutcome> => {
      this.fences.push({ epoch, purpose });
      const how = this.fencePlan.shift() ?? 'ok';
      if (how === 'ok') return Promise.resolve({ waitedMs: 3, killed: 1 });
      if (how === 'fail') return Promise.reject(new Error(`the standby refused the fence at epoch ${epoch}`));
      return new Promise((resolve, reject) => {
        this.held = { epoch, purpose, succeed: () => resolve({ waitedMs: 3, killed: 0 }), fail: (m) => reject(new Error(m)) };
      });
    };
    this.failover = new Failover({
      store: this.store,
      hub: {
        agents: new Map([[GPU, this.agent]]),
        requestSync: (_id, timeoutMs) => {
          this.syncRequests.push(timeoutMs);
          return this.syncAnswer();
        },
        regrant: (id) => void this.regrants.push(id),
        requestFreeze: async () => undefined,
      },
      router: {
        closeAll: (side) => {
          this.closed.push(side);
          return 0;
        },
      },
      probes: this.probes,
      primaryId: () => GPU,
      windowMs: WINDOW_MS,
      fence,
      fenceRetryMs: 10,
      finalSyncMs: 2_000,
      verifyPrimary: this.verify,
      log: pino({ level: 'info' }, sink),
      ...o,
    });
    this.#stops.push(this.failover.onTransition((t) => this.transitions.push(t)));
    return this.failover;
  }

  /** The GPU's agent heartbeats now. */
  heartbeating(hb: Partial<Heartbeat> = {}): void {
    this.agent.connected = true;
    this.agent.heartbeats++;
    this.agent.lastHeartbeatAt = performance.now();
    this.agent.last = heartbeat({ epoch: this.store.state.epoch, ...hb });
  }

  /** The GPU's agent has been silent for `ms`. */
  silentFor(ms: number): void {
    this.agent.lastHeartbeatAt = performance.now() - ms;
  }

  /** The GPU was seen (a heartbeat at this epoch): from now on its silence means a failure. */
  seen(): void {
    this.heartbeating();
    this.failover.evaluate();
    assert.equal(this.store.state.gpuSeenEpoch, this.store.state.epoch, 'the GPU counts as seen');
    this.transitions.length = 0;
  }

  eventTypes(): string[] {
    return this.store.events().map((e) => e.type);
  }

  close(): void {
    for (const stop of this.#stops) stop();
    this.failover?.close();
    this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const rigs: Rig[] = [];
function rig(dir?: string): Rig {
  const r = new Rig(dir);
  rigs.push(r);
  return r;
}
afterEach(async () => {
  for (const r of rigs.splice(0)) {
    r.held?.fail('test over');
    r.failover?.close();
    await r.failover?.idle();
    r.close();
  }
});

/** An unplanned failover's pre-conditions: the GPU seen, then silent for the window and its code-server refusing. */
function gpuDies(r: Rig): void {
  r.silentFor(WINDOW_MS + 10);
  r.probes.primary.failures = 1;
  r.probes.primary.last = probe(false, 'ECONNREFUSED');
}

/** The GPU seen, then dead: the machine built and failed over to the standby. */
async function failedOver(r: Rig): Promise<Failover> {
  const failover = r.build();
  r.seen();
  gpuDies(r);
  failover.evaluate();
  await failover.idle();
  return failover;
}

/** The GPU back: its agent heartbeating and its code-server answering. */
function gpuBack(r: Rig): void {
  r.heartbeating();
  r.probes.primary.failures = 0;
  r.probes.primary.last = probe(true);
}

const VERDICTS: { name: string; set(r: Rig): void; verdict: string; phase: string }[] = [
  { name: 'heartbeats flowing: healthy, normal', set: (r) => r.heartbeating(), verdict: 'healthy', phase: 'normal' },
  { name: 'silent for the window, code-server answering: degraded', set: (r) => r.silentFor(WINDOW_MS + 10), verdict: 'degraded', phase: 'degraded' },
  {
    name: 'silent for the window, one probe timed out: suspect',
    set: (r) => {
      r.silentFor(WINDOW_MS + 10);
      r.probes.primary.failures = 1;
      r.probes.primary.last = probe(false, 'no answer within 400 ms');
    },
    verdict: 'suspect',
    phase: 'suspect',
  },
  {
    name: 'the connection closed, code-server answering: degraded before the window ends',
    set: (r) => {
      r.agent.connected = false;
      r.agent.disconnectedAt = performance.now();
    },
    verdict: 'degraded',
    phase: 'degraded',
  },
];

for (const row of VERDICTS) {
  test(`verdict: ${row.name}`, () => {
    const r = rig();
    const failover = r.build();
    r.seen();
    row.set(r);
    failover.evaluate();
    assert.equal(failover.lastVerdict.kind, row.verdict);
    assert.equal(r.store.state.phase, row.phase);
    assert.equal(r.store.state.epoch, 1, 'no new epoch');
    assert.deepEqual(r.fences, [], 'nothing fenced');
    if (row.phase === 'normal') {
      assert.deepEqual(r.transitions, [], 'no transition while nothing changes');
    } else {
      assert.deepEqual(r.transitions.map((t) => [t.from.phase, t.to.phase, t.event?.type]), [['normal', row.phase, 'phase']]);
      // evaluated again with the same signals: no second event, no second notification
      failover.evaluate();
      assert.equal(r.transitions.length, 1);
      assert.equal(r.eventTypes().filter((e) => e === 'phase').length, 1);
      // heartbeats again: back to normal, one transition
      r.heartbeating();
      failover.evaluate();
      assert.equal(r.store.state.phase, 'normal');
      assert.deepEqual(r.transitions.map((t) => t.to.phase), [row.phase, 'normal']);
    }
  });
}

test('a first run waits for its GPU: no failover while its agent never heartbeated, then its first heartbeat is durable', () => {
  const r = rig();
  const failover = r.build();
  r.probes.primary.failures = 5;
  r.probes.primary.last = probe(false);
  failover.evaluate();
  assert.equal(failover.lastVerdict.kind, 'waiting');
  assert.equal(r.store.state.phase, 'waiting');
  assert.deepEqual(r.fences, []);
  gpuBack(r);
  failover.evaluate();
  assert.equal(r.store.state.phase, 'normal');
  assert.equal(r.store.state.gpuSeenEpoch, 1);
  assert.deepEqual(r.eventTypes(), ['phase', 'gpu-seen']);
  assert.deepEqual(r.transitions.map((t) => [t.to.phase, t.event?.type]), [['waiting', 'phase'], ['normal', 'gpu-seen']]);
});

test('unplanned failover: new epoch, fence at it, then the route; no final pass; each step told once', async () => {
  const r = rig();
  const failover = r.build();
  r.seen();
  r.heartbeating(); // the watermark the GPU last reported goes into the epoch event
  gpuDies(r);
  failover.evaluate();
  await failover.idle();
  const s = r.store.state;
  assert.deepEqual({ epoch: s.epoch, fencedEpoch: s.fencedEpoch, active: s.active, phase: s.phase, failovers: s.failovers }, { epoch: 2, fencedEpoch: 2, active: 'standby', phase: 'failed_over', failovers: 1 });
  assert.deepEqual({ watermark: s.watermarkAtFailover, pending: s.pendingAtFailover }, { watermark: 40, pending: 3 });
  assert.deepEqual(r.fences, [{ epoch: 2, purpose: 'failover' }]);
  assert.deepEqual(r.syncRequests, [], 'an unplanned failover asks for no final pass');
  assert.deepEqual(r.eventTypes().slice(-3), ['epoch', 'fenced', 'routed']);
  assert.deepEqual(r.transitions.map((t) => [t.event?.type, t.to.phase, t.frozen]), [['epoch', 'failing_over', false], ['fenced', 'failing_over', false], ['routed', 'failed_over', false]]);
  const epoch = r.transitions[0]!.event;
  assert.ok(epoch?.type === 'epoch' && epoch.planned === false);
  assert.deepEqual(r.regrants, [GPU], 'the old GPU hears "fenced" once the epoch is logged');
  assert.deepEqual(r.closed, ['primary'], "the GPU's connections closed when the route moved");
  assert.ok(failover.lastTiming && failover.lastTiming.finalSyncMs === null && failover.lastTiming.detectMs !== null);
  assert.ok(r.logs.some((l) => l.msg === 'new epoch: fencing the standby under it' && l.event === 'epoch' && l.to === 'failing_over'), 'the transition is logged');
});

test('planned failover (asked for): frozen through the final pass, then epoch, fence, route, unfrozen', async () => {
  const r = rig();
  let release!: (s: Synced) => void;
  r.syncAnswer = () => new Promise((resolve) => (release = resolve));
  const failover = r.build();
  r.seen();
  assert.deepEqual(failover.manual('drill'), { accepted: true, why: 'drill' });
  await waitFor('the final pass asked for', () => r.syncRequests.length === 1, { timeoutMs: 2_000 });
  assert.equal(failover.frozen, true, 'frozen while the final pass runs');
  assert.deepEqual(r.closed, ['primary'], "the GPU's browser sockets closed by the freeze");
  assert.equal(r.store.state.epoch, 1, 'no epoch before the final pass');
  assert.deepEqual(failover.manual('again'), { accepted: false, why: 'a failover is already under way' });
  release({ type: 'synced', id: 'x', watermark: 43, ok: true, error: null });
  await failover.idle();
  assert.equal(failover.frozen, false);
  assert.deepEqual({ epoch: r.store.state.epoch, active: r.store.state.active, phase: r.store.state.phase }, { epoch: 2, active: 'standby', phase: 'failed_over' });
  assert.deepEqual(r.transitions.map((t) => [t.event?.type ?? 'freeze', t.frozen]), [['freeze', true], ['epoch', true], ['fenced', true], ['routed', false]]);
  const epoch = r.transitions[1]!.event;
  assert.ok(epoch?.type === 'epoch' && epoch.planned === true);
  assert.ok(failover.lastTiming && failover.lastTiming.finalSyncMs !== null && failover.lastTiming.freezeMs !== null);
});

test("a preemption notice of the proxy's own: a planned failover at once, no corroboration", async () => {
  const r = rig();
  const failover = r.build();
  r.seen();
  failover.preemptionNotice('vast-status', 'instance stopping');
  await failover.idle();
  assert.equal(r.syncRequests.length, 1, 'the final pass was asked for');
  assert.equal(r.store.state.active, 'standby');
  const epoch = r.store.events().find((e) => e.type === 'epoch');
  assert.ok(epoch?.type === 'epoch' && epoch.planned === true && epoch.reason.includes('vast-status'));
  assert.equal(failover.notice, undefined, 'the notice is spent once the route moved');
});

test("an agent's preemption notice is corroborated before the epoch: frozen at once, failed over once the GPU goes silent", async () => {
  const r = rig();
  const failover = r.build({ preemptionConfirmMs: 5_000 });
  r.seen();
  r.heartbeating({ preemption: { source: 'gcp-metadata', ageMs: 10 } });
  failover.evaluate();
  await waitFor('frozen, corroborating', () => failover.frozen && failover.corroborating !== undefined, { timeoutMs: 2_000 });
  assert.equal(r.store.state.epoch, 1, 'nothing irreversible before corroboration');
  r.agent.connected = false; // the agent's connection closes: the proxy sees it too
  await failover.idle();
  assert.equal(r.store.state.active, 'standby');
  assert.deepEqual(r.store.events().filter((e) => e.type === 'notice').map((e) => e.type === 'notice' && e.outcome), ['corroborating', 'corroborated']);
});

test("an agent's preemption notice not corroborated in time: unfrozen, the GPU serves on, the notice dismissed", async () => {
  const r = rig();
  const failover = r.build({ preemptionConfirmMs: 100 });
  r.seen();
  r.heartbeating({ preemption: { source: 'sigterm', ageMs: 10 } });
  failover.evaluate();
  await waitFor('frozen', () => failover.frozen, { timeoutMs: 2_000 });
  // heartbeats and the probe go on: nothing corroborates
  r.probes.primary.last = probe(true);
  for (const stop = performance.now() + 5_000; failover.corroborating && performance.now() < stop; ) {
    r.heartbeating({ preemption: { source: 'sigterm', ageMs: 10 } });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await failover.idle();
  assert.equal(failover.frozen, false);
  assert.deepEqual({ epoch: r.store.state.epoch, active: r.store.state.active }, { epoch: 1, active: 'primary' });
  assert.deepEqual(r.fences, []);
  assert.equal(r.transitions.at(-1)?.event?.type, 'notice');
  assert.equal(r.transitions.at(-1)?.frozen, false, 'the not-corroborated notice and the unfreeze are one transition');
  // the same notice in later heartbeats is not corroborated again
  failover.evaluate();
  assert.equal(failover.corroborating, undefined);
});

test('a fence that fails is retried at the same epoch; traffic moves only once it succeeds', async () => {
  const r = rig();
  r.fencePlan = ['fail', 'fail', 'hold'];
  const failover = r.build();
  r.seen();
  gpuDies(r);
  failover.evaluate();
  await waitFor('the third attempt', () => r.held, { timeoutMs: 5_000 });
  assert.match(failover.lastFenceError ?? '', /refused the fence at epoch 2/);
  assert.deepEqual({ phase: r.store.state.phase, active: r.store.state.active, fencedEpoch: r.store.state.fencedEpoch }, { phase: 'failing_over', active: 'primary', fencedEpoch: 0 });
  assert.ok(!r.eventTypes().includes('routed'), 'not routed to an unfenced standby');
  r.held!.succeed();
  await failover.idle();
  assert.deepEqual(r.fences.map((f) => f.epoch), [2, 2, 2]);
  assert.equal(failover.lastFenceError, null);
  assert.deepEqual(r.eventTypes().slice(-3), ['epoch', 'fenced', 'routed']);
  assert.equal(r.store.state.active, 'standby');
  assert.ok(r.logs.filter((l) => l.msg?.toString().startsWith('cannot fence the standby')).length === 2, 'each failed attempt logged');
});

test('restart mid-fence: a new state machine on the same state fences at the logged epoch (no new one), then routes', async () => {
  const first = rig();
  first.build();
  first.seen();
  first.store.append({ type: 'epoch', epoch: 2, planned: false, watermark: 40, pending: 3, reason: 'GPU gone' });
  const dir = first.dir;
  first.failover.close();
  first.store.close();
  rigs.splice(rigs.indexOf(first), 1);

  const r = rig(dir);
  const failover = r.build();
  assert.deepEqual({ phase: r.store.state.phase, epoch: r.store.state.epoch }, { phase: 'failing_over', epoch: 2 });
  failover.start(1_000);
  await failover.idle();
  assert.deepEqual(r.fences, [{ epoch: 2, purpose: 'failover' }]);
  assert.deepEqual({ epoch: r.store.state.epoch, active: r.store.state.active, phase: r.store.state.phase }, { epoch: 2, active: 'standby', phase: 'failed_over' });
  assert.deepEqual(r.eventTypes().slice(-2), ['fenced', 'routed']);
  const routed = r.store.events().at(-1);
  assert.ok(routed?.type === 'routed' && routed.totalMs === undefined, 'its whole time is unknown: the clock it began on died with the first process');
  assert.ok(r.logs.some((l) => l.msg === 'resuming a failover the previous run left unfinished'));
});

test('restart mid-switch-back: the standby stays frozen until its receiver is fenced and the GPU serves', async () => {
  const first = rig();
  first.build();
  first.seen();
  for (const e of [
    { type: 'epoch', epoch: 2, planned: false, watermark: 40, pending: 3, reason: 'GPU gone' },
    { type: 'fenced', epoch: 2, waitedMs: 1, killed: 0, reason: 'fenced' },
    { type: 'routed', side: 'standby', epoch: 2, ms: null, reason: 'routed' },
    { type: 'switch-back', epoch: 3, reason: 'GPU back' },
  ] as const) first.store.append(e);
  const dir = first.dir;
  first.failover.close();
  first.store.close();
  rigs.splice(rigs.indexOf(first), 1);

  const r = rig(dir);
  r.fencePlan = ['hold'];
  const failover = r.build();
  failover.start(1_000);
  await waitFor('the fence attempt', () => r.held, { timeoutMs: 2_000 });
  assert.equal(failover.frozen, true);
  assert.deepEqual({ epoch: r.held!.epoch, purpose: r.held!.purpose }, { epoch: 3, purpose: 'switch-back' });
  r.held!.succeed();
  await failover.idle();
  assert.equal(failover.frozen, false);
  assert.deepEqual({ epoch: r.store.state.epoch, active: r.store.state.active, phase: r.store.state.phase }, { epoch: 3, active: 'primary', phase: 'normal' });
  assert.deepEqual(r.regrants, [GPU], 'the GPU is granted primary once it serves');
});

test('abort while the fence fails and the GPU answers: the GPU serves again at the new epoch, no more attempts', async () => {
  const r = rig();
  r.fencePlan = Array<'fail'>(10_000).fill('fail');
  const failover = r.build();
  r.seen();
  gpuDies(r);
  failover.evaluate();
  await waitFor('a failed fence', () => failover.lastFenceError, { timeoutMs: 2_000 });
  assert.equal((await failover.abort('test')).accepted, false, 'refused while the GPU does not answer');
  r.heartbeating();
  const answer = await failover.abort('test');
  assert.equal(answer.accepted, true, JSON.stringify(answer));
  assert.deepEqual({ epoch: r.store.state.epoch, active: r.store.state.active, phase: r.store.state.phase, fencedEpoch: r.store.state.fencedEpoch }, { epoch: 2, active: 'primary', phase: 'normal', fencedEpoch: 0 });
  assert.equal(failover.lastFenceError, null);
  assert.equal(r.transitions.at(-1)?.event?.type, 'aborted');
  assert.equal(r.regrants.at(-1), GPU, 'the GPU is granted primary again, at the new epoch');
  // the abort answered once the fence loop had ended: no attempt can follow
  assert.ok(r.logs.some((l) => l.msg === 'failover stopped' && String(l.why).includes('aborted before its fence succeeded')), 'the fence loop stopped');
});

test('abort once the fence succeeded is refused: the failover is past its point of no return', async () => {
  const r = rig();
  r.fencePlan = ['hold'];
  const failover = r.build();
  r.seen();
  gpuDies(r);
  failover.evaluate();
  await waitFor('the fence attempt', () => r.held, { timeoutMs: 2_000 });
  r.heartbeating();
  const aborting = failover.abort('test');
  r.held!.succeed(); // the attempt in flight succeeds while the abort waits for it
  const answer = await aborting;
  assert.equal(answer.accepted, false);
  await failover.idle();
  assert.equal(r.store.state.active, 'standby');
  assert.ok(!r.eventTypes().includes('aborted'));
});

test('switch back: checked by the agent, frozen, new epoch, fence of the receiver under it, route, GPU granted primary', async () => {
  const r = rig();
  r.verify = async () => ({ ok: true, differences: 0 });
  const failover = await failedOver(r);
  assert.equal(r.store.state.active, 'standby');
  // the GPU comes back
  gpuBack(r);
  r.transitions.length = 0;
  const answer = await failover.switchBack('test');
  assert.equal(answer.accepted, true, JSON.stringify(answer));
  await failover.idle();
  assert.deepEqual({ epoch: r.store.state.epoch, active: r.store.state.active, phase: r.store.state.phase, fencedEpoch: r.store.state.fencedEpoch }, { epoch: 3, active: 'primary', phase: 'normal', fencedEpoch: 3 });
  assert.deepEqual(r.fences.at(-1), { epoch: 3, purpose: 'switch-back' });
  assert.deepEqual(r.transitions.map((t) => [t.event?.type ?? 'freeze', t.to.phase, t.frozen]), [['freeze', 'failed_over', true], ['switch-back', 'switching_back', true], ['fenced', 'switching_back', true], ['routed', 'normal', false]]);
  assert.equal(r.regrants.at(-1), GPU);
});

test("switch back asked for right as the GPU's code-server returns, its last probe still a failure: probed now, and that answer decides", async () => {
  const r = rig();
  r.verify = async () => ({ ok: true, differences: 0 });
  const failover = await failedOver(r);
  gpuBack(r);
  r.probes.primary.last = probe(false, 'ECONNREFUSED'); // the last tick, from before the GPU came back
  let asked = 0;
  r.probes.primary.probe = async () => (asked++, probe(false, 'ECONNREFUSED'));
  const refused = await failover.switchBack('test');
  assert.ok(!refused.accepted && refused.why.includes('does not answer the proxy\'s probe (ECONNREFUSED)'), JSON.stringify(refused));
  assert.equal(asked, 1, 'probed once, now');
  assert.equal(failover.frozen, false);
  r.probes.primary.probe = async () => (asked++, probe(true));
  const answer = await failover.switchBack('test');
  assert.equal(answer.accepted, true, JSON.stringify(answer));
  assert.equal(asked, 2);
  await failover.idle();
  assert.equal(r.store.state.active, 'primary');
});

test('switch back refused when the GPU differs from the standby: unfrozen, nothing logged, the standby serves on', async () => {
  const r = rig();
  r.verify = async () => ({ ok: true, differences: 7 });
  const failover = await failedOver(r);
  gpuBack(r);
  const events = r.eventTypes().length;
  const answer = await failover.switchBack('test');
  assert.ok(!answer.accepted && answer.why.includes('differs from the standby'));
  assert.equal(failover.frozen, false);
  assert.equal(r.eventTypes().length, events, 'no event');
  assert.deepEqual({ epoch: r.store.state.epoch, active: r.store.state.active, phase: r.store.state.phase }, { epoch: 2, active: 'standby', phase: 'failed_over' });
  assert.deepEqual(r.transitions.slice(-2).map((t) => t.frozen), [true, false]);
});

test('listeners: each hears every transition once, a stopped one nothing more, a failing one stops nothing', async () => {
  const r = rig();
  const failover = r.build();
  const heard: string[] = [];
  const stop = failover.onTransition((t) => heard.push(t.to.phase));
  failover.onTransition(() => {
    throw new Error('a listener bug');
  });
  r.seen();
  gpuDies(r);
  r.probes.primary.last = probe(false, 'no answer within 400 ms'); // suspect first
  failover.evaluate();
  stop();
  r.probes.primary.failures = 2;
  failover.evaluate();
  await failover.idle();
  assert.deepEqual(heard, ['normal', 'suspect'], 'the stopped listener heard nothing after stop()');
  assert.deepEqual(r.transitions.map((t) => t.to.phase), ['suspect', 'failing_over', 'failing_over', 'failed_over']);
  assert.equal(r.store.state.active, 'standby', 'a throwing listener stopped no transition');
  assert.ok(r.logs.some((l) => l.msg === 'a transition listener failed'));
});

/** What each failover's events carry for the report (proxy/failover-report.ts): its cause, and durations on the proxy's clock. */
const RECORDS: { name: string; start(r: Rig, f: Failover): Promise<void> | void; cause: FailoverCause }[] = [
  {
    name: 'heartbeats missing for the window, code-server refusing',
    start: (r, f) => {
      gpuDies(r);
      f.evaluate();
    },
    cause: { kind: 'silence', probeError: 'ECONNREFUSED' },
  },
  {
    name: "the agent's connection closed, code-server refusing",
    start: (r, f) => {
      r.agent.connected = false;
      r.agent.disconnectedAt = performance.now();
      r.probes.primary.failures = 1;
      r.probes.primary.last = probe(false, 'ECONNREFUSED');
      f.evaluate();
    },
    cause: { kind: 'connection-lost', probeError: 'ECONNREFUSED' },
  },
  { name: 'an admin asked', start: (_r, f) => void f.manual('asked'), cause: { kind: 'manual' } },
  { name: "the proxy's own preemption notice", start: (_r, f) => f.preemptionNotice('vast-status', 'stopping'), cause: { kind: 'preemption', source: 'vast-status', by: 'proxy' } },
  {
    name: "an agent's preemption notice, corroborated",
    start: async (r, f) => {
      r.heartbeating({ preemption: { source: 'gcp-metadata', ageMs: 10 } });
      f.evaluate();
      await waitFor('corroborating', () => f.corroborating !== undefined, { timeoutMs: 2_000 });
      r.agent.connected = false;
    },
    cause: { kind: 'preemption', source: 'gcp-metadata', by: 'agent' },
  },
];

for (const row of RECORDS) {
  test(`the events record the cause and the phases' durations: ${row.name}`, async () => {
    const r = rig();
    const failover = r.build({ preemptionConfirmMs: 5_000 });
    r.seen();
    r.heartbeating(); // its sync state (oldest pending 120 ms) is the RPO
    await row.start(r, failover);
    await failover.idle();
    assert.equal(r.store.state.active, 'standby');
    const events = r.store.events();
    const epoch = events.find((e) => e.type === 'epoch');
    const fenced = events.find((e) => e.type === 'fenced');
    const routed = events.find((e) => e.type === 'routed');
    assert.ok(epoch?.type === 'epoch' && fenced?.type === 'fenced' && routed?.type === 'routed');
    assert.deepEqual(epoch.cause, row.cause);
    const unplanned = row.cause.kind === 'silence' || row.cause.kind === 'connection-lost';
    assert.equal(epoch.planned, !unplanned);
    if (unplanned) assert.equal(epoch.oldestPendingAgeMs, 120, "the last heartbeat's oldest unsynced change");
    else {
      // planned: the final pass (watermark 43) covered the 3 changes the heartbeat had above its watermark 40: RPO 0
      assert.equal(epoch.oldestPendingAgeMs, null, 'nothing outstanding after the final pass');
      assert.equal(epoch.watermark, 43);
      assert.equal(epoch.pending, 0);
    }
    assert.ok(typeof epoch.heartbeatAgeMs === 'number' && epoch.heartbeatAgeMs >= 0);
    if (row.cause.kind === 'silence') assert.ok(epoch.heartbeatAgeMs >= WINDOW_MS, `detection spans the silent window: ${epoch.heartbeatAgeMs} ms`);
    assert.ok(typeof epoch.leadMs === 'number' && epoch.leadMs >= 0);
    assert.ok(typeof fenced.ms === 'number' && fenced.ms >= 0);
    assert.ok(typeof routed.ms === 'number' && routed.ms >= 0);
    // one clock from the failover's start (unplanned: the last heartbeat) to the route: the parts fit inside the whole
    const before = (unplanned ? epoch.heartbeatAgeMs : epoch.leadMs) + fenced.ms + routed.ms;
    assert.ok(typeof routed.totalMs === 'number' && routed.totalMs >= before - 0.003, `total ${routed.totalMs} ms >= ${before} ms`);
  });
}

test('a switch back records its whole time, from the freeze of the standby to the GPU serving; a resumed one does not', async () => {
  const r = rig();
  r.verify = async () => ({ ok: true, differences: 0 });
  const failover = await failedOver(r);
  gpuBack(r);
  assert.equal((await failover.switchBack('test')).accepted, true);
  await failover.idle();
  const routed = r.store.events().filter((e) => e.type === 'routed').at(-1);
  const fenced = r.store.events().filter((e) => e.type === 'fenced').at(-1);
  assert.ok(routed?.type === 'routed' && routed.side === 'primary' && fenced?.type === 'fenced' && fenced.epoch === 3);
  assert.ok(typeof routed.totalMs === 'number' && typeof fenced.ms === 'number' && routed.totalMs >= fenced.ms + (routed.ms ?? 0) - 0.002);
});
