// The gcp standby provider with the real @google-cloud/compute client (REST
// transport, a service-account key signing its own JWTs) against the loopback
// Compute fake: creates once whatever answers are lost, restarts a preempted
// spot VM with its disk, retries 429/5xx, reports operation errors, and stops
// and deletes idempotently. Every connection the process opens is checked to
// stay on loopback.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { StandbyError } from '../../core/errors.ts';
import { gcpStandbySchema, type GcpStandbyConfig } from '../../config/gcp-standby.ts';
import { GcpStandbyProvider, type GcpProviderOptions } from '../../proxy/provision/gcp.ts';
import { hostNameText, type StandbySpec } from '../../proxy/provision/provider.ts';
import { startFakeGcpCompute, type FakeGcpCompute } from '../fakes/gcp-compute.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const ZONE = 'europe-west1-b';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBn4LMVHsWZlV1Bb3L3W8m1lZk2Ws6n2h5J4k0dkYq1v standby-proxy';

function spec(workspace: string, epoch: number, over: Partial<StandbySpec> = {}): StandbySpec {
  return { name: { workspace, epoch }, zone: ZONE, machineType: 'e2-medium', diskGb: 100, spot: true, sshPublicKey: KEY, sshUser: 'standby', startupScript: '#!/bin/sh\necho installed\n', ...over };
}

async function rejectsWith(p: Promise<unknown>, code: string, pattern: RegExp): Promise<StandbyError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StandbyError, `a StandbyError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected ${code}`);
}

