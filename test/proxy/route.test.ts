// The active side, as a table: which backend a request goes to, what each
// agent is granted, and what the public status says, for each phase, freeze,
// verdict and probe answer. No processes: the route only reads its inputs
// (routing.test.ts, public-pages.test.ts and transition-page.test.ts run it
// behind the real proxy).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Verdict } from '../../proxy/detector.ts';
import type { ProbeResult } from '../../proxy/prober.ts';
import { Route, type MachineHold } from '../../proxy/route.ts';
import type { Backend } from '../../proxy/router.ts';
import { INITIAL_STATE, type Phase, type ProxyState, type Side } from '../../proxy/state.ts';

const BACKENDS: Record<Side, Backend> = {
  primary: { side: 'primary', id: 'gpu-1', url: 'http://127.0.0.1:1' },
  standby: { side: 'standby', id: 'cpu-1', url: 'http://127.0.0.1:2' },
};

const up: ProbeResult = { ok: true, at: 0, ms: 1, error: null, fromTraffic: false };
const down: ProbeResult = { ok: false, at: 0, ms: 1, error: 'ECONNREFUSED', fromTraffic: false };
const failed: Verdict = { kind: 'failed', planned: false, reason: 'gone' };

interface Inputs {
  active?: Side;
  phase?: Phase;
  epoch?: number;
  frozen?: boolean;
  verdict?: Verdict;
  fenceError?: string | null;
  primary?: ProbeResult;
  standby?: ProbeResult;
}

function routeFor(o: Inputs): Route {
  const state: ProxyState = { ...INITIAL_STATE, active: o.active ?? 'primary', phase: o.phase ?? 'normal', epoch: o.epoch ?? 1, gpuSeenEpoch: o.epoch ?? 1 };
  const machine: MachineHold = { frozen: o.frozen ?? false, lastVerdict: o.verdict ?? { kind: 'healthy' }, lastFenceError: o.fenceError ?? null };
  return new Route({ state: () => state, machine, probes: { primary: { last: o.primary }, standby: { last: o.standby } }, backends: BACKENDS });
}

const TARGETS: { name: string; inputs: Inputs; to: Side | undefined }[] = [
  { name: 'the GPU serves', inputs: {}, to: 'primary' },
  { name: 'the GPU serves, not probed yet', inputs: { primary: undefined }, to: 'primary' },
  { name: 'degraded (heartbeats missing, code-server answering): still the GPU', inputs: { phase: 'degraded', primary: up }, to: 'primary' },
  { name: 'suspect: still the GPU until the verdict is failed', inputs: { phase: 'suspect', primary: down }, to: 'primary' },
  { name: 'the verdict is failed (the failover about to start): nowhere', inputs: { phase: 'suspect', verdict: failed }, to: undefined },
  { name: 'frozen (a planned failover or a corroboration): nowhere', inputs: { frozen: true, primary: up }, to: undefined },
  { name: 'failing over: nowhere', inputs: { phase: 'failing_over', primary: up, standby: up }, to: undefined },
  { name: 'switching back: nowhere', inputs: { active: 'standby', phase: 'switching_back', primary: up, standby: up }, to: undefined },
  { name: 'failed over, the standby answering: the standby', inputs: { active: 'standby', phase: 'failed_over', standby: up }, to: 'standby' },
  { name: 'failed over, the standby not probed yet: the standby', inputs: { active: 'standby', phase: 'failed_over' }, to: 'standby' },
  { name: "failed over, the standby's code-server down: nowhere", inputs: { active: 'standby', phase: 'failed_over', standby: down }, to: undefined },
  { name: 'failed over, a failed verdict about the GPU changes nothing', inputs: { active: 'standby', phase: 'failed_over', verdict: failed, standby: up }, to: 'standby' },
  { name: 'waiting for the GPU, its code-server down: nowhere (the transition page)', inputs: { phase: 'waiting', primary: down }, to: undefined },
  { name: 'waiting for the GPU, its code-server up: the GPU', inputs: { phase: 'waiting', primary: up }, to: 'primary' },
];

for (const row of TARGETS) {
  test(`target: ${row.name}`, () => {
    assert.equal(routeFor(row.inputs).target()?.side, row.to);
  });
}

