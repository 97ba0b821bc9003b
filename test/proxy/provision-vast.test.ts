// The `vast` GPU provider (proxy/provision/vast.ts) against the loopback stand-in
// for Vast.ai's REST API (test/fakes/vast-api.ts): the real client, real HTTP.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { StandbyError } from '../../core/errors.ts';
import { VastProvider, vastProviderSchema, vastHostState, countryOf, vastSshAddress, vastRequirements, type VastInstanceRow } from '../../proxy/provision/vast.ts';
import type { GpuLaunch, GpuOffer, GpuRequirements } from '../../proxy/provision/provider.ts';
import { fakeOffer, startFakeVastApi, type FakeVastApi, type FakeVastApiOptions } from '../fakes/vast-api.ts';
import { waitFor } from '../fixtures/wait-for.ts';

// every test ends within this, whatever the client or the fake do
const BOUND = { timeout: 30_000 };
const INVITATION = 'sbi_invitation-secret-0123456789';
const REQ: GpuRequirements = { minGpuRamGb: 8, maxPricePerHour: 0.5, regions: ['TH', 'VN', 'JP', 'EU'], diskGb: 40 };

const launch = (workspace: string, epoch: number): GpuLaunch => ({
  name: { workspace, epoch },
  image: 'pytorch/pytorch:latest',
  onstart: `curl -fsS https://proxy.example/install.sh | sh -s -- agent --invitation ${INVITATION}`,
  diskGb: 40,
  env: { STANDBY_ROLE: 'gpu' },
});

interface World {
  fake: FakeVastApi;
  provider: VastProvider;
  /** every log line the provider wrote */
  logs: () => string;
  make: (settings?: Record<string, unknown>) => VastProvider;
}

async function world(t: TestContext, settings: Record<string, unknown> = {}, fakeOptions: FakeVastApiOptions = {}): Promise<World> {
  const fake = await startFakeVastApi({ apiKey: 'vast-key-9f8e7d6c5b4a', ...fakeOptions });
  t.after(() => fake.close());
  let text = '';
  const log = pino({ level: 'debug' }, new Writable({ write(chunk: Buffer, _enc, cb) { text += chunk.toString(); cb(); } }));
  const make = (more: Record<string, unknown> = {}) =>
    new VastProvider(vastProviderSchema.parse({
      apiUrl: fake.apiUrl,
      apiKey: fake.apiKey,
      retryMinMs: 5,
      retryMaxMs: 20,
      searchIntervalMs: 5,
      requestTimeoutMs: 2_000,
      searchRetries: 3,
      ...settings,
      ...more,
    }), log);
  return { fake, provider: make(), logs: () => text, make };
}

const count = (fake: FakeVastApi, what: string) => fake.log.filter((l) => l.startsWith(what)).length;

async function rejection(p: Promise<unknown>): Promise<StandbyError> {
  try {
    await p;
  } catch (err) {
    return err as StandbyError;
  }
  assert.fail('expected a rejection');
}

