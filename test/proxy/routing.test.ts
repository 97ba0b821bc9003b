// Routing through the proxy to a real backend process: HTTP untouched (method,
// path, query, body, cookies, Host) with X-Forwarded-* added, WebSocket
// upgrades, the reserved prefix, the public status and the admin API's auth.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { ADMIN_TOKEN, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

function send(url: string, o: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: o.method ?? 'GET', path: o.path, headers: o.headers ?? {}, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(o.body);
  });
}

function wsRoundTrip(url: string, message: string, headers: Record<string, string> = {}): Promise<{ hello: unknown; echo: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 5_000 });
    let hello: unknown;
    ws.on('message', (data) => {
      if (hello === undefined) {
        hello = JSON.parse(data.toString());
        ws.send(message);
      } else {
        resolve({ hello, echo: data.toString() });
        ws.close();
      }
    });
    ws.on('error', reject);
  });
}

describe('routing to the active backend', () => {
  let gpu: WorkspaceServer;
  let cpu: WorkspaceServer;
  let proxy: TestProxy;
  before(async () => {
    [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
    // no agent in this suite: a long heartbeat window keeps the proxy in its normal phase
    proxy = await startTestProxy({ primaryUrl: gpu.url, standbyUrl: cpu.url, fence: () => Promise.reject(new Error('no fence in this test')), settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 10 } } });
  });
  after(async () => {
    await proxy?.close();
    await Promise.all([gpu?.close(), cpu?.close()]);
  });

  test('HTTP goes to the GPU untouched: method, path, query, body, cookies and Host; X-Forwarded-* added', async () => {
    const r = await send(proxy.url, {
      method: 'POST',
      path: '/some/path?folder=/workspace&x=%20y',
      headers: { host: 'dev.example.com', cookie: 'key=abc; other=1', 'content-type': 'application/json' },
      body: '{"hello":"world"}',
    });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as { name: string; method: string; url: string; headers: Record<string, string>; body: string };
    assert.equal(seen.name, 'gpu');
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/some/path?folder=/workspace&x=%20y');
    assert.equal(seen.body, '{"hello":"world"}');
    assert.equal(seen.headers.host, 'dev.example.com');
    assert.equal(seen.headers.cookie, 'key=abc; other=1');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], 'dev.example.com');
    assert.match(String(r.headers['set-cookie']), /served-by=gpu/);
  });

  test('WebSocket upgrades go through, both ways, with the Host kept', async () => {
    const r = await wsRoundTrip(`${proxy.url.replace('http', 'ws')}/stable-abc/?reconnectionToken=1`, 'ping through the proxy', { host: 'dev.example.com' });
    assert.deepEqual(r.hello, { hello: 'gpu', url: '/stable-abc/?reconnectionToken=1', host: 'dev.example.com' });
    assert.equal(r.echo, 'ping through the proxy');
  });

  test('the reserved prefix is the proxy\'s: public health and status, nothing of it reaches the backend', async () => {
    const h = await send(proxy.url, { path: '/_standby/healthz' });
    assert.equal(h.status, 200);
    const s = await send(proxy.url, { path: '/_standby/status' });
    // no agent ever connected here: a first run waits for its GPU (and routes to it meanwhile)
    assert.deepEqual(JSON.parse(s.body), { phase: 'waiting', active: { role: 'primary' }, ready: true, message: 'Waiting for the GPU: its agent has not connected yet.' });
    const unknown = await send(proxy.url, { path: '/_standby/nothing-here' });
    assert.equal(unknown.status, 404);
  });

  test('the admin API wants the admin token: missing or wrong is 401, right is 200', async () => {
    const none = await send(proxy.url, { path: '/_standby/api/v1/status' });
    assert.equal(none.status, 401);
    assert.deepEqual(JSON.parse(none.body), { error: { code: 'STANDBY_ERR_UNAUTHORIZED', message: 'unauthorized' } });
    const wrong = await send(proxy.url, { path: '/_standby/api/v1/status', headers: { authorization: 'Bearer nope-nope-nope' } });
    assert.equal(wrong.status, 401);
    const ok = await proxy.api('status');
    assert.equal(ok.status, 200);
    const body = (await ok.json()) as { phase: string; active: string; epoch: number; backends: { id: string }[] };
    assert.equal(body.active, 'primary');
    assert.equal(body.epoch, 1);
    assert.deepEqual(body.backends.map((b) => b.id), ['gpu-1', 'cpu-1']);
    const assoc = (await (await proxy.api('associations')).json()) as { associations: unknown[] };
    assert.deepEqual(assoc.associations, [{ gpu: 'gpu-1', gpuProvider: null, gpuProviderId: null, standby: 'cpu-1', standbyAddress: '127.0.0.1:22', standbyZone: null, syncEnabled: true, active: 'primary', epoch: 1 }]);
    const events = (await (await proxy.api('events')).json()) as { events: { type: string }[] };
    assert.equal(events.events[0]?.type, 'started');
    const wrongMethod = await proxy.api('failover');
    assert.equal(wrongMethod.status, 405);
  });

  test('metrics are served in the Prometheus format, with the admin token', async () => {
    const m = await send(proxy.url, { path: '/_standby/metrics', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(m.status, 200);
    assert.match(m.body, /standby_heartbeat_age_seconds\{host="gpu-1"\}/);
    assert.match(m.body, /standby_epoch 1/);
    assert.match(m.body, /standby_active_backend\{side="primary"\} 1/);
  });
});
