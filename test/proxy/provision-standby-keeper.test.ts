// The standby keeper (proxy/provision/standby-keeper.ts) with the real gcp
// provider and @google-cloud/compute client against the loopback Compute
// fake: a preempted spot standby is started again on its disk, one deleted
// behind our back is created anew (recreated: true, resync fully), the window
// without a standby copy is reported once down and once up, a tick's errors
// (a 500 on a look, a failed start) never end the loop, a slow start is not
// doubled, and an abort ends the loop at once, also in the middle of a start.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { gcpStandbySchema } from '../../config/gcp-standby.ts';
import { GcpStandbyProvider } from '../../proxy/provision/gcp.ts';
import { hostNameText, type StandbySpec } from '../../proxy/provision/provider.ts';
import { StandbyKeeper, type StandbyKeeperEvent } from '../../proxy/provision/standby-keeper.ts';
import { startFakeGcpCompute, type FakeGcpCompute } from '../fakes/gcp-compute.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const ZONE = 'europe-west1-b';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBn4LMVHsWZlV1Bb3L3W8m1lZk2Ws6n2h5J4k0dkYq1v standby-proxy';
const BOUND = { timeout: 60_000 };

const spec = (workspace: string): StandbySpec => ({ name: { workspace, epoch: 1 }, zone: ZONE, machineType: 'e2-medium', diskGb: 100, spot: true, sshPublicKey: KEY, sshUser: 'standby' });