test('search: verified, rentable offers with the GPU RAM under the cap; preferred regions first, then reliability, then price', BOUND, async (t) => {
  const { fake, provider } = await world(t);
  fake.offers = [
    fakeOffer(1, { geolocation: 'Bangkok, TH', dph_total: 0.45, reliability: 0.95 }),
    fakeOffer(2, { geolocation: 'Hanoi, VN', dph_total: 0.3, reliability: 0.99 }),
    fakeOffer(3, { geolocation: 'Germany, DE', dph_total: 0.2, reliability: 0.999 }),
    fakeOffer(4, { geolocation: 'Texas, US', dph_total: 0.1, reliability: 0.99 }),
    fakeOffer(5, { geolocation: 'Thailand, TH', dph_total: 0.4, reliability: 0.99 }),
    fakeOffer(6, { geolocation: 'Bangkok, TH', dph_total: 0.6 }), // over the cap
    fakeOffer(7, { geolocation: 'Bangkok, TH', dph_total: 0.2, gpu_ram: 6_000 }), // too little GPU RAM
    fakeOffer(8, { geolocation: 'Bangkok, TH', dph_total: 0.1, verified: false, verification: 'unverified' }),
    fakeOffer(9, { geolocation: 'Bangkok, TH', dph_total: 0.1, rentable: false }),
    fakeOffer(10, { geolocation: 'Tokyo, JP', dph_total: 0.35, reliability: 0.99 }),
    fakeOffer(11, { geolocation: 'Japan, JP', dph_total: 0.33, reliability: 0.99 }),
  ];
  const found = await provider.search(REQ);
  assert.equal(found.ok, true);
  assert.ok(found.ok);
  assert.deepEqual(found.offers.map((o) => [o.id, o.region]), [['5', 'TH'], ['1', 'TH'], ['2', 'VN'], ['11', 'JP'], ['10', 'JP'], ['3', 'EU'], ['4', 'US']]);
  const best = found.offers[0]!;
  assert.equal(best.pricePerHour, 0.4);
  assert.equal(best.gpuRamGb, 24.564);
  assert.equal(best.location, 'Thailand, TH');
  assert.equal(count(fake, 'POST /api/v0/bundles/'), 1);
});

test('search: nothing under the cap after searchRetries rounds says so, with the cheapest offer seen', BOUND, async (t) => {
  const { fake, provider } = await world(t, { searchRetries: 4 });
  fake.offers = [
    fakeOffer(1, { geolocation: 'Bangkok, TH', dph_total: 0.7 }),
    fakeOffer(2, { geolocation: 'Ohio, US', dph_total: 0.62 }),
    fakeOffer(3, { geolocation: 'Germany, DE', dph_total: 0.65 }),
    fakeOffer(4, { geolocation: 'Ohio, US', dph_total: 0.3, gpu_ram: 4_000 }), // cheaper, but under the RAM floor
  ];
  const started = performance.now();
  const found = await provider.search(REQ);
  assert.equal(found.ok, false);
  assert.ok(!found.ok);
  assert.equal(found.reason, 'no offer under $0.50/h in TH, VN, JP, EU (cheapest seen: $0.62/h in US)');
  assert.equal(found.cheapestSeen?.id, '2');
  assert.equal(found.attempts, 4);
  assert.equal(count(fake, 'POST /api/v0/bundles/'), 4);
  assert.ok(performance.now() - started < 5_000);
});

test('search: no offer at all names the RAM floor', BOUND, async (t) => {
  const { provider } = await world(t, { searchRetries: 2 });
  const found = await provider.search(REQ);
  assert.ok(!found.ok);
  assert.equal(found.reason, 'no offer under $0.50/h in TH, VN, JP, EU (no offer with 8 GB of GPU RAM seen)');
  assert.equal(found.cheapestSeen, undefined);
});

test('search: 429 and 5xx are retried with backoff, then the offers come', BOUND, async (t) => {
  const { fake, provider } = await world(t, { searchRetries: 5 });
  fake.offers = [fakeOffer(1)];
  fake.fail(2, 429, { path: /bundles/ });
  fake.fail(1, 503, { path: /bundles/ });
  const found = await provider.search(REQ);
  assert.ok(found.ok);
  assert.deepEqual(found.offers.map((o) => o.id), ['1']);
  assert.equal(count(fake, 'POST /api/v0/bundles/'), 4);
});