const GRANTS: { name: string; host: string; inputs: Inputs; role: 'primary' | 'fenced' }[] = [
  { name: 'the GPU while it serves', host: 'gpu-1', inputs: { epoch: 3 }, role: 'primary' },
  { name: 'the GPU while waiting for it', host: 'gpu-1', inputs: { phase: 'waiting', epoch: 3 }, role: 'primary' },
  { name: 'the GPU while suspect', host: 'gpu-1', inputs: { phase: 'suspect', epoch: 3 }, role: 'primary' },
  { name: 'the GPU once the failover logged its epoch', host: 'gpu-1', inputs: { phase: 'failing_over', epoch: 3 }, role: 'fenced' },
  { name: 'the GPU once the standby serves', host: 'gpu-1', inputs: { active: 'standby', phase: 'failed_over', epoch: 3 }, role: 'fenced' },
  { name: 'the GPU while switching back (until the route moves)', host: 'gpu-1', inputs: { active: 'standby', phase: 'switching_back', epoch: 3 }, role: 'fenced' },
  { name: "the standby's agent, always", host: 'cpu-1', inputs: { active: 'standby', phase: 'failed_over', epoch: 3 }, role: 'fenced' },
  { name: 'a host the proxy does not serve', host: 'gpu-9', inputs: { epoch: 3 }, role: 'fenced' },
];

for (const row of GRANTS) {
  test(`grant: ${row.name}: ${row.role}, at the current epoch`, () => {
    const grant = routeFor(row.inputs).grant(row.host);
    assert.deepEqual({ role: grant.role, epoch: grant.epoch }, { role: row.role, epoch: 3 });
    assert.ok(grant.reason.length > 0);
  });
}

const STATUSES: { name: string; inputs: Inputs; phase: string; active: Side | null; ready: boolean; message: RegExp }[] = [
  { name: 'the GPU serves', inputs: { primary: up }, phase: 'normal', active: 'primary', ready: true, message: /The GPU serves/ },
  { name: 'a freeze shows as the failover it starts', inputs: { frozen: true }, phase: 'failing_over', active: 'primary', ready: false, message: /moving to the standby/ },
  // (its words are the failed-over phase's "starting on the standby": kept as the proxy says it today)
  { name: 'a freeze while the standby serves (a switch back being checked) shows as the switch back', inputs: { active: 'standby', phase: 'failed_over', frozen: true }, phase: 'switching_back', active: 'standby', ready: false, message: /starting on the standby/ },
  { name: 'failing over, the fence retried', inputs: { phase: 'failing_over', fenceError: 'refused' }, phase: 'failing_over', active: null, ready: false, message: /The standby is being prepared/ },
  { name: 'failing over', inputs: { phase: 'failing_over' }, phase: 'failing_over', active: null, ready: false, message: /moving to the standby/ },
  { name: "failed over, the standby's code-server not up yet", inputs: { active: 'standby', phase: 'failed_over', standby: down }, phase: 'failed_over', active: 'standby', ready: false, message: /starting on the standby/ },
  { name: 'failed over and serving', inputs: { active: 'standby', phase: 'failed_over', standby: up }, phase: 'failed_over', active: 'standby', ready: true, message: /now runs on the standby/ },
  { name: 'waiting for the GPU', inputs: { phase: 'waiting', primary: down }, phase: 'waiting', active: 'primary', ready: false, message: /Waiting for the GPU/ },
];

for (const row of STATUSES) {
  test(`public status: ${row.name}`, () => {
    const s = routeFor(row.inputs).publicStatus();
    assert.deepEqual({ phase: s.phase, active: s.active?.role ?? null, ready: s.ready }, { phase: row.phase, active: row.active, ready: row.ready });
    assert.match(s.message, row.message);
  });
}

test('the public status and the transition page name roles, never host ids, addresses or errors', () => {
  const route = routeFor({ phase: 'failing_over', fenceError: 'ssh to 10.0.0.7 refused for gpu-1' });
  const said = JSON.stringify(route.publicStatus()) + route.transitionPage();
  for (const secret of ['gpu-1', 'cpu-1', '127.0.0.1', '10.0.0.7', 'refused']) assert.ok(!said.includes(secret), `${secret} is not told`);
  assert.match(route.transitionPage(), /CPU standby/);
});
