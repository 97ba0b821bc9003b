// A backend that drops a request: the proxy never answers 502: a navigation
// gets the transition page (which retries by itself), anything else 503 with
// Retry-After; it logs the failure with the side it was sent to, and goes on
// serving. The router learns the side from the error callback it gives
// http-proxy-3 per side (not from a per-request map: docs/benchmarks.md,
// proxy-profile), so this guards that path.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

describe('a backend that fails a request', () => {
  let gpu: Server;
  let cpu: WorkspaceServer;
  let proxy: TestProxy;
  before(async () => {
    // a GPU code-server that answers its health check and /ok, and drops every other request unanswered
    gpu = createServer((req, res) => {
      if (req.url === '/healthz' || req.url === '/ok') return void res.end('gpu');
      req.socket.destroy();
    });
    await new Promise<void>((resolve) => gpu.listen(0, '127.0.0.1', resolve));
    cpu = await startWorkspaceServer({ name: 'cpu' });
    proxy = await startTestProxy({
      primaryUrl: `http://127.0.0.1:${(gpu.address() as AddressInfo).port}`,
      standbyUrl: cpu.url,
      fence: () => Promise.reject(new Error('no fence in this test')),
      settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 10 } },
    });
  });
  after(async () => {
    await proxy?.close();
    await cpu?.close();
    gpu?.closeAllConnections();
    await new Promise((resolve) => gpu?.close(resolve));
  });

  test('a navigation gets the transition page (503, no-store), never an error page', async () => {
    const page = await fetch(`${proxy.url}/drop-me-page`, { headers: { accept: 'text/html,application/xhtml+xml' }, signal: AbortSignal.timeout(5_000) });
    assert.equal(page.status, 503);
    assert.equal(page.headers.get('retry-after'), '1');
    assert.equal(page.headers.get('cache-control'), 'no-store');
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const html = await page.text();
    assert.match(html, /<html/i);
    assert.doesNotMatch(html, /ECONNRESET|socket hang up|primary/);
  });

  test('anything else gets 503 with Retry-After in fixed words, the failure is logged with its side, and the next request is served', async () => {
    const failed = await fetch(`${proxy.url}/drop-me`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(failed.status, 503);
    assert.equal(failed.headers.get('retry-after'), '1');
    // fixed words: not the side, not the error code (the log has them)
    const said = await failed.text();
    assert.doesNotMatch(said, /primary|standby backend|gpu|E[A-Z]{4,}/);
    await waitFor('the failure in the log', () => proxy.logs.some((l) => l.msg === 'backend request failed' && l.url === '/drop-me'), { timeoutMs: 5_000 });
    assert.equal(proxy.logs.find((l) => l.msg === 'backend request failed' && l.url === '/drop-me')?.side, 'primary');
    const next = await fetch(`${proxy.url}/ok`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(next.status, 200);
    assert.equal(await next.text(), 'gpu');
  });
});
