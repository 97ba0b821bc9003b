// The GPU search reads the settings in force when it starts: a price cap and
// regions changed live (PATCH settings) are what the next search asks for,
// against the Vast.ai API's fake; the proxy and its state machine are real.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fakeOffer, startFakeVastApi } from '../fakes/vast-api.ts';
import { startTestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('a GPU price cap and regions changed live: the next search uses them', { timeout: 60_000 }, async (t) => {
  const fake = await startFakeVastApi({ apiKey: 'vast-key-settings' });
  t.after(() => fake.close());
  fake.offers.splice(0, fake.offers.length, fakeOffer(1, { dph_total: 0.42, geolocation: 'Dallas, US' }), fakeOffer(2, { dph_total: 0.9, geolocation: 'Tokyo, JP' }));
  const proxy = await startTestProxy({
    primaryUrl: 'http://127.0.0.1:1',
    standbyUrl: 'http://127.0.0.1:2',
    fence: async () => ({ waitedMs: 0, killed: 0 }),
    settings: {
      detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 },
      recovery: { autoRecovery: false, attempts: 1, gpu: { provider: 'vast', vast: { apiUrl: fake.apiUrl, apiKey: fake.apiKey, searchRetries: 1, searchIntervalMs: 0 } } },
    },
  });
  t.after(() => proxy.close());
  const patch = await proxy.api('settings', { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ recovery: { gpu: { vast: { gpuMaxPrice: 0.3, regions: ['JP'] } } } }) });
  assert.equal(patch.status, 200);
  await patch.body?.cancel();

  const failover = await proxy.api('failover', { method: 'POST' });
  assert.equal(failover.status, 202);
  await failover.body?.cancel();
  await waitFor('the standby serving', () => proxy.store.state.phase === 'failed_over', { timeoutMs: 10_000 });
  const begun = await proxy.api('recovery', { method: 'POST' });
  assert.equal(begun.status, 202);
  await begun.body?.cancel();
  await waitFor('the recovery giving up', () => proxy.store.state.recovery?.step === 'gave-up', { timeoutMs: 30_000 });
  // proxy.json's cap (0.50) would have rented the $0.42 offer
  assert.match(proxy.store.state.recovery!.error!, /no offer under \$0\.30\/h in JP \(cheapest seen: \$0\.42\/h in US\)/);
  assert.equal(fake.instances().length, 0, 'nothing was rented');
});
