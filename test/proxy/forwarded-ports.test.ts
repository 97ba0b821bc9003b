// code-server's forwarded ports (/proxy/<port>/, /absproxy/<port>/) through
// the proxy, with a real code-server behind it on each side (one at a time,
// as the GPU, the standby and the new GPU) and real programs on real ports:
// before a failover the GPU's port passes through; after it, a port whose
// program ran on the (dead) GPU gets a page saying so (a short text for
// anything but a navigation, 503 for a WebSocket), a port that listens on the
// standby passes through untouched, and after the switch back to a new GPU the
// port works again. Anything but a plain port 1-65535 passes to code-server
// untouched. The route is moved by the test through the server's target()
// (what proxy/route.ts answers in the daemon): the failover machine is tested
// elsewhere, this is about what crosses the proxy once the route has moved.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { launchChromium, noChromium } from '../fixtures/chromium.ts';
import { startCodeServer } from '../fixtures/code-server.ts';
import { freePort } from '../../core/free-port.ts';
import { validateSettings } from '../../config/file.ts';
import { proxyConfigSchema } from '../../config/proxy.ts';
import { AgentHub } from '../../proxy/agent-hub.ts';
import { AuthThrottle } from '../../proxy/auth-throttle.ts';
import { ForwardedHeaders } from '../../proxy/forwarded-headers.ts';
import { forwardedPort, isPortRefusal, mayBeRefusal } from '../../proxy/forwarded-port.ts';
import { portNotServedPage } from '../../proxy/pages/port-not-served.ts';
import { Router, type Backend } from '../../proxy/router.ts';
import { createProxyServer } from '../../proxy/server.ts';
import { proxySettings } from '../fixtures/proxy.ts';

interface CodeServer {
  url: string;
  /** SIGKILL to its whole tree, as a lost host; resolves once none of it runs */
  kill(): Promise<void>;
}

/** A real code-server (test/fixtures/code-server.ts) with its folder, user data and extensions under `dir`. */
async function codeServerIn(dir: string): Promise<CodeServer> {
  mkdirSync(join(dir, 'folder'), { recursive: true });
  const cs = await startCodeServer({ folder: join(dir, 'folder'), userDataDir: join(dir, 'user'), extensionsDir: join(dir, 'ext') });
  return { url: cs.url, kill: () => cs.close() };
}

/** A program listening on a port: answers "<name> <url>" over HTTP, echoes "<name>: <message>" over WebSocket. */
async function startProgram(name: string, port = 0, answer?: (res: import('node:http').ServerResponse) => void): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (answer) return answer(res);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name} ${req.url}`);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`${name}: ${m.toString()}`)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function send(base: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: o.method ?? 'GET', path, headers: o.headers ?? {}, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: timed out`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** A WebSocket through `base` at `path`: the echo of one message, or the status of a refused upgrade. */
function wsTry(base: string, path: string): Promise<{ echo: string } | { status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const origin = base;
    const ws = new WebSocket(`${base.replace('http', 'ws')}${path}`, { headers: { origin }, handshakeTimeout: 10_000 });
    ws.on('open', () => ws.send('ping'));
    ws.on('message', (m) => {
      resolve({ echo: m.toString() });
      ws.close();
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    ws.on('error', reject);
  });
}

const SCREENSHOT = join(import.meta.dirname, '../../docs/port-not-served.png');
const NAV = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