test('search: a Vast API that fails every round ends in PROVIDER_FAILED after searchRetries tries, not an endless loop', BOUND, async (t) => {
  const { fake, provider } = await world(t, { searchRetries: 4 });
  fake.offers = [fakeOffer(1)];
  fake.fail(100, 500);
  const err = await rejection(provider.search(REQ));
  assert.ok(err instanceof StandbyError);
  assert.equal(err.code, 'STANDBY_ERR_PROVIDER_FAILED');
  assert.match(err.message, /failed every offer search \(4 tries, last: HTTP 500/);
  assert.equal(count(fake, 'POST /api/v0/bundles/'), 4);
});

test('search: the whole search is bounded by searchTimeoutMs', BOUND, async (t) => {
  // 1000 rounds 50 ms apart would take 50 s; the search stops at its 1 s budget
  const { fake, provider } = await world(t, { searchRetries: 1000, searchIntervalMs: 50, searchTimeoutMs: 1_000 });
  fake.offers = [fakeOffer(1, { dph_total: 0.9 })];
  const started = performance.now();
  const found = await provider.search(REQ);
  const took = performance.now() - started;
  assert.ok(!found.ok);
  assert.ok(found.attempts >= 1 && found.attempts < 1000, `attempts ${found.attempts}`);
  assert.ok(took < 5_000, `took ${took} ms`);
});

test('search: slow answers (none within requestTimeoutMs) are retried, then the offers come', BOUND, async (t) => {
  const { fake, provider } = await world(t, { requestTimeoutMs: 100, searchRetries: 5 });
  fake.offers = [fakeOffer(1)];
  fake.delayMs = 400;
  const searching = provider.search(REQ);
  await waitFor('a first slow round', () => count(fake, 'POST /api/v0/bundles/') >= 1);
  fake.delayMs = 0; // the held answer still comes too late
  const found = await searching;
  assert.ok(found.ok);
  assert.deepEqual(found.offers.map((o) => o.id), ['1']);
  assert.ok(count(fake, 'POST /api/v0/bundles/') >= 2);
});

test('search: a Vast API that never answers in time ends in PROVIDER_FAILED naming the timeout', BOUND, async (t) => {
  const { fake, provider } = await world(t, { requestTimeoutMs: 100, searchRetries: 3 });
  fake.offers = [fakeOffer(1)];
  fake.delayMs = 1_000;
  const err = await rejection(provider.search(REQ));
  assert.equal(err.code, 'STANDBY_ERR_PROVIDER_FAILED');
  assert.match(err.message, /failed every offer search \(3 tries, last: no answer to POST \/api\/v0\/bundles\/ within 100 ms\)/);
});

test('search: 429s are retried after a doubling backoff, not at once', BOUND, async (t) => {
  const { fake, provider } = await world(t, { retryMinMs: 100, retryMaxMs: 1_000, searchRetries: 5 });
  fake.offers = [fakeOffer(1)];
  fake.fail(3, 429, { path: /bundles/ });
  const started = performance.now();
  const found = await provider.search(REQ);
  const took = performance.now() - started;
  assert.ok(found.ok);
  assert.equal(count(fake, 'POST /api/v0/bundles/'), 4);
  // 100, 200 and 400 ms, each +-20 %: at least 560 ms
  assert.ok(took >= 560, `took ${Math.round(took)} ms`);
});

test('search: a price spike with throttling between rounds still ends in the cap\'s result, naming the cheapest seen', BOUND, async (t) => {
  const { fake, provider } = await world(t, { searchRetries: 6 });
  fake.offers = [fakeOffer(1, { geolocation: 'Ohio, US', dph_total: 0.62 }), fakeOffer(2, { geolocation: 'Bangkok, TH', dph_total: 0.9 })];
  fake.fail(2, 429, { path: /bundles/ });
  fake.fail(1, 502, { path: /bundles/ });
  const found = await provider.search(REQ);
  assert.ok(!found.ok);
  assert.equal(found.reason, 'no offer under $0.50/h in TH, VN, JP, EU (cheapest seen: $0.62/h in US)');
  assert.equal(found.attempts, 6, 'throttled rounds count as rounds');
  assert.equal(count(fake, 'POST /api/v0/bundles/'), 6);
});

test('search: an offer under the cap that appears in a later round is taken', BOUND, async (t) => {
  const { fake, provider } = await world(t, { searchRetries: 200, searchIntervalMs: 50 });
  fake.offers = [fakeOffer(1, { dph_total: 0.7 })];
  const searching = provider.search(REQ);
  await waitFor('two rounds over the cap', () => count(fake, 'POST /api/v0/bundles/') >= 2);
  fake.offers.push(fakeOffer(2, { dph_total: 0.45, geolocation: 'Tokyo, JP' }));
  const found = await searching;
  assert.ok(found.ok);
  assert.deepEqual(found.offers.map((o) => [o.id, o.region]), [['2', 'JP']]);
});

test('a key the API refuses: PROVIDER_AUTH at once, naming what to check, never the key', BOUND, async (t) => {
  const { fake, make, logs } = await world(t);
  fake.offers = [fakeOffer(1)];
  const wrong = make({ apiKey: 'wrong-key-0123456789abcdef' });
  for (const call of [() => wrong.search(REQ), () => wrong.get('123'), () => wrong.list('ws'), () => wrong.destroy('123')]) {
    const err = await rejection(call());
    assert.ok(err instanceof StandbyError);
    assert.equal(err.code, 'STANDBY_ERR_PROVIDER_AUTH');
    assert.match(err.message, /the Vast API refused the key \(HTTP 401.*\): check VAST_API_KEY \/ recovery\.gpu\.vast\.apiKey/);
    assert.ok(!err.message.includes('wrong-key') && !JSON.stringify(err.context).includes('wrong-key'));
  }
  assert.equal(fake.requests, 4, 'a refused key is not retried');
  assert.ok(!logs().includes('wrong-key'));
});

test('the key comes from VAST_API_KEY when the settings have none; no key at all is refused at construction', BOUND, async (t) => {
  const { fake } = await world(t);
  fake.offers = [fakeOffer(1)];
  const settings = vastProviderSchema.parse({ apiUrl: fake.apiUrl, searchRetries: 1 });
  const fromEnv = new VastProvider(settings, undefined, { VAST_API_KEY: fake.apiKey });
  const found = await fromEnv.search(REQ);
  assert.ok(found.ok);
  assert.throws(() => new VastProvider(settings, undefined, {}), (err: StandbyError) => err.code === 'STANDBY_ERR_PROVIDER_AUTH' && /VAST_API_KEY/.test(err.message));
});

test('create: image, onstart, disk, env, runtype ssh and the label; get follows it to running with a direct SSH address', BOUND, async (t) => {
  const { fake, provider, logs } = await world(t);
  fake.offers = [fakeOffer(31, { dph_total: 0.42 })];
  const found = await provider.search(REQ);
  assert.ok(found.ok);
  const host = await provider.create(found.offers[0]!, launch('WS-1', 3));
  assert.equal(host.provider, 'vast');
  assert.deepEqual(host.name, { workspace: 'ws-1', epoch: 3 });
  assert.notEqual(host.state, 'running');
  assert.equal(host.ssh, undefined);
  const [made] = fake.instances();
  assert.equal(made!.label, 'standby-ws-1-e3');
  assert.equal(made!.image_uuid, 'pytorch/pytorch:latest');
  assert.equal(made!.onstart, launch('ws-1', 3).onstart);
  assert.equal(made!.image_runtype, 'ssh');
  assert.equal(made!.disk_space, 40);
  assert.deepEqual(made!.extra_env, [['-p 8080:8080', '1'], ['STANDBY_ROLE', 'gpu']]);

  const running = await waitFor('the instance running', async () => {
    const now = await provider.get(host.id);
    return now?.state === 'running' ? now : undefined;
  }, { timeoutMs: 5_000 });
  assert.deepEqual(running.ssh, { host: '127.0.0.1', port: 40_000 + (Number(host.id) % 10_000), user: 'root' });
  assert.equal(running.pricePerHour, 0.42);
  assert.match(running.detail, /^running/);
  assert.ok(!logs().includes(INVITATION), 'the onstart script (with its invitation) is not logged');
  assert.ok(!logs().includes(fake.apiKey));
});

test('get: a machine without open ports is reached through Vast\'s SSH proxy (ssh_host, ssh_port)', BOUND, async (t) => {
  const { fake, provider } = await world(t);
  fake.offers = [fakeOffer(32, { direct_port_count: 0 })];
  const found = await provider.search(REQ);
  assert.ok(found.ok);
  const host = await provider.create(found.offers[0]!, launch('ws', 1));
  const running = await waitFor('running', async () => (await provider.get(host.id))?.ssh, { timeoutMs: 5_000 });
  assert.deepEqual(running, { host: '127.0.0.1', port: 41_000 + (Number(host.id) % 10_000), user: 'root' });
});

test('get: an instance stuck loading stays creating without SSH; one running without SSH has no address; one that dies is failed; a destroyed one is undefined', BOUND, async (t) => {
  const { fake, provider } = await world(t, {}, { bootMs: 100, dieMs: 200 });
  fake.offers = [fakeOffer(41), fakeOffer(42), fakeOffer(43), fakeOffer(44)];
  fake.boot = 'stuck-loading';
  const stuck = await provider.create(fakeAsOffer(41), launch('ws', 1));
  fake.boot = 'dies';
  const dying = await provider.create(fakeAsOffer(42), launch('ws', 2));
  fake.boot = 'no-ssh';
  const sshless = await provider.create(fakeAsOffer(44), launch('ws', 4));
  fake.boot = 'running';
  const killed = await provider.create(fakeAsOffer(43), launch('ws', 3));

  const failed = await waitFor('the dying instance failed', async () => {
    const now = await provider.get(dying.id);
    return now?.state === 'failed' ? now : undefined;
  }, { timeoutMs: 5_000 });
  assert.match(failed.detail, /^exited: Error/);
  const loading = await provider.get(stuck.id);
  assert.equal(loading?.state, 'creating');
  assert.equal(loading?.ssh, undefined);
  assert.match(loading?.detail ?? '', /^loading/);

  const noSsh = await waitFor('the SSH-less instance running', async () => {
    const now = await provider.get(sshless.id);
    return now?.state === 'running' ? now : undefined;
  }, { timeoutMs: 5_000 });
  assert.equal(noSsh.ssh, undefined);

  await waitFor('running', async () => (await provider.get(killed.id))?.state === 'running', { timeoutMs: 5_000 });
  fake.kill(Number(killed.id));
  assert.equal((await provider.get(killed.id))?.state, 'failed');
  await provider.destroy(killed.id);
  assert.equal(await provider.get(killed.id), undefined);
});

test('create: an answer lost after the instance was made does not rent a second GPU, in the same call or after a restart', BOUND, async (t) => {
  const { fake, make, logs } = await world(t, { requestTimeoutMs: 300 });
  fake.offers = [fakeOffer(51), fakeOffer(52)];
  fake.loseCreateAnswers(1);
  const first = make();
  const host = await first.create(fakeAsOffer(51), launch('ws', 7));
  assert.equal(count(fake, 'PUT /api/v0/asks/'), 1);
  assert.equal(fake.instances().length, 1);
  assert.equal(host.id, String(fake.instances()[0]!.id));
  assert.deepEqual(host.name, { workspace: 'ws', epoch: 7 });

  // a proxy restarted mid-provisioning asks again, even from another offer
  const restarted = make();
  const again = await restarted.create(fakeAsOffer(52), launch('ws', 7));
  assert.equal(again.id, host.id);
  assert.equal(count(fake, 'PUT /api/v0/asks/'), 1);
  assert.equal(fake.instances().length, 1);
  assert.ok(!logs().includes(fake.apiKey));
});

test('create: a taken offer is PROVIDER_FAILED naming the next step; 5xx on create is retried after looking for the label', BOUND, async (t) => {
  const { fake, provider } = await world(t);
  fake.offers = [fakeOffer(61, { rentable: false }), fakeOffer(62)];
  const err = await rejection(provider.create(fakeAsOffer(61), launch('ws', 1)));
  assert.equal(err.code, 'STANDBY_ERR_PROVIDER_FAILED');
  assert.match(err.message, /HTTP 404: Instance type by id 61 is not available.*search again/);
  assert.equal(err.context.vastError, 'no_such_ask');

  fake.fail(2, 502, { method: 'PUT', path: /asks/ });
  const host = await provider.create(fakeAsOffer(62), launch('ws', 2));
  assert.equal(fake.instances().length, 1);
  assert.equal(host.id, String(fake.instances()[0]!.id));
  assert.equal(count(fake, 'PUT /api/v0/asks/62/'), 3);
  // every try looked for the label first
  assert.ok(count(fake, 'GET /api/v1/instances/') >= 3);
});

test('list: our hosts for a workspace, by label, across pages; destroy is idempotent', BOUND, async (t) => {
  const { fake, provider } = await world(t);
  for (let id = 1; id <= 30; id++) fake.setStatus(id, 'running'); // someone else's instances, unlabelled: the first page and more
  fake.offers = [fakeOffer(71), fakeOffer(72), fakeOffer(73)];
  const a1 = await provider.create(fakeAsOffer(71), launch('alpha', 1));
  const a2 = await provider.create(fakeAsOffer(72), launch('alpha', 2));
  await provider.create(fakeAsOffer(73), launch('beta', 1));

  const alpha = await provider.list('alpha');
  assert.deepEqual(alpha.map((h) => h.id).sort(), [a1.id, a2.id].sort());
  assert.deepEqual(alpha.map((h) => h.name?.epoch).sort(), [1, 2]);
  assert.ok(count(fake, 'GET /api/v1/instances/') >= 2, 'it read more than one page');

  await provider.destroy(a1.id);
  await provider.destroy(a1.id); // already gone
  await provider.destroy('8888'); // never existed
  assert.deepEqual((await provider.list('alpha')).map((h) => h.id), [a2.id]);
  assert.equal(await provider.get(a1.id), undefined);
  assert.equal(count(fake, 'DELETE /api/v0/instances/'), 3);
});

test('get, list and destroy retry 429/5xx and slow answers, then give up with PROVIDER_FAILED', BOUND, async (t) => {
  const { fake, provider, make } = await world(t, { requestRetries: 3 });
  fake.setStatus(5, 'running');
  fake.fail(2, 429, { method: 'GET' });
  assert.equal((await provider.get('5'))?.state, 'running');

  fake.fail(100, 503, { method: 'DELETE' });
  const err = await rejection(provider.destroy('5'));
  assert.equal(err.code, 'STANDBY_ERR_PROVIDER_FAILED');
  assert.match(err.message, /did not destroy instance 5 in 3 tries \(last: HTTP 503/);
  assert.equal(count(fake, 'DELETE /api/v0/instances/5/'), 3);

  fake.delayMs = 500;
  const slow = make({ requestTimeoutMs: 100, requestRetries: 2 });
  const started = performance.now();
  const late = await rejection(slow.get('5'));
  assert.equal(late.code, 'STANDBY_ERR_PROVIDER_FAILED');
  assert.match(late.message, /no answer to GET \/api\/v0\/instances\/5\/ within 100 ms/);
  assert.ok(performance.now() - started < 2_000);
});

test('abort: a search waiting between rounds, and a request in flight, end at once', BOUND, async (t) => {
  const { fake, provider } = await world(t, { searchRetries: 10, searchIntervalMs: 60_000 });
  fake.offers = [fakeOffer(1, { dph_total: 0.9 })];
  const ac = new AbortController();
  const started = performance.now();
  const searching = provider.search(REQ, ac.signal);
  await waitFor('the first round', () => count(fake, 'POST /api/v0/bundles/') === 1);
  ac.abort();
  await assert.rejects(searching, { name: 'AbortError' });
  assert.ok(performance.now() - started < 2_000);

  fake.delayMs = 10_000;
  const ac2 = new AbortController();
  const started2 = performance.now();
  const getting = provider.get('1', ac2.signal);
  await waitFor('the request in flight', () => fake.log.some((l) => l.startsWith('GET /api/v0/instances/1/')));
  ac2.abort();
  await assert.rejects(getting, { name: 'AbortError' });
  assert.ok(performance.now() - started2 < 2_000);
  assert.equal(count(fake, 'GET /api/v0/instances/1/'), 1, 'an abort is not retried');
});

test('ids that are not Vast ids are refused before any request', BOUND, async (t) => {
  const { fake, provider } = await world(t);
  for (const id of ['../asks/1', '1/ssh', '', 'abc']) {
    const err = await rejection(provider.get(id));
    assert.equal(err.code, 'STANDBY_ERR_PROVIDER_FAILED');
  }
  assert.equal(fake.requests, 0);
});

test('Vast states map to ours', BOUND, () => {
  const cases: { name: string; row: VastInstanceRow; state: string }[] = [
    { name: 'provisioning', row: { actual_status: null, intended_status: 'running', cur_state: 'running' }, state: 'creating' },
    { name: 'loading', row: { actual_status: 'loading', intended_status: 'running' }, state: 'creating' },
    { name: 'created', row: { actual_status: 'created', intended_status: 'running' }, state: 'creating' },
    { name: 'running', row: { actual_status: 'running', intended_status: 'running', cur_state: 'running' }, state: 'running' },
    { name: 'exited', row: { actual_status: 'exited', intended_status: 'running' }, state: 'failed' },
    { name: 'offline', row: { actual_status: 'offline', intended_status: 'running' }, state: 'failed' },
    { name: 'unknown', row: { actual_status: 'unknown', intended_status: 'running' }, state: 'failed' },
    { name: 'stopping', row: { actual_status: 'running', intended_status: 'stopped' }, state: 'stopping' },
    { name: 'stopped', row: { actual_status: 'stopped', intended_status: 'stopped', cur_state: 'stopped' }, state: 'stopped' },
    { name: 'destroyed', row: { actual_status: 'running', intended_status: 'running', cur_state: 'unloaded' }, state: 'gone' },
  ];
  for (const c of cases) assert.equal(vastHostState(c.row), c.state, c.name);
  assert.equal(countryOf('Bangkok, TH'), 'TH');
  assert.equal(countryOf('Japan, JP'), 'JP');
  assert.equal(countryOf('TW'), 'TW');
  assert.equal(countryOf(''), undefined);
  assert.equal(countryOf(null), undefined);
  // hostile SSH fields are ignored rather than passed to ssh
  assert.equal(vastSshAddress({ ssh_host: '-oProxyCommand=x', ssh_port: 22 }), undefined);
  assert.equal(vastSshAddress({ ssh_host: 'ssh4.vast.ai', ssh_port: 70_000 }), undefined);
  assert.deepEqual(vastSshAddress({ ssh_host: 'ssh4.vast.ai', ssh_port: 12_345, image_runtype: 'jupyter_direc ssh_direc ssh_proxy' }), { host: 'ssh4.vast.ai', port: 12_346, user: 'root' });
  assert.deepEqual(vastRequirements(vastProviderSchema.parse({})), { minGpuRamGb: 8, maxPricePerHour: 0.5, regions: ['TH', 'VN', 'JP', 'EU'], diskGb: 50 });
});

/** A GpuOffer for a fake offer id, as search would give it. */
function fakeAsOffer(id: number): GpuOffer {
  return { id: String(id), pricePerHour: 0.4, gpuName: 'RTX 4090', gpuCount: 1, gpuRamGb: 24.564, location: 'Bangkok, TH', region: 'TH', reliability: 0.99 };
}

test('stop: the instance is asked to stop with its disk kept (intended stopped), a 5xx is retried, a gone one is done', BOUND, async (t) => {
  const { fake, provider } = await world(t);
  fake.offers = [fakeOffer(41)];
  const found = await provider.search(REQ);
  assert.ok(found.ok);
  const host = await provider.create(found.offers[0]!, launch('ws-stop', 2));
  await waitFor('the instance running', async () => (await provider.get(host.id))?.state === 'running', { timeoutMs: 5_000 });
  fake.fail(1, 503, { method: 'PUT', path: /instances/ });
  await provider.stop(host.id);
  const row = fake.instances().find((i) => String(i['id']) === host.id);
  assert.equal(row?.['intended_status'], 'stopped');
  assert.ok(['stopping', 'stopped'].includes((await provider.get(host.id))!.state));
  assert.equal(count(fake, `PUT /api/v0/instances/${host.id}/`), 2, 'the 503 was retried');
  await provider.destroy(host.id);
  await provider.stop(host.id); // gone: nothing bills, nothing to do
});
