// What anyone who reaches the URL learns: the public
// status and the transition page say what happens in fixed words, with the
// phase, readiness and the backend's role only. A fence that fails with an
// error naming the standby's user@host:port, the receiver's command line and
// its stderr shows that error in the admin API, never on the public pages;
// metrics want the admin token.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, startTestProxy, startProxyWithBackends, type ProxyWithBackends, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

// what a real fence error carries: the target, the command line, the receiver's stderr
const SECRETISH = 'sb-secret-7f3a9c';
const FENCE_ERROR = `ssh fence-user@10.77.1.9:2222 ran "standby receive --fence 2 --state-dir /srv/${SECRETISH}": exit 1, stderr: refused ${SECRETISH}`;
const LEAKS = [SECRETISH, '10.77.1.9', 'fence-user', '2222', 'standby receive', 'gpu-1', 'cpu-1'];

describe('public pages in fixed words', () => {
  let world: ProxyWithBackends;
  let proxy: TestProxy;
  before(async () => {
    world = await startProxyWithBackends({
      fence: () => Promise.reject(new Error(FENCE_ERROR)),
      settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } },
    });
    proxy = world.proxy;
  });
  after(async () => {
    await world?.close();
  });

  test('a failover whose fence fails: its error is in the admin status, not in the public status or the page', async () => {
    const started = await proxy.api('failover', { method: 'POST' });
    assert.equal(started.status, 202);
    const admin = await waitFor('the fence error in the admin status', async () => {
      const s = (await (await proxy.api('status')).json()) as { lastFenceError: string | null };
      return s.lastFenceError?.includes(SECRETISH) ? s : undefined;
    });
    assert.equal(admin.lastFenceError, FENCE_ERROR);

    const res = await fetch(`${proxy.url}/_standby/status`, { signal: AbortSignal.timeout(5_000) });
    const text = await res.text();
    const status = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(status, { phase: 'failing_over', active: null, ready: false, message: 'The standby is being prepared...' });

    const page = await fetch(`${proxy.url}/some/file`, { headers: { accept: 'text/html' }, signal: AbortSignal.timeout(5_000) });
    assert.equal(page.status, 503);
    const html = await page.text();
    assert.match(html, /The standby is being prepared\.\.\./);
    assert.match(html, /Your workspace is moving to <strong>the CPU standby<\/strong>/);
    for (const leak of LEAKS) {
      assert.ok(!text.includes(leak), `the public status does not say ${leak}`);
      assert.ok(!html.includes(leak), `the page does not say ${leak}`);
    }
  });

  test('metrics want the admin token on the main listener: none or wrong is the uniform 401', async () => {
    for (const headers of [{}, { authorization: 'Bearer not-the-admin-token' }]) {
      const r = await fetch(`${proxy.url}/_standby/metrics`, { headers, signal: AbortSignal.timeout(5_000) });
      assert.equal(r.status, 401);
      const body = await r.text();
      assert.deepEqual(JSON.parse(body), { error: { code: 'STANDBY_ERR_UNAUTHORIZED', message: 'unauthorized' } });
      assert.ok(!body.includes('gpu-1') && !/nodejs_version/.test(body));
    }
    const ok = await fetch(`${proxy.url}/_standby/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5_000) });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /standby_epoch \d/);
  });
});

describe('metrics.listen: a listener of their own, without auth', () => {
  let proxy: TestProxy;
  before(async () => {
    proxy = await startTestProxy({
      primaryUrl: 'http://127.0.0.1:1',
      standbyUrl: 'http://127.0.0.1:2',
      fence: () => Promise.reject(new Error('no fence in this test')),
      settings: { metrics: { listen: { port: 0 } }, detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } },
    });
  });
  after(() => proxy?.close());

  test('served on loopback without a token; the main listener still wants one', async () => {
    assert.match(proxy.metricsUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, 'loopback by default');
    const r = await fetch(proxy.metricsUrl!, { signal: AbortSignal.timeout(5_000) });
    assert.equal(r.status, 200);
    const text = await r.text();
    assert.match(text, /standby_heartbeat_age_seconds\{host="gpu-1"\}/);
    const other = await fetch(proxy.metricsUrl!.replace('/metrics', '/api'), { signal: AbortSignal.timeout(5_000) });
    assert.equal(other.status, 404, 'nothing but the metrics there');
    const main = await fetch(`${proxy.url}/_standby/metrics`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(main.status, 401);
  });
});