describe('standby keeper against the Compute fake', () => {
  let fake: FakeGcpCompute;
  const providers: GcpStandbyProvider[] = [];

  before(async () => {
    fake = await startFakeGcpCompute({ stepMs: 20, waitCapMs: 300 });
  });
  after(async () => {
    for (const p of providers) await p.close();
    await fake?.close();
  });

  async function provider(over: Record<string, unknown> = {}): Promise<GcpStandbyProvider> {
    const config = gcpStandbySchema.parse({ operationTimeoutMs: 20_000, callTimeoutMs: 10_000, ...over });
    const p = await GcpStandbyProvider.create(config, { env: { GCP_CREDENTIALS: fake.credentialsJson, GCP_PROJECT_ID: fake.project }, endpoint: fake.endpoint, backoffMs: { min: 5, max: 20 }, pollMs: 20 });
    providers.push(p);
    return p;
  }

  /** A keeper looking every 50 ms, its events and log lines kept, its loop ended (and awaited) when the test ends. */
  function keep(t: TestContext, gcp: GcpStandbyProvider, workspace: string, id: string, onEvent?: (e: StandbyKeeperEvent) => void) {
    const events: StandbyKeeperEvent[] = [];
    let logs = '';
    const log = pino({ level: 'debug' }, new Writable({ write(chunk: Buffer, _e, cb) { logs += chunk.toString(); cb(); } }));
    const keeper = new StandbyKeeper({ provider: gcp, spec: spec(workspace), id, intervalMs: 50, maxBackoffMs: 200, log, onEvent: (e) => { events.push(e); onEvent?.(e); } });
    const abort = new AbortController();
    const running = keeper.run(abort.signal);
    t.after(async () => {
      abort.abort();
      await running;
    });
    return { keeper, events, logs: () => logs, abort, running };
  }

  const ops = (type: string, name: string) => fake.operations().filter((o) => o.operationType === type && o.targetLink.endsWith(`/${name}`));
  const looks = (name: string) => fake.requests.filter((r) => r.method === 'GET' && r.path.includes(`/instances/${name}`)).length;
  const upEvent = (events: StandbyKeeperEvent[]) => events.find((e): e is Extract<StandbyKeeperEvent, { kind: 'standby-up' }> => e.kind === 'standby-up');

  test('a preempted spot standby is started again on its disk: one standby-down, one standby-up with the window', BOUND, async (t) => {
    const gcp = await provider();
    const name = hostNameText({ workspace: 'ws-keep-preempt', epoch: 1 });
    const host = await gcp.ensure(spec('ws-keep-preempt'));
    const disk = fake.disks().find((d) => d.name === name)!;
    const k = keep(t, gcp, 'ws-keep-preempt', host.id);
    const before = looks(name);
    await waitFor('the keeper to see it running', () => looks(name) >= before + 2);
    assert.equal(k.events.length, 0, 'nothing to report while it runs');

    fake.preempt(ZONE, name, 'TERMINATED');
    const up = await waitFor('standby-up', () => upEvent(k.events), { timeoutMs: 20_000 });
    assert.deepEqual(k.events.map((e) => e.kind), ['standby-down', 'standby-up']);
    const down = k.events[0] as Extract<StandbyKeeperEvent, { kind: 'standby-down' }>;
    assert.equal(down.state, 'stopped');
    assert.match(down.detail, /^TERMINATED/);
    assert.equal(up.recreated, false, 'started, not created: the copy on its disk is kept');
    assert.ok(up.downMs > 0, `downMs ${up.downMs}`);
    assert.ok(up.windowMs >= up.downMs, `the window (${up.windowMs} ms) starts at the last look that saw it up, before the first that saw it down (${up.downMs} ms)`);
    assert.equal(up.host.state, 'running');
    assert.ok(up.host.ssh && up.host.ssh.host !== host.ssh?.host, 'its new address');
    assert.equal(fake.instance(ZONE, name)?.status, 'RUNNING');
    assert.equal(ops('start', name).length, 1);
    assert.equal(ops('insert', name).length, 1, 'not created again');
    assert.equal(fake.disks().find((d) => d.name === name)?.id, disk.id, 'the same disk');
    assert.equal(k.keeper.down, false);

    // it keeps watching: nothing more to report while it runs
    const after = looks(name);
    await waitFor('more looks', () => looks(name) >= after + 2);
    assert.equal(k.events.length, 2);
  });

  test('a standby deleted behind our back is created anew, reported as recreated (resync fully); a listener that throws changes nothing', BOUND, async (t) => {
    const gcp = await provider();
    const name = hostNameText({ workspace: 'ws-keep-gone', epoch: 1 });
    const host = await gcp.ensure(spec('ws-keep-gone'));
    const disk = fake.disks().find((d) => d.name === name)!;
    fake.remove(ZONE, name);
    const k = keep(t, gcp, 'ws-keep-gone', host.id, () => {
      throw new Error('a listener that throws');
    });
    const up = await waitFor('standby-up', () => upEvent(k.events), { timeoutMs: 20_000 });
    assert.deepEqual(k.events.map((e) => e.kind), ['standby-down', 'standby-up']);
    assert.equal((k.events[0] as { state: string }).state, 'gone');
    assert.equal(up.recreated, true);
    assert.equal(up.id, host.id, 'the same name, so the same id');
    assert.equal(ops('insert', name).length, 2, 'created again');
    assert.notEqual(fake.disks().find((d) => d.name === name)?.id, disk.id, 'a new, empty disk');
    assert.match(k.logs(), /a listener threw/);
    assert.match(k.logs(), /created anew: resync it fully/);
  });

  test('a standby made anew gets the machine settings in force then (a spec asked at each ensure: they may change live)', BOUND, async (t) => {
    const gcp = await provider();
    const name = hostNameText({ workspace: 'ws-keep-live', epoch: 1 });
    const host = await gcp.ensure(spec('ws-keep-live'));
    assert.match(String(fake.instance(ZONE, name)?.machineType), /\/e2-medium$/);
    let current = spec('ws-keep-live');
    const events: StandbyKeeperEvent[] = [];
    const keeper = new StandbyKeeper({ provider: gcp, spec: () => current, id: host.id, intervalMs: 50, maxBackoffMs: 200, log: pino({ level: 'silent' }), onEvent: (e) => events.push(e) });
    const abort = new AbortController();
    const running = keeper.run(abort.signal);
    t.after(async () => {
      abort.abort();
      await running;
    });
    // changed after the keeper began, before the standby went
    current = { ...current, machineType: 'e2-small', diskGb: 50, spot: false };
    fake.remove(ZONE, name);
    const up = await waitFor('standby-up', () => upEvent(events), { timeoutMs: 20_000 });
    assert.equal(up.recreated, true);
    const made = fake.instance(ZONE, name)!;
    assert.match(String(made.machineType), /\/e2-small$/);
    assert.equal(fake.disks().find((d) => d.name === name)?.sizeGb, '50');
    assert.equal((made as { scheduling?: { provisioningModel?: string } }).scheduling?.provisioningModel, 'STANDARD');
  });

  test('errors never end the loop: a 500 on a look, a start refused, then a slow start that is not doubled', BOUND, async (t) => {
    const gcp = await provider({ apiRetries: 0 });
    const name = hostNameText({ workspace: 'ws-keep-errors', epoch: 1 });
    const host = await gcp.ensure(spec('ws-keep-errors'));
    fake.preempt(ZONE, name, 'TERMINATED');
    fake.failNext(2, 500, new RegExp(`^GET .*/instances/${name}$`));
    fake.failNext(1, 503, new RegExp(`^POST .*/instances/${name}/start$`));
    fake.slowNextOperation('start', 400);
    const k = keep(t, gcp, 'ws-keep-errors', host.id);
    const up = await waitFor('standby-up', () => upEvent(k.events), { timeoutMs: 20_000 });
    assert.deepEqual(k.events.map((e) => e.kind), ['standby-down', 'standby-ensure-failed', 'standby-up']);
    const failed = k.events[1] as Extract<StandbyKeeperEvent, { kind: 'standby-ensure-failed' }>;
    assert.equal(failed.attempt, 1);
    assert.match(failed.detail, /start standby-ws-keep-errors-e1 failed 1 times, last: 503/);
    assert.ok(failed.retryInMs > 0);
    assert.match(k.logs(), /could not look at the standby; trying again/, 'the 500 on a look was logged');
    assert.equal(fake.requests.filter((r) => r.status === 500).length >= 2, true);
    // the slow start took ~800 ms, some 16 intervals: no look overlapped it, no second start was sent
    assert.equal(ops('start', name).length, 1);
    assert.ok(up.downMs >= 800, `downMs ${up.downMs}`);
    assert.equal(fake.instance(ZONE, name)?.status, 'RUNNING');
  });

  test('an abort ends the loop at once, also in the middle of a start', BOUND, async (t) => {
    const gcp = await provider();
    const name = hostNameText({ workspace: 'ws-keep-abort', epoch: 1 });
    const host = await gcp.ensure(spec('ws-keep-abort'));
    fake.preempt(ZONE, name, 'TERMINATED');
    fake.stallNextOperation('start');
    const k = keep(t, gcp, 'ws-keep-abort', host.id);
    await waitFor('the start under way', () => ops('start', name).length === 1, { timeoutMs: 10_000 });
    const started = performance.now();
    k.abort.abort();
    await k.running;
    assert.ok(performance.now() - started < 2_000, 'promptly');
    assert.deepEqual(k.events.map((e) => e.kind), ['standby-down'], 'no ensure-failed for an abort');
    // waiting for something not to happen: no look after the loop ended (ten intervals)
    const seen = fake.requests.length;
    await sleep(500);
    assert.equal(fake.requests.length, seen, 'no request after the abort');
  });

  test('check() asked while a look is under way shares it', BOUND, async (t) => {
    const gcp = await provider();
    const host = await gcp.ensure(spec('ws-keep-check'));
    const log = pino({ level: 'silent' });
    const keeper = new StandbyKeeper({ provider: gcp, spec: spec('ws-keep-check'), id: host.id, log });
    const name = hostNameText({ workspace: 'ws-keep-check', epoch: 1 });
    const before = looks(name);
    const [a, b] = await Promise.all([keeper.check(), keeper.check()]);
    assert.equal(a, 'up');
    assert.equal(b, 'up');
    assert.equal(looks(name), before + 1, 'one look');
    t.diagnostic(`looks ${looks(name) - before}`);
  });
});
