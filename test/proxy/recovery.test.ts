// The recovery's steps (proxy/recovery.ts) with the real `vast` client against
// the loopback stand-in for Vast.ai's API and a real durable state store: no
// offer under the cap, an instance that never gets SSH (rolled back), a proxy
// restarted mid-provisioning (the GPU it created is adopted, never a second),
// and a whole try to the switch back. What the recovery asks of SSH (the new
// GPU's receiver) and of the agents is injected here, as the failover
// machine's tests inject the fence; test/proxy/recovery-local.test.ts runs the
// whole cycle with real hosts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { recoverySchema } from '../../config/recovery.ts';
import type { AgentRecord } from '../../proxy/agent-hub.ts';
import { Recovery, type RecoveryDeps } from '../../proxy/recovery.ts';
import { VastProvider, vastProviderSchema, vastRequirements } from '../../proxy/provision/vast.ts';
import type { GpuRecord, ProxyEvent } from '../../proxy/state.ts';
import { StateStore } from '../../proxy/state-store.ts';
import type { Heartbeat } from '../../protocol/messages.ts';
import { fakeOffer, startFakeVastApi, type FakeVastApi, type FakeVastApiOptions } from '../fakes/vast-api.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const BOUND = { timeout: 60_000 };
const STANDBY = 'cpu-1';

function agent(hostId: string, sync: Partial<Heartbeat['sync']> = {}, publicKey?: string): AgentRecord {
  const last: Heartbeat = {
    type: 'heartbeat', hostId, epoch: 2, seq: 1,
    sync: { watermark: 10, lastSeq: 10, pending: 0, oldestPendingAgeMs: null, lastPassAgeMs: 5, ready: true, held: false, lastError: null, target: null, progress: null, ...sync },
    codeServer: { healthy: true, checkedAgeMs: 5 }, preemption: null, frozen: false, resume: null,
  };
  return { hostId, connected: true, lastHeartbeatAt: performance.now(), disconnectedAt: undefined, last, heartbeats: 1, rejected: 0, dropped: 0, grantedEpoch: 2, publicKey, fenced: undefined };
}

interface Rig {
  fake: FakeVastApi;
  store: StateStore;
  dir: string;
  agents: Map<string, AgentRecord>;
  switchedTo: GpuRecord[];
  retired: GpuRecord[];
  revoked: string[];
  /** what reach() does (default: answers) */
  reach: () => Promise<{ knownHosts: string[] }>;
  make(settings?: Record<string, unknown>): Recovery;
  steps(): string[];
  logs(): string;
}