test('the page: the port and nothing else, a strict CSP, no external assets; a port that is not 1-65535 is refused', () => {
  const html = portNotServedPage(8080);
  assert.match(html, /<title>Port 8080 ran on the GPU<\/title>/);
  assert.match(html, /default-src &#39;none&#39;/);
  // the nonce is random base64, which may hold "//" and a letter: it is no address
  assert.doesNotMatch(html.replace(/nonce-[A-Za-z0-9+/=]+|nonce="[A-Za-z0-9+/=]+"/g, 'nonce'), /<script|https?:|\/\/[a-z]/i, 'no script, nothing fetched from anywhere');
  for (const bad of [0, 65_536, 1.5, Number.NaN, -1]) assert.throws(() => portNotServedPage(bad), RangeError);
  assert.equal(forwardedPort('/proxy/8080/'), 8080);
  assert.equal(forwardedPort('/absproxy/65535?x=1'), 65_535);
  assert.equal(forwardedPort('/proxy/1'), 1);
  for (const other of ['/proxy/0/', '/proxy/65536/', '/proxy/09/', '/proxy/9abc/', '/proxy/-1/', '/proxy/%38/', '/PROXY/8/', '/x/proxy/8/', '/proxy//8/', '/proxy/8.0/', '/proxy/8%2f/', '/proxyx/8/', '/']) {
    assert.equal(forwardedPort(other), undefined, other);
  }
  // code-server's refusal names the port the path names, or it is not the refusal
  assert.equal(isPortRefusal('connect ECONNREFUSED 0.0.0.0:8080', 8080), true);
  assert.equal(isPortRefusal('connect ECONNREFUSED 0.0.0.0:8080', 808), false);
  assert.equal(isPortRefusal('connect ECONNREFUSED 0.0.0.0:8080 ', 8080), false);
  assert.equal(isPortRefusal('connect ECONNRESET 0.0.0.0:8080', 8080), false);
  assert.equal(mayBeRefusal('conn'), true);
  assert.equal(mayBeRefusal('connect ECONNREFUSED 0.0.0.0:80'), true);
  assert.equal(mayBeRefusal('{"error":1}'), false);
  assert.equal(mayBeRefusal(`connect ECONNREFUSED ${'9'.repeat(60)}`), false);
});

describe('forwarded ports through the proxy, a real code-server on each side', { timeout: 180_000 }, () => {
  const top = mkdtempSync(join(tmpdir(), 'standby-ports-'));
  const log = pino({ level: 'silent' });
  let route: Backend | undefined;
  let proxyUrl = '';
  let proxyServer: Server | undefined;
  let router: Router | undefined;
  let codeServer: CodeServer | undefined;
  // the GPU's program: its port is the one that is lost with the GPU
  let gpuProgram: Awaited<ReturnType<typeof startProgram>> | undefined;
  // a program on the standby's host (on this one machine, every code-server reaches it)
  let standbyProgram: Awaited<ReturnType<typeof startProgram>> | undefined;
  // a program whose own answer is a 500 without Content-Type, like code-server's refusal
  let failingProgram: Awaited<ReturnType<typeof startProgram>> | undefined;
  let lostPort = 0;
  /** forwarded requests the router counted against a side's code-server */
  const counted: string[] = [];

  before(async () => {
    const config = validateSettings(proxyConfigSchema, proxySettings({ primaryUrl: 'http://127.0.0.1:9', standbyUrl: 'http://127.0.0.1:9' }, join(top, 'state')), 'test proxy settings');
    router = new Router(log);
    router.onForwardFailed = (side) => counted.push(side);
    const forwarded = new ForwardedHeaders(config.trustedProxies, false);
    const throttle = new AuthThrottle(config.auth, log);
    const hub = new AgentHub(['gpu-1'], { authenticate: () => ({ refused: 'unknown' }), grant: () => ({ role: 'fenced', epoch: 1, reason: 'no agent in this test' }) }, throttle, log);
    const front = createProxyServer({
      config, router, hub, log, forwarded,
      target: () => route,
      transitionPage: () => '<!doctype html><title>Switching machine</title>',
      api: async (_req, res) => void res.writeHead(404).end(),
    });
    proxyServer = front.server;
    await new Promise<void>((resolve) => front.server.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(front.server.address() as AddressInfo).port}`;
    gpuProgram = await startProgram('gpu-app');
    lostPort = gpuProgram.port;
    standbyProgram = await startProgram('standby-app');
    failingProgram = await startProgram('failing-app', 0, (res) => {
      res.writeHead(500);
      res.end('the program itself failed');
    });
  });
  after(async () => {
    await codeServer?.kill();
    await gpuProgram?.close();
    await standbyProgram?.close();
    await failingProgram?.close();
    router?.close();
    proxyServer?.closeAllConnections();
    await new Promise((resolve) => (proxyServer ? proxyServer.close(resolve) : resolve(undefined)));
    rmSync(top, { recursive: true, force: true });
  });

  test('before the failover: the GPU\'s port passes through to its program (HTTP and WebSocket), a dead port gets code-server\'s own answer', async () => {
    codeServer = await codeServerIn(join(top, 'gpu'));
    route = { side: 'primary', id: 'gpu-1', url: codeServer.url };
    for (const prefix of ['/proxy', '/absproxy']) {
      const r = await send(proxyUrl, `${prefix}/${lostPort}/hello?x=1`, { headers: NAV });
      assert.equal(r.status, 200, prefix);
      // /proxy strips its prefix, /absproxy keeps it (code-server's rule, untouched)
      assert.equal(r.body, prefix === '/proxy' ? 'gpu-app /hello?x=1' : `gpu-app /absproxy/${lostPort}/hello?x=1`);
      assert.deepEqual(await wsTry(proxyUrl, `${prefix}/${lostPort}/socket`), { echo: 'gpu-app: ping' });
    }
    // on the GPU the proxy says nothing of ports: code-server's answer as it is
    const deadPort = await freePort();
    const dead = await send(proxyUrl, `/proxy/${deadPort}/`, { headers: NAV });
    assert.equal(dead.status, 500);
    assert.equal(dead.body, `connect ECONNREFUSED 0.0.0.0:${deadPort}`);
    // a port's 5xx is that port's: code-server answered, nothing against its health
    assert.deepEqual(counted, []);
  });

  test('after the failover: the port that ran on the GPU gets the page, a short text, or a 503 upgrade; a port on the standby passes through', async () => {
    // the GPU is lost: its code-server and the program on its port die with it
    await codeServer!.kill();
    await gpuProgram!.close();
    gpuProgram = undefined;
    codeServer = await codeServerIn(join(top, 'standby'));
    route = { side: 'standby', id: 'cpu-1', url: codeServer.url };

    // what the standby's code-server answers by itself (seen in 4.139.1): 500, the connect error as text
    const bare = await send(codeServer.url, `/proxy/${lostPort}/`, { headers: NAV });
    assert.equal(bare.status, 500);
    assert.equal(bare.body, `connect ECONNREFUSED 0.0.0.0:${lostPort}`);
    assert.equal(bare.headers['content-type'], undefined);

    for (const path of [`/proxy/${lostPort}/`, `/proxy/${lostPort}`, `/absproxy/${lostPort}/app/index.html?x=1`]) {
      const page = await send(proxyUrl, path, { headers: NAV });
      assert.equal(page.status, 503, path);
      assert.match(String(page.headers['content-type']), /^text\/html/, path);
      assert.equal(page.headers['cache-control'], 'no-store');
      assert.match(page.body, new RegExp(`<title>Port ${lostPort} ran on the GPU</title>`));
      assert.match(page.body, /switches back to a new GPU/);
      assert.match(page.body, /files are safe/);
      assert.doesNotMatch(page.body, /ECONNREFUSED|0\.0\.0\.0/);
    }
    // not a navigation: a short text naming the port
    for (const [path, method] of [[`/proxy/${lostPort}/api/data`, 'GET'], [`/absproxy/${lostPort}/api/data`, 'POST']] as const) {
      const r = await send(proxyUrl, path, { method, headers: { accept: 'application/json', 'content-type': 'application/json' }, body: method === 'POST' ? '{"a":1}' : undefined });
      assert.equal(r.status, 503, path);
      assert.match(String(r.headers['content-type']), /^text\/plain/);
      assert.match(r.body, new RegExp(`^standby proxy: nothing serves port ${lostPort} on the CPU standby; the program on it ran on the GPU, which was lost\\.`));
    }
    // a WebSocket upgrade: 503, not code-server's "500 connect ECONNREFUSED ..." status line
    for (const prefix of ['/proxy', '/absproxy']) {
      const direct = await wsTry(codeServer.url, `${prefix}/${lostPort}/socket`);
      assert.deepEqual(direct, { status: 500, body: '' }, 'code-server refuses the upgrade with a bare 500');
      assert.deepEqual(await wsTry(proxyUrl, `${prefix}/${lostPort}/socket`), { status: 503, body: '' }, prefix);
    }

    // a port that listens on the standby: untouched, HTTP and WebSocket
    const on = await send(proxyUrl, `/proxy/${standbyProgram!.port}/hello`, { headers: NAV });
    assert.equal(on.status, 200);
    assert.equal(on.body, 'standby-app /hello');
    assert.deepEqual(await wsTry(proxyUrl, `/absproxy/${standbyProgram!.port}/socket`), { echo: 'standby-app: ping' });
    // a program's own 500 without Content-Type is its answer, not code-server's refusal
    const failing = await send(proxyUrl, `/proxy/${failingProgram!.port}/`, { headers: NAV });
    assert.equal(failing.status, 500);
    assert.equal(failing.body, 'the program itself failed');
    // the rest of code-server is untouched too
    const health = await send(proxyUrl, '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(counted, [], 'no forwarded port counted against the standby\'s code-server');
  });

  test('after the failover, in Chromium: the page shows, fits a phone, breaks no CSP rule and fetches nothing', { skip: noChromium }, async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.context.newPage();
      page.setDefaultTimeout(10_000);
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('request', (r) => requests.push(r.url()));
      const url = `${proxyUrl}/proxy/${lostPort}/`;
      for (const width of [1280, 375]) {
        await page.setViewportSize({ width, height: 760 });
        const res = await page.goto(url, { waitUntil: 'load' });
        assert.equal(res?.status(), 503);
        assert.equal(await page.title(), `Port ${lostPort} ran on the GPU`);
        assert.match((await page.textContent('main')) ?? '', /switches back to a new GPU/);
        const scrollWidth = await page.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth);
        assert.ok(scrollWidth <= width, `the page is ${scrollWidth} px wide at ${width} px`);
        if (width === 1280 && (process.env.UPDATE_SCREENSHOTS === '1' || !existsSync(SCREENSHOT))) await page.screenshot({ path: SCREENSHOT, animations: 'disabled' });
      }
      // Chromium's own line for the 503 is the only console error: no CSP violation
      assert.deepEqual(errors.filter((e) => !/^Failed to load resource: the server responded with a status of 503\b/.test(e)), []);
      assert.deepEqual([...new Set(requests)], [url], 'nothing but the page itself was fetched');
    } finally {
      await browser.close();
    }
  });

  test('after the failover, anything but a plain port 1-65535 passes to code-server untouched', async () => {
    for (const path of ['/proxy/0/', '/proxy/65536/', '/proxy/70000/', '/proxy/abc/', `/proxy/0${lostPort}/`, `/proxy/${lostPort}abc/`, '/proxy/%3Cscript%3E/', `/PROXY/${lostPort}/`]) {
      const direct = await send(codeServer!.url, path, { headers: NAV });
      const through = await send(proxyUrl, path, { headers: NAV });
      assert.equal(through.status, direct.status, path);
      assert.equal(through.body, direct.body, path);
      assert.doesNotMatch(through.body, /ran on the GPU/, path);
    }
  });

  test('after the switch back to a new GPU, the port works again once its program is started there', async () => {
    await codeServer!.kill();
    codeServer = await codeServerIn(join(top, 'new-gpu'));
    route = { side: 'primary', id: 'gpu-2', url: codeServer.url };
    // the program is started on the new GPU, on its port
    gpuProgram = await startProgram('gpu-app-again', lostPort);
    const r = await send(proxyUrl, `/proxy/${lostPort}/hello`, { headers: NAV });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'gpu-app-again /hello');
    assert.deepEqual(await wsTry(proxyUrl, `/absproxy/${lostPort}/socket`), { echo: 'gpu-app-again: ping' });
  });
});
