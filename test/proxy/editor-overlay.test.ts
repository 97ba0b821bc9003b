// The injected script's overlay in Chromium, with a page that carries the
// workbench's marker (a small real HTTP server per side, light enough to
// run beside the code-server tests): a doubt the proxy clears (its probe of
// the GPU's code-server fails, then answers again) shows the overlay and
// takes it away with no reload; a route move shows it and reloads the tab
// into the other side by itself.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { AGENT_PATH, type Grant, type Heartbeat } from '../../protocol/messages.ts';
import { WORKBENCH_MARKER } from '../../proxy/editor-inject.ts';
import { TO_STANDBY_TEXT } from '../../proxy/pages/editor-script.ts';
import { launchChromium, noChromium, type Browser } from '../fixtures/chromium.ts';
import { AGENT_TOKEN, startTestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

interface Side {
  url: string;
  /** what /healthz answers */
  health: number;
  close(): Promise<void>;
}

/** A code-server stand-in: /healthz, and a page at / that carries the workbench's marker and names the side. */
async function startSide(name: string): Promise<Side> {
  const side = { url: '', health: 200, close: async () => {} };
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(side.health, { 'content-type': 'text/plain' });
      res.end(`${side.health}\n`);
      return;
    }
    const page = `<!DOCTYPE html><html><head><meta charset="utf-8"><meta ${WORKBENCH_MARKER} data-settings="{}"><title>${name}</title></head><body><p id="side">${name}</p></body></html>`;
    res.writeHead(200, { 'content-type': 'text/html', 'content-security-policy': "default-src 'self'; script-src 'self'", 'content-length': Buffer.byteLength(page) });
    res.end(page);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  side.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  side.close = () => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  return side;
}

/** The GPU's agent, as far as the proxy can tell: heartbeats every 200 ms at the epoch it was granted. */
async function heartbeats(proxyUrl: string): Promise<{ close(): void; paused: boolean }> {
  const ws = new WebSocket(`${proxyUrl.replace('http', 'ws')}${AGENT_PATH}`, { headers: { authorization: `Bearer ${AGENT_TOKEN}` }, handshakeTimeout: 5_000 });
  ws.on('error', () => undefined);
  let epoch = 0;
  ws.on('message', (d) => {
    const grant = JSON.parse(d.toString()) as Grant;
    if (typeof grant.epoch === 'number') epoch = grant.epoch;
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let seq = 0;
  const send = (): void => {
    const hb: Heartbeat = {
      type: 'heartbeat', hostId: 'gpu-1', epoch, seq: ++seq,
      sync: { watermark: 0, lastSeq: 0, pending: 0, oldestPendingAgeMs: null, lastPassAgeMs: null, ready: true, held: false, lastError: null, target: null, progress: null },
      codeServer: { healthy: true, checkedAgeMs: 10 }, preemption: null, frozen: false, resume: null,
    };
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(hb));
  };
  send();
  const beats = { paused: false, close() {} };
  const timer = setInterval(() => {
    if (!beats.paused) send();
  }, 200);
  return Object.assign(beats, {
    close() {
      clearInterval(timer);
      ws.close();
    },
  });
}

test('a doubt that clears shows the overlay and takes it away without a reload; a route move reloads the tab into the other side, no click', { skip: noChromium, timeout: 60_000 }, async (t) => {
  const gpu = await startSide('gpu');
  t.after(() => gpu.close());
  const cpu = await startSide('cpu');
  t.after(() => cpu.close());
  // a long window: the agent quiet and its code-server unwell for a while is a doubt, never a failover here.
  // The proxy expects a heartbeat every 500 ms and gets one every 200 ms: a busy machine's late one is no doubt.
  const proxy = await startTestProxy({ primaryUrl: gpu.url, standbyUrl: cpu.url, fence: async () => ({ waitedMs: 0, killed: 0 }), settings: { detector: { heartbeatIntervalMs: 500, missedHeartbeats: 50 } } });
  t.after(() => proxy.close());
  const agent = await heartbeats(proxy.url);
  t.after(() => agent.close());
  await waitFor('the GPU serves, its agent heard', () => proxy.store.state.phase === 'normal');

  let browser: Browser | undefined;
  t.after(() => browser?.close());
  browser = await launchChromium();
  const page = await browser.context.newPage();
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${proxy.url}/`);
  await page.waitForSelector('html[data-standby="listening"]');
  let loads = 0;
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) loads++;
  });
  assert.equal(await page.locator('#standby-overlay').count(), 0, 'no overlay while all is well');

  // the GPU's code-server stops answering its probe: with heartbeats on time, no doubt (a busy code-server misses probes)
  gpu.health = 503;
  const primaryFailures = async (): Promise<number> => {
    const status = (await (await proxy.api('status')).json()) as { backends: { side: string; probe: { failuresInARow: number } | null }[] };
    return status.backends.find((b) => b.side === 'primary')?.probe?.failuresInARow ?? 0;
  };
  await waitFor('four failed probes in a row', async () => (await primaryFailures()) >= 4, { timeoutMs: 10_000 });
  assert.equal(await page.locator('#standby-overlay').count(), 0, 'no overlay for failing probes while the agent beats on time');
  // its agent goes quiet too: a doubt, the overlay
  agent.paused = true;
  await page.waitForSelector('#standby-overlay .card', { state: 'visible' });
  assert.equal(await page.locator('#standby-overlay h1').textContent(), TO_STANDBY_TEXT);
  // both back: the doubt clears, the overlay goes, the page stays
  agent.paused = false;
  gpu.health = 200;
  await page.waitForSelector('#standby-overlay', { state: 'hidden' });
  assert.equal(loads, 0, 'no reload for a doubt that cleared');
  assert.equal(await page.textContent('#side'), 'gpu');

  // the route moves (the agent gone, a failover asked for): the overlay, then the tab is in the standby's page by itself
  agent.close();
  assert.equal(proxy.failover.manual('test: move the route').accepted, true);
  await page.waitForSelector('#side:has-text("cpu")', { timeout: 20_000 });
  assert.ok(loads >= 1, 'the tab reloaded');
  assert.equal(await page.locator('script[data-side]').getAttribute('data-side'), 'standby');
  assert.equal(await page.locator('#standby-overlay').count(), 0, 'the new page has no overlay up');
  assert.deepEqual(errors, [], 'no script errors');
});