/** A store failed over at epoch 2 (the standby serves), the Vast fake, and a Recovery maker over them. */
async function rig(t: TestContext, fakeOptions: FakeVastApiOptions = {}, vast: Record<string, unknown> = {}): Promise<Rig> {
  const fake = await startFakeVastApi({ apiKey: 'vast-key-recovery', bootMs: 60, ...fakeOptions });
  const dir = mkdtempSync(join(tmpdir(), 'standby-recovery-'));
  let store = StateStore.open(dir);
  for (const e of [
    { type: 'epoch', epoch: 2, planned: false, watermark: 10, pending: 0, reason: 'test failover' },
    { type: 'fenced', epoch: 2, waitedMs: 0, killed: 0, reason: 'test' },
    { type: 'routed', side: 'standby', epoch: 2, ms: 0, reason: 'test' },
  ] as const) store.append(e);
  const recoveries: Recovery[] = [];
  t.after(async () => {
    for (const r of recoveries) await r.close();
    store.close();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });
  let text = '';
  const log = pino({ level: 'debug' }, new Writable({ write(chunk: Buffer, _enc, cb) { text += chunk.toString(); cb(); } }));
  const r: Rig = {
    fake,
    get store() { return store; },
    dir,
    agents: new Map([[STANDBY, agent(STANDBY, {}, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStandbyAgentKey standby')]]),
    switchedTo: [],
    retired: [],
    revoked: [],
    reach: async () => ({ knownHosts: ['[127.0.0.1]:2222 ssh-ed25519 AAAAhostkey'] }),
    make(settings = {}) {
      const settingsParsed = recoverySchema.parse({ gpu: { provider: 'vast' }, provisionS: 5, sshWaitS: 2, agentWaitS: 5, restoreS: 5, attempts: 2, retryDelayS: 0, levelLagMs: 0, ...settings });
      const provider = new VastProvider(vastProviderSchema.parse({ apiUrl: fake.apiUrl, apiKey: fake.apiKey, retryMinMs: 5, retryMaxMs: 20, searchIntervalMs: 5, searchRetries: 2, requestTimeoutMs: 2_000, ...vast }), log);
      const deps: RecoveryDeps = {
        store,
        settings: settingsParsed,
        workspace: 'ws1',
        gpus: provider,
        requirements: vastRequirements(vastProviderSchema.parse(vast)),
        image: 'pytorch/pytorch',
        standbyId: STANDBY,
        hub: { agents: r.agents, regrant: () => {} },
        invite: (hostId) => `sbi_invite-for-${hostId}`,
        revoke: async (hostId) => void r.revoked.push(hostId),
        onstart: ({ invitation }) => `echo install with ${invitation}`,
        reach: () => r.reach(),
        authorize: async () => ({ roots: ['/workspace'] }),
        currentGpu: () => ({ id: 'gpu-1', url: 'http://127.0.0.1:1' }),
        switchBack: async (gpu) => {
          r.switchedTo.push(gpu);
          store.append({ type: 'switch-back', epoch: store.state.epoch + 1, gpu, reason: 'test switch back' });
          store.append({ type: 'routed', side: 'primary', epoch: store.state.epoch, ms: 0, reason: 'test' });
          return { accepted: true, message: 'switched' };
        },
        retire: async (old) => {
          r.retired.push(old);
          return `${old.id} destroyed`;
        },
        collectConflicts: async (old) => `${old.id}'s agent is not connected: nothing to collect from it (what it never synced is the failover's RPO)`,
        log,
        pollMs: 20,
      };
      const recovery = new Recovery(deps);
      recoveries.push(recovery);
      return recovery;
    },
    steps: () => store.events().filter((e): e is Extract<ProxyEvent, { type: 'recovery' }> => e.type === 'recovery').map((e) => `${e.attempt}:${e.step}`),
    logs: () => text,
  };
  return r;
}

/** The new GPU's agent heartbeats once an instance exists, and the standby's agent reports the restore done once granted. */
function hostsAnswer(r: Rig): void {
  const timer = setInterval(() => {
    const s = r.store.state.recovery;
    if (!s) return;
    const hostId = `${s.name}-a${s.attempt}`;
    if (s.step === 'ssh-ready' && !r.agents.has(hostId)) r.agents.set(hostId, agent(hostId));
    if (s.step === 'restore') r.agents.set(STANDBY, agent(STANDBY, { target: hostId }, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStandbyAgentKey standby'));
  }, 10);
  timer.unref();
}

test('no offer under the price cap: each try says so, nothing is rented, and the recovery gives up with the reason', BOUND, async (t) => {
  const r = await rig(t);
  r.fake.offers.splice(0, r.fake.offers.length, fakeOffer(1, { dph_total: 0.62, geolocation: 'Dallas, US' }), fakeOffer(2, { dph_total: 0.9, geolocation: 'Tokyo, JP' }));
  const recovery = r.make();
  assert.equal(recovery.begin('test').accepted, true);
  await waitFor('the recovery to give up', () => r.store.state.recovery?.step === 'gave-up', { timeoutMs: 30_000 });
  assert.deepEqual(r.steps(), ['1:started', '1:search', '1:failed', '2:started', '2:search', '2:failed', '2:gave-up']);
  const s = r.store.state;
  assert.match(s.recovery!.error!, /no offer under \$0\.50\/h in TH, VN, JP, EU \(cheapest seen: \$0\.62\/h in US\)/);
  assert.equal(s.phase, 'failed_over', 'the standby serves on');
  assert.equal(r.fake.instances().length, 0, 'nothing was rented');
});

test('an instance that never gets SSH: the try fails after provisionS, the instance is destroyed and its invitation revoked, the next try runs', BOUND, async (t) => {
  const r = await rig(t);
  r.fake.offers.splice(0, r.fake.offers.length, fakeOffer(11), fakeOffer(12));
  r.fake.boot = 'no-ssh';
  const recovery = r.make({ provisionS: 1, attempts: 2 });
  recovery.begin('test');
  await waitFor('the recovery to give up', () => r.store.state.recovery?.step === 'gave-up', { timeoutMs: 30_000 });
  assert.deepEqual(r.steps(), ['1:started', '1:search', '1:intent', '1:failed', '2:started', '2:search', '2:intent', '2:failed', '2:gave-up']);
  assert.match(r.store.state.recovery!.error!, /did not run within 1 s/);
  const live = r.fake.instances().filter((i) => i['cur_state'] !== 'unloaded' && i['actual_status'] !== 'destroyed');
  assert.equal(live.length, 0, `every instance rented was destroyed: ${JSON.stringify(r.fake.instances())}`);
  assert.deepEqual(r.revoked, ['standby-ws1-e2-a1', 'standby-ws1-e2-a2']);
});

test('a proxy restarted after the create: the new run finds the instance by its name and adopts it (one GPU rented), then goes on to the switch back', BOUND, async (t) => {
  const r = await rig(t, { hostPorts: () => ({ ssh: 2222, http: 8080 }) });
  r.fake.offers.splice(0, r.fake.offers.length, fakeOffer(21));
  // the first run's receiver never answers: it is stopped there, as a proxy killed mid-provisioning
  let answer = false;
  r.reach = async () => {
    if (!answer) throw new Error('connection refused');
    return { knownHosts: ['[127.0.0.1]:2222 ssh-ed25519 AAAAhostkey'] };
  };
  const first = r.make({ sshWaitS: 30 });
  first.begin('test');
  await waitFor('the GPU to be created', () => r.store.state.recovery?.step === 'created', { timeoutMs: 20_000 });
  await first.close();
  assert.equal(r.fake.instances().length, 1);
  // the restarted proxy: a new Recovery over the same log resumes
  answer = true;
  hostsAnswer(r);
  const second = r.make();
  assert.match(second.begin('resumed at start').why, /resuming \(step created\)/);
  await waitFor('the recovery to finish', () => r.store.state.recovery?.step === 'old-gpu', { timeoutMs: 30_000 });
  assert.equal(r.fake.instances().length, 1, 'no second GPU was rented');
  assert.match(r.logs(), /found the GPU a previous run created: adopting it/);
  assert.deepEqual(r.steps(), ['1:started', '1:search', '1:intent', '1:created', '1:created', '1:ssh-ready', '1:agent-ready', '1:restore', '1:restored', '1:done', '1:old-gpu']);
  const [gpu] = r.switchedTo;
  assert.equal(gpu?.id, 'standby-ws1-e2-a1');
  assert.equal(gpu?.url, 'http://127.0.0.1:8080', "the new GPU's code-server, as Vast mapped its port");
  assert.equal(r.store.state.gpu?.id, 'standby-ws1-e2-a1', 'the new GPU is the GPU in service');
  assert.equal(r.store.state.phase, 'normal');
});

test('the restore is waited for: no switch back while the standby agent has not reported the new GPU level', BOUND, async (t) => {
  const r = await rig(t, { hostPorts: () => ({ ssh: 2222, http: 8080 }) });
  r.fake.offers.splice(0, r.fake.offers.length, fakeOffer(31));
  const recovery = r.make({ restoreS: 1, attempts: 1 });
  // the new GPU's agent comes, but the standby's agent never reports the new target done
  const timer = setInterval(() => {
    const s = r.store.state.recovery;
    if (s?.step === 'ssh-ready') r.agents.set(`${s.name}-a${s.attempt}`, agent(`${s.name}-a${s.attempt}`));
    if (s?.step === 'restore') r.agents.set(STANDBY, agent(STANDBY, { target: `${s.name}-a${s.attempt}`, pending: 40, ready: false }, 'ssh-ed25519 AAAAkey'));
  }, 10);
  t.after(() => clearInterval(timer));
  recovery.begin('test');
  await waitFor('the recovery to give up', () => r.store.state.recovery?.step === 'gave-up', { timeoutMs: 30_000 });
  assert.equal(r.switchedTo.length, 0, 'never switched back');
  assert.match(r.store.state.recovery!.error!, /restore of standby-ws1-e2-a1 did not finish within 1 s/);
  assert.equal(r.store.state.active, 'standby');
});

test('a switch back a restarted proxy finished from the log: the recovery logs done and retires the GPU it left (recorded with restored)', BOUND, async (t) => {
  const r = await rig(t);
  const host = { id: 'standby-ws1-e2-a1', url: 'http://127.0.0.1:8080', provider: 'vast', providerId: '9000001', ssh: { host: '127.0.0.1', port: 2222, user: 'root' }, workspace: '/workspace', knownHosts: [], pricePerHour: 0.4 };
  const base = { epoch: 2, attempt: 1, provider: 'vast', name: 'standby-ws1-e2' };
  r.store.append({ type: 'recovery', step: 'started', ...base, reason: 'try 1' });
  r.store.append({ type: 'recovery', step: 'restored', ...base, host, old: { id: 'gpu-1', url: 'http://127.0.0.1:1', provider: 'vast', providerId: '777' }, reason: 'restored' });
  // the previous run logged the switch back and died; the state machine of the next one fenced and routed from the log
  r.store.append({ type: 'switch-back', epoch: 3, gpu: { id: host.id, url: host.url, provider: 'vast', providerId: '9000001' }, reason: 'switch back' });
  r.store.append({ type: 'fenced', epoch: 3, waitedMs: 0, killed: 0, reason: 'fenced' });
  r.store.append({ type: 'routed', side: 'primary', epoch: 3, ms: 0, reason: 'routed' });
  await r.make().finishSwitchedBack();
  assert.deepEqual(r.steps(), ['1:started', '1:restored', '1:done', '1:old-gpu']);
  assert.deepEqual(r.retired.map((g) => g.providerId), ['777'], 'the GPU that was left, as recorded with restored');
  // once done, a second call does nothing
  await r.make().finishSwitchedBack();
  assert.equal(r.steps().length, 4);
});