describe('gcp standby provider against the Compute fake', () => {
  let fake: FakeGcpCompute;
  let dir: string;
  const providers: GcpStandbyProvider[] = [];
  const remotes: string[] = [];
  const onSocket = (message: unknown) => {
    const socket = (message as { socket: Socket }).socket;
    socket.once('connect', () => remotes.push(socket.remoteAddress ?? '?'));
    socket.once('lookup', (_err: unknown, _address: unknown, _family: unknown, host: string) => remotes.push(`lookup ${host}`));
  };

  const config = (over: Record<string, unknown> = {}): GcpStandbyConfig => gcpStandbySchema.parse({ operationTimeoutMs: 20_000, callTimeoutMs: 10_000, ...over });
  const env = () => ({ GCP_CREDENTIALS: fake.credentialsJson, GCP_PROJECT_ID: fake.project });
  async function provider(over: Record<string, unknown> = {}, options: Partial<GcpProviderOptions> = {}): Promise<GcpStandbyProvider> {
    const p = await GcpStandbyProvider.create(config(over), { env: env(), endpoint: fake.endpoint, backoffMs: { min: 5, max: 20 }, pollMs: 20, ...options });
    providers.push(p);
    return p;
  }
  const inserts = (name: string) => fake.operations().filter((o) => o.operationType === 'insert' && o.targetLink.endsWith(`/${name}`));

  before(async () => {
    subscribe('net.client.socket', onSocket);
    fake = await startFakeGcpCompute({ stepMs: 30, waitCapMs: 500 });
    dir = mkdtempSync(join(tmpdir(), 'standby-gcp-'));
  });
  after(async () => {
    for (const p of providers) await p.close();
    await fake?.close();
    unsubscribe('net.client.socket', onSocket);
    rmSync(dir, { recursive: true, force: true });
    // no traffic leaves loopback: no name looked up, every connection to 127.0.0.1
    assert.ok(remotes.length > 0, 'connections were seen');
    assert.deepEqual(remotes.filter((r) => r !== '127.0.0.1'), [], 'every connection stays on loopback');
  });

  for (const spot of [true, false]) {
    test(`ensure creates a ${spot ? 'spot' : 'standard'} VM once, with its key, labels and disk, and answers with its external IP`, { timeout: 60_000 }, async () => {
      const gcp = await provider();
      const ws = spot ? 'ws-create-spot' : 'ws-create-std';
      const name = hostNameText({ workspace: ws, epoch: 3 });
      const host = await gcp.ensure(spec(ws, 3, { spot }));
      const inst = fake.instance(ZONE, name);
      assert.ok(inst, 'the VM exists');
      assert.equal(inst.status, 'RUNNING', 'ensure answers once it runs: its create operation is DONE');
      assert.equal(inserts(name).length, 1);
      assert.equal(inserts(name)[0]!.status, 'DONE');
      const ip = inst.networkInterfaces![0]!.accessConfigs![0]!.natIP;
      assert.deepEqual(host.ssh, { host: ip, port: 22, user: 'standby' });
      assert.equal(host.id, `${ZONE}/${name}`);
      assert.equal(host.state, 'running');
      assert.deepEqual(host.name, { workspace: ws, epoch: 3 });
      assert.match(String(inst['machineType']), /\/zones\/europe-west1-b\/machineTypes\/e2-medium$/);
      assert.deepEqual(inst.labels, { standby_workspace: ws, standby_epoch: '3', standby_role: 'standby' });
      if (spot) {
        assert.deepEqual({ ...inst.scheduling }, { provisioningModel: 'SPOT', instanceTerminationAction: 'STOP', automaticRestart: false, onHostMaintenance: 'TERMINATE' });
      } else {
        assert.equal(inst.scheduling?.provisioningModel, 'STANDARD');
        assert.equal(inst.scheduling?.instanceTerminationAction, undefined);
      }
      const items = Object.fromEntries((inst.metadata?.items ?? []).map((i) => [i.key, i.value]));
      assert.equal(items['ssh-keys'], `standby:${KEY}`);
      assert.equal(items['block-project-ssh-keys'], 'TRUE');
      assert.equal(items['startup-script'], '#!/bin/sh\necho installed\n');
      assert.equal(inst.disks.length, 1);
      assert.equal(inst.disks[0]!.boot, true);
      assert.equal(inst.disks[0]!.autoDelete, true, 'the disk goes with the VM on destroy (a preemption stops, it does not delete)');
      assert.equal(inst.disks[0]!.diskSizeGb, '100');
      assert.equal(fake.disks().find((d) => d.name === name)?.sourceImage, 'projects/debian-cloud/global/images/family/debian-12');
      assert.ok(host.pricePerHour !== undefined && host.pricePerHour > 0, 'a price estimate');

      const again = await gcp.ensure(spec(ws, 3, { spot }));
      assert.equal(again.id, host.id);
      assert.deepEqual(again.ssh, host.ssh);
      assert.equal(inserts(name).length, 1, 'a second ensure creates nothing');
      assert.equal(fake.instances().filter((i) => i.name === name).length, 1);
    });
  }

  test('a create whose answer is lost is retried as the same request: one VM', { timeout: 60_000 }, async () => {
    const gcp = await provider();
    const name = hostNameText({ workspace: 'ws-lost', epoch: 1 });
    const from = fake.requests.length;
    fake.dropNextAnswer(/^POST .*\/zones\/europe-west1-b\/instances$/);
    const host = await gcp.ensure(spec('ws-lost', 1));
    assert.equal(host.state, 'running');
    const posts = fake.requests.slice(from).filter((r) => r.method === 'POST' && /\/zones\/europe-west1-b\/instances\?/.test(r.path));
    assert.ok(posts.length >= 2, `the create was sent again (${posts.length})`);
    assert.equal(new Set(posts.map((p) => new URL(p.path, 'http://x').searchParams.get('requestId'))).size, 1, 'with the same requestId');
    assert.equal(inserts(name).length, 1, 'one create operation');
    assert.equal(fake.instances().filter((i) => i.name === name).length, 1);
  });

  test('a proxy that lost the answer and gave up adopts the VM on its next ensure, without a second create', { timeout: 60_000 }, async () => {
    const impatient = await provider({ apiRetries: 0 });
    const name = hostNameText({ workspace: 'ws-adopt', epoch: 2 });
    fake.dropNextAnswer(/^POST .*\/zones\/europe-west1-b\/instances$/);
    await rejectsWith(impatient.ensure(spec('ws-adopt', 2)), 'STANDBY_ERR_PROVIDER_FAILED', /no answer/);
    assert.equal(inserts(name).length, 1, 'the lost create did happen');
    // a restarted proxy: a new provider, a new ensure (a new requestId): the name is taken by our VM
    const restarted = await provider();
    const host = await restarted.ensure(spec('ws-adopt', 2));
    assert.equal(host.state, 'running');
    assert.equal(inserts(name).length, 1, 'no second create operation');
    assert.equal(fake.instances().filter((i) => i.name === name).length, 1);
  });

  test('a VM of the same name that is not this standby is not adopted', { timeout: 60_000 }, async () => {
    const gcp = await provider();
    await gcp.ensure(spec('ws-other', 5));
    const inst = fake.instance(ZONE, hostNameText({ workspace: 'ws-other', epoch: 5 }))!;
    inst.labels = { team: 'data' };
    await rejectsWith(gcp.ensure(spec('ws-other', 5)), 'STANDBY_ERR_PROVIDER_FAILED', /is not this standby.*delete or rename it/);
  });

  for (const status of ['TERMINATED', 'STOPPED'] as const) {
    test(`a preempted spot standby (${status}) is started again by ensure, on the same disk`, { timeout: 60_000 }, async () => {
      const gcp = await provider();
      const ws = `ws-preempt-${status.toLowerCase()}`;
      const name = hostNameText({ workspace: ws, epoch: 4 });
      const first = await gcp.ensure(spec(ws, 4));
      const diskBefore = fake.disks().find((d) => d.name === name);
      assert.ok(diskBefore);

      fake.preempt(ZONE, name, status);
      const seen = await gcp.get(first.id);
      assert.equal(seen?.state, 'stopped');
      assert.equal(seen?.ssh, undefined, 'no address while it is stopped');
      assert.ok(fake.disks().some((d) => d.id === diskBefore.id), 'the disk outlives the preemption');

      const again = await gcp.ensure(spec(ws, 4));
      assert.equal(again.state, 'running');
      assert.equal(fake.instance(ZONE, name)?.status, 'RUNNING');
      assert.ok(again.ssh && again.ssh.host !== first.ssh?.host, 'a new ephemeral IP after the start');
      const disk = fake.disks().find((d) => d.name === name);
      assert.equal(disk?.id, diskBefore.id, 'the same disk: the copy is kept');
      assert.equal(disk?.users, name);
      assert.equal(inserts(name).length, 1, 'started, not created again');
      const starts = fake.operations().filter((o) => o.operationType === 'start' && o.targetLink.endsWith(`/${name}`));
      assert.equal(starts.length, 1);
      assert.equal(starts[0]!.status, 'DONE');
    });
  }

  test('429 and 5xx answers are retried with backoff', { timeout: 60_000 }, async () => {
    const gcp = await provider({ apiRetries: 5 });
    const name = hostNameText({ workspace: 'ws-retry', epoch: 1 });
    fake.failNext(2, 429, /^GET .*\/instances\/standby-ws-retry-e1$/);
    fake.failNext(2, 503, /^POST .*\/instances$/);
    fake.failNext(1, 500, /^POST .*\/operations\/.*\/wait$/);
    const host = await gcp.ensure(spec('ws-retry', 1));
    assert.equal(host.state, 'running');
    const statuses = fake.requests.filter((r) => r.status >= 429).map((r) => r.status);
    for (const s of [429, 503, 500]) assert.ok(statuses.includes(s), `a ${s} was answered and got past`);
    assert.equal(inserts(name).length, 1);
  });

  test('an API that keeps failing ends in a clear error after apiRetries', { timeout: 60_000 }, async () => {
    const gcp = await provider({ apiRetries: 2 });
    fake.failNext(3, 500, /^GET .*\/instances\/standby-ws-down-e1$/);
    const started = performance.now();
    await rejectsWith(gcp.get(`${ZONE}/standby-ws-down-e1`), 'STANDBY_ERR_PROVIDER_FAILED', /failed 3 times, last: 500 .*apiRetries/);
    assert.ok(performance.now() - started < 10_000);
  });

  test('an operation that ends in error is reported with its code and what to do; nothing is left', { timeout: 60_000 }, async () => {
    const gcp = await provider();
    const name = hostNameText({ workspace: 'ws-stockout', epoch: 1 });
    fake.failNextOperation('insert', { code: 'ZONE_RESOURCE_POOL_EXHAUSTED', message: "The zone 'projects/standby-test-project/zones/europe-west1-b' does not have enough resources available to fulfill the request. Try a different zone, or try again later.", httpStatus: 503 });
    const err = await rejectsWith(gcp.ensure(spec('ws-stockout', 1)), 'STANDBY_ERR_PROVIDER_FAILED', /could not insert standby VM standby-ws-stockout-e1 in europe-west1-b: ZONE_RESOURCE_POOL_EXHAUSTED: .*another zone or spot: false/);
    assert.deepEqual(err.context['errorCodes'], ['ZONE_RESOURCE_POOL_EXHAUSTED']);
    assert.equal(fake.instance(ZONE, name), undefined);
  });

  test('a start that fails after a preemption is reported, and the VM keeps its disk', { timeout: 60_000 }, async () => {
    const gcp = await provider();
    const name = hostNameText({ workspace: 'ws-nostart', epoch: 1 });
    await gcp.ensure(spec('ws-nostart', 1));
    fake.preempt(ZONE, name);
    fake.failNextOperation('start', { code: 'ZONE_RESOURCE_POOL_EXHAUSTED', message: 'no capacity', httpStatus: 503 });
    await rejectsWith(gcp.ensure(spec('ws-nostart', 1)), 'STANDBY_ERR_PROVIDER_FAILED', /could not start standby VM standby-ws-nostart-e1.*ZONE_RESOURCE_POOL_EXHAUSTED/);
    assert.equal(fake.instance(ZONE, name)?.status, 'TERMINATED');
    assert.ok(fake.disks().some((d) => d.name === name));
    const later = await gcp.ensure(spec('ws-nostart', 1));
    assert.equal(later.state, 'running', 'the next ensure starts it');
  });

  test('an operation that never ends is given up after operationTimeoutMs, with what it was doing', { timeout: 60_000 }, async () => {
    const gcp = await provider({ operationTimeoutMs: 1_000 });
    fake.stallNextOperation('insert');
    const started = performance.now();
    await rejectsWith(gcp.ensure(spec('ws-stuck', 1)), 'STANDBY_ERR_PROVIDER_FAILED', /GCP operation operation-\S+ \(insert standby-ws-stuck-e1 in europe-west1-b\) did not end within 1000 ms \(recovery\.standby\.operationTimeoutMs\); it is RUNNING/);
    const took = performance.now() - started;
    assert.ok(took >= 1_000 && took < 10_000, `${Math.round(took)} ms`);
  });

  test('an aborted ensure stops at once, mid-operation', { timeout: 60_000 }, async () => {
    const gcp = await provider();
    fake.stallNextOperation('insert');
    const abort = new AbortController();
    const ensuring = gcp.ensure(spec('ws-abort', 1), abort.signal);
    const name = hostNameText({ workspace: 'ws-abort', epoch: 1 });
    // wait for the create to be under way, then abort
    await waitFor('the create to be under way', () => inserts(name).length === 1, { timeoutMs: 20_000 });
    const started = performance.now();
    abort.abort(new Error('recovery cancelled'));
    await assert.rejects(ensuring, /recovery cancelled|aborted|cancel/i);
    assert.ok(performance.now() - started < 2_000, 'promptly');
  });

  test('stop and destroy are idempotent; destroy takes the disk too', { timeout: 60_000 }, async () => {
    const gcp = await provider();
    const name = hostNameText({ workspace: 'ws-gone', epoch: 7 });
    const host = await gcp.ensure(spec('ws-gone', 7));
    await gcp.stop(host.id);
    assert.equal(fake.instance(ZONE, name)?.status, 'TERMINATED');
    assert.ok(fake.disks().some((d) => d.name === name), 'stop keeps the disk');
    const stops = () => fake.operations().filter((o) => o.operationType === 'stop' && o.targetLink.endsWith(`/${name}`)).length;
    assert.equal(stops(), 1);
    await gcp.stop(host.id);
    assert.equal(stops(), 1, 'stopping a stopped VM asks nothing');
    assert.equal((await gcp.get(host.id))?.state, 'stopped');

    await gcp.destroy(host.id);
    assert.equal(fake.instance(ZONE, name), undefined);
    assert.equal(fake.disks().some((d) => d.name === name), false, 'no disk left billing');
    assert.equal(await gcp.get(host.id), undefined);
    await gcp.destroy(host.id);
    await gcp.stop(host.id);
    await gcp.destroy(name); // a bare name is in the configured zone
  });

  test('list finds the standby VMs of a workspace, whatever their epoch', { timeout: 60_000 }, async () => {
    const gcp = await provider();
    await gcp.ensure(spec('ws-list', 1));
    await gcp.ensure(spec('ws-list', 2));
    await gcp.ensure(spec('ws-list-not', 1));
    const hosts = await gcp.list('ws-list');
    assert.deepEqual(hosts.map((h) => h.id).sort(), [`${ZONE}/standby-ws-list-e1`, `${ZONE}/standby-ws-list-e2`]);
  });

  test('credentials and project: each missing or bad one names what to set, and no secret is quoted', { timeout: 60_000 }, async () => {
    const secret = 'PRIVATE-SECRET-do-not-log-42';
    const keyFile = join(dir, 'key.json');
    writeFileSync(keyFile, fake.credentialsJson, { mode: 0o600 });
    const openFile = join(dir, 'open-key.json');
    writeFileSync(openFile, fake.credentialsJson, { mode: 0o644 });
    const cases: { name: string; env: NodeJS.ProcessEnv; code: string; pattern: RegExp }[] = [
      { name: 'nothing set', env: { GCP_PROJECT_ID: fake.project }, code: 'STANDBY_ERR_PROVIDER_AUTH', pattern: /set GOOGLE_APPLICATION_CREDENTIALS .* or GCP_CREDENTIALS/ },
      { name: 'no project', env: { GCP_CREDENTIALS: fake.credentialsJson }, code: 'STANDBY_ERR_CONFIG_INVALID', pattern: /set GCP_PROJECT_ID/ },
      { name: 'GCP_CREDENTIALS not JSON', env: { GCP_PROJECT_ID: fake.project, GCP_CREDENTIALS: `{"private_key": "${secret}` }, code: 'STANDBY_ERR_PROVIDER_AUTH', pattern: /GCP_CREDENTIALS is not JSON/ },
      { name: 'GCP_CREDENTIALS of another kind', env: { GCP_PROJECT_ID: fake.project, GCP_CREDENTIALS: JSON.stringify({ type: 'api_key', key: secret }) }, code: 'STANDBY_ERR_PROVIDER_AUTH', pattern: /holds no usable credentials/ },
      { name: 'a key file that is not there', env: { GCP_PROJECT_ID: fake.project, GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'none.json') }, code: 'STANDBY_ERR_PROVIDER_AUTH', pattern: /GOOGLE_APPLICATION_CREDENTIALS names .*none\.json, which cannot be read \(ENOENT\)/ },
      { name: 'a key file others can read', env: { GCP_PROJECT_ID: fake.project, GOOGLE_APPLICATION_CREDENTIALS: openFile }, code: 'STANDBY_ERR_SECRETS_EXPOSED', pattern: /chmod 600/ },
    ];
    for (const c of cases) {
      const err = await rejectsWith(GcpStandbyProvider.create(config(), { env: c.env, endpoint: fake.endpoint }), c.code, c.pattern);
      const everything = `${err.message} ${JSON.stringify(err.context)} ${String(err.cause ?? '')}`;
      assert.ok(!everything.includes(secret) && !everything.includes('BEGIN PRIVATE KEY'), `${c.name}: no secret in the error`);
    }
    // a private key file works
    const gcp = await provider({}, { env: { GCP_PROJECT_ID: fake.project, GOOGLE_APPLICATION_CREDENTIALS: keyFile } });
    assert.equal(await gcp.get(`${ZONE}/standby-ws-nothing-e1`), undefined);
  });

  test('a key the API does not accept is an auth error naming the variables', { timeout: 60_000 }, async () => {
    const stranger = JSON.parse(fake.credentialsJson) as Record<string, string>;
    stranger['private_key'] = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const gcp = await provider({}, { env: { GCP_PROJECT_ID: fake.project, GCP_CREDENTIALS: JSON.stringify(stranger) } });
    await rejectsWith(gcp.ensure(spec('ws-denied', 1)), 'STANDBY_ERR_PROVIDER_AUTH', /GCP refused get standby-ws-denied-e1 \(401\).*GOOGLE_APPLICATION_CREDENTIALS or GCP_CREDENTIALS/);
    assert.equal(fake.instance(ZONE, 'standby-ws-denied-e1'), undefined);
  });

  test('an ssh key or user that would add a line to the metadata is refused before any call', { timeout: 60_000 }, async () => {
    const gcp = await provider();
    await rejectsWith(gcp.ensure(spec('ws-inject', 1, { sshPublicKey: `${KEY}\nroot:ssh-ed25519 AAAAC3Nza attacker` })), 'STANDBY_ERR_CONFIG_INVALID', /one OpenSSH public key line/);
    await rejectsWith(gcp.ensure(spec('ws-inject', 1, { sshUser: 'root:x' })), 'STANDBY_ERR_CONFIG_INVALID', /not a Linux user name/);
    assert.equal(fake.instance(ZONE, 'standby-ws-inject-e1'), undefined);
  });
});
