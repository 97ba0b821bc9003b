// GET/PATCH /_standby/api/v1/settings and POST sync/confirm-deletes: behind
// the admin token; a PATCH validated with proxy.json's schema (the field, the
// value and what was expected named), applied at once and kept across a
// restart; a detector setting changed live is what the next probe uses.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { LiveSettingsAnswer, Problem } from '../../protocol/admin-api.ts';
import { startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

// dead backends: nothing serves, and nothing fails over in the test's time
const QUIET = { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } };

async function proxyAt(stateDir: string, more: Record<string, unknown> = {}, urls = { primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2' }): Promise<TestProxy> {
  const proxy = await startTestProxy({ ...urls, stateDir, settings: { ...QUIET, ...more } });
  cleanups.push(() => proxy.close());
  return proxy;
}

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'standby-settings-api-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const patch = (proxy: TestProxy, body: unknown) => proxy.api('settings', { method: 'PATCH', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

test('without the admin token: 401 for every settings endpoint, and nothing changes', async () => {
  const proxy = await proxyAt(scratch());
  for (const [method, path, body] of [['GET', 'settings', undefined], ['PATCH', 'settings', '{"autoFailover": false}'], ['POST', 'sync/confirm-deletes', undefined]] as const) {
    const res = await fetch(`${proxy.url}/_standby/api/v1/${path}`, { method, ...(body ? { body } : {}), headers: { authorization: 'Bearer not-the-admin-token' }, signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 401, `${method} ${path}`);
    assert.deepEqual(await res.json(), { error: { code: 'STANDBY_ERR_UNAUTHORIZED', message: 'unauthorized' } });
  }
  assert.equal(proxy.settings.config.autoFailover, true);
  assert.deepEqual(proxy.settings.overridden(), []);
});

test('GET: the settings in force, which are overridden, when each takes effect; no agent connected', async () => {
  // a Vast provider that is never asked anything: recovery configured, nothing provisioned
  const proxy = await proxyAt(scratch(), { recovery: { autoRecovery: false, gpu: { provider: 'vast', vast: { apiKey: 'test-key', apiUrl: 'http://127.0.0.1:1' } } } });
  const res = await proxy.api('settings');
  assert.equal(res.status, 200);
  const a = (await res.json()) as LiveSettingsAnswer;
  assert.deepEqual(a.settings.detector, { heartbeatIntervalMs: 60_000, missedHeartbeats: 100, probeIntervalMs: 250, passiveProbeIntervalMs: 2_000, probeTimeoutMs: 400, preemptionConfirmMs: 60_000 });
  assert.equal(a.settings.autoFailover, true);
  assert.equal(a.settings.recovery?.autoRecovery, false);
  assert.deepEqual(a.settings.agentSync, { delayMs: null, maxDelayMs: null, exclude: null });
  assert.deepEqual(a.settings.recovery?.gpu.vast, { gpuMaxPrice: 0.5, gpuMinRamGb: 8, regions: ['TH', 'VN', 'JP', 'EU'] });
  assert.deepEqual(a.overridden, []);
  assert.equal(a.effect['detector.probeTimeoutMs'], 'now');
  assert.equal(a.effect['autoFailover'], 'now');
  assert.equal(a.effect['recovery.autoRecovery'], 'now');
  assert.equal(a.effect['agentSync.delayMs'], 'agent');
  assert.equal(a.effect['recovery.standby.gcp.machineType'], 'next standby');
  assert.equal(a.effect['recovery.gpu.vast.gpuMaxPrice'], 'next GPU');
  assert.equal(a.agent, null);
});

test('PATCH: a bad value is a 400 naming the field, the value and what was expected; the rest of the request changes nothing', async () => {
  const proxy = await proxyAt(scratch());
  const cases: { body: string; status: number; code: string; message: RegExp }[] = [
    { body: JSON.stringify({ autoFailover: false, detector: { missedHeartbeats: 0 } }), status: 400, code: 'STANDBY_ERR_CONFIG_INVALID', message: /detector\.missedHeartbeats: got 0, expected at least 1 heartbeat/ },
    { body: JSON.stringify({ agentSync: { exclude: ['ok/', ''] } }), status: 400, code: 'STANDBY_ERR_CONFIG_INVALID', message: /agentSync\.exclude\.1: got "", expected a non-empty rsync pattern/ },
    { body: JSON.stringify({ agentSync: { delayMs: 2000, maxDelayMs: 500 } }), status: 400, code: 'STANDBY_ERR_CONFIG_INVALID', message: /agentSync\.maxDelayMs: got 500, expected agentSync\.maxDelayMs to be at least agentSync\.delayMs/ },
    { body: JSON.stringify({ recovery: { autoRecovery: false } }), status: 400, code: 'STANDBY_ERR_CONFIG_INVALID', message: /recovery\.autoRecovery: got false, expected nothing: proxy\.json has no recovery section/ },
    { body: '{"autoFailover": fals', status: 400, code: 'STANDBY_ERR_BAD_REQUEST', message: /not JSON/ },
  ];
  for (const c of cases) {
    const res = await proxy.api('settings', { method: 'PATCH', body: c.body, headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, c.status, c.body);
    const p = (await res.json()) as Problem;
    assert.equal(p.error.code, c.code, c.body);
    assert.match(p.error.message, c.message, c.body);
  }
  assert.equal(proxy.settings.config.autoFailover, true, 'the valid half of a refused request was not applied');
  const put = await proxy.api('settings', { method: 'PUT', body: '{}' });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get('allow'), 'GET, PATCH');
  await put.body?.cancel();
});

test('PATCH: applied at once, answered with the GET answer, and still in force after a restart', async () => {
  const dir = scratch();
  const first = await proxyAt(dir);
  const res = await patch(first, { autoFailover: false, detector: { passiveProbeIntervalMs: 3_000 }, agentSync: { delayMs: 1_500, exclude: ['logs/'] } });
  assert.equal(res.status, 200);
  const a = (await res.json()) as LiveSettingsAnswer;
  assert.equal(a.settings.autoFailover, false);
  assert.deepEqual(a.settings.agentSync, { delayMs: 1_500, maxDelayMs: null, exclude: ['logs/'] });
  assert.deepEqual(a.overridden, ['autoFailover', 'detector.passiveProbeIntervalMs', 'agentSync.delayMs', 'agentSync.exclude']);
  assert.equal(first.settings.config.detector.passiveProbeIntervalMs, 3_000);
  await first.close();
  cleanups.pop();

  const second = await proxyAt(dir);
  const again = (await (await second.api('settings')).json()) as LiveSettingsAnswer;
  assert.deepEqual(again.overridden, a.overridden);
  assert.equal(again.settings.autoFailover, false);
  assert.deepEqual(again.settings.agentSync.exclude, ['logs/']);
  assert.ok(second.logs.some((l) => String(l['msg']).startsWith('live settings override proxy.json: autoFailover = false (proxy.json: true)')), 'the start says what overrides what');
  // null: back to proxy.json's
  const back = (await (await patch(second, { autoFailover: null })).json()) as LiveSettingsAnswer;
  assert.equal(back.settings.autoFailover, true);
  assert.ok(!back.overridden.includes('autoFailover'));
});

test('detector settings apply at once: the next probe uses the new timeout', async () => {
  // a code-server that answers /healthz after 150 ms
  const slow: Server = createServer((_req, res) => void setTimeout(() => res.end('ok'), 150));
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => {
    slow.close(resolve);
    slow.closeAllConnections();
  }));
  const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const proxy = await proxyAt(scratch(), { detector: { probeIntervalMs: 100, passiveProbeIntervalMs: 100, probeTimeoutMs: 1_000 } }, { primaryUrl: url, standbyUrl: url });
  type Status = { backends: { side: string; probe: { ok: boolean; error: string | null } | null }[] };
  const probe = async () => ((await (await proxy.api('status')).json()) as Status).backends.find((b) => b.side === 'primary')!.probe;
  await waitFor('a probe answered within the 1000 ms timeout', async () => (await probe())?.ok === true, { timeoutMs: 10_000 });
  assert.equal((await patch(proxy, { detector: { probeTimeoutMs: 50 } })).status, 200);
  const failed = await waitFor('a probe cut at the new 50 ms timeout', async () => {
    const p = await probe();
    return p && !p.ok ? p : undefined;
  }, { timeoutMs: 10_000 });
  assert.equal(failed.error, 'no answer within 50 ms');
  assert.equal((await patch(proxy, { detector: { probeTimeoutMs: null } })).status, 200);
  await waitFor('probes answered again under proxy.json\'s 1000 ms', async () => (await probe())?.ok === true, { timeoutMs: 10_000 });
});

test('confirm-deletes with no agent connected: 503 naming the host and what to do instead', async () => {
  const proxy = await proxyAt(scratch());
  const res = await proxy.api('sync/confirm-deletes', { method: 'POST' });
  assert.equal(res.status, 503);
  const p = (await res.json()) as Problem;
  assert.equal(p.error.code, 'STANDBY_ERR_AGENT_UNREACHABLE');
  assert.match(p.error.message, /the agent of gpu-1 is not connected.*standby sync --confirm-deletes on gpu-1/);
  const get = await proxy.api('sync/confirm-deletes');
  assert.equal(get.status, 405);
  await get.body?.cancel();
});
