// The proxy's front door, what any internet client can do before auth: the
// /_standby/ decision on the path as the backend will see it, forwarded and
// hop-by-hop headers, framing the parser lets through, header limits,
// timeouts, the body rate and the per-client connection cap. A recording
// backend shows what got through.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { looseLower, startRecordingBackend, type RecordingBackend, type Seen } from '../fixtures/recording-backend.ts';
import { openConnection, rawExchange, type OpenConnection } from '../fixtures/raw-http.ts';
import { startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const PROBE = '/probe-for-tests';

/** A proxy whose both sides are `backend`, kept in its normal phase (no agent, long windows). */
function frontDoorProxy(backend: RecordingBackend, settings: Record<string, unknown> = {}): Promise<TestProxy> {
  return startTestProxy({
    primaryUrl: backend.url,
    standbyUrl: backend.url,
    fence: () => Promise.reject(new Error('no fence in this test')),
    settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 10, probeIntervalMs: 60_000, probePath: PROBE }, logLevel: 'warn', ...settings },
  });
}

/** What reached the backend from clients (the proxy's own probes left out). */
function fromClients(b: RecordingBackend): Seen[] {
  return b.seen.filter((s) => s.url !== PROBE);
}


const port = (p: TestProxy) => p.port;
const get = (path: string, headers = 'Host: dev.example.com\r\n') => `GET ${path} HTTP/1.1\r\n${headers}\r\n`;
const upgrade = (path: string) => `GET ${path} HTTP/1.1\r\nHost: dev.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

describe('the front door', () => {
  let backend: RecordingBackend;
  let proxy: TestProxy;
  before(async () => {
    backend = await startRecordingBackend();
    proxy = await frontDoorProxy(backend);
  });
  after(async () => {
    await proxy?.close();
    await backend?.close();
  });

  test('the /_standby/ decision is made on the path as the backend would see it: nothing under /_standby/ reaches the backend', async () => {
    const tricky = [
      '/x/../_standby/api/v1/status',
      '/x/%2e%2e/_standby/api/v1/status',
      '/%2E%2E/_standby/status',
      '/./_standby/status',
      '/_standby/../_standby/api/v1/events',
      '/%5fstandby/api/v1/status',
      '/%5Fstandby/status',
      '/_standby%2fapi/v1/status',
      '/_standby%2Fstatus',
      '//_standby/status',
      '///_standby/api/v1/status',
      '/x/..\\_standby/status',
      '/x/%5c../_standby/status',
      '/x/%252e%252e/_standby/status',
      '/_STANDBY/api/v1/status',
      '/_Standby/status',
      '/_standby',
      'http://evil.example/_standby/api/v1/status',
      'http://evil.example/x/../_standby/status',
    ];
    const before = fromClients(backend).length;
    for (const path of tricky) {
      const r = await rawExchange(port(proxy), get(path));
      assert.ok([400, 404].includes(r.status), `${path}: got ${r.status} ${r.text.slice(0, 80)}`);
      const u = await rawExchange(port(proxy), upgrade(path));
      assert.ok([400, 404].includes(u.status), `upgrade ${path}: got ${u.status} ${u.text.slice(0, 80)}`);
    }
    const reached = fromClients(backend).slice(before).filter((s) => looseLower(s.url).startsWith('/_standby'));
    assert.deepEqual(reached.map((s) => s.url), []);
    assert.equal(fromClients(backend).length, before, 'none of them reached the backend at all');
  });

  test('paths that only look close to /_standby/ still go to the backend, normalized as before', async () => {
    const cases: [string, string][] = [
      ['/x/../y', '/y'],
      ['/_standbyfoo/a', '/_standbyfoo/a'],
      ['/a/_standby/status', '/a/_standby/status'],
      ['/stable-abc/static/out/vs/code.js?x=%2F_standby%2F', '/stable-abc/static/out/vs/code.js?x=%2F_standby%2F'],
      ['/_standby/../x', '/x'],
      // the URL parser reads "/\" as "//", a host: http-proxy-3 forwards the rest
      ['/\\_standby/status', '/status'],
    ];
    for (const [sent, expected] of cases) {
      const r = await rawExchange(port(proxy), get(sent));
      assert.equal(r.status, 200, `${sent}: ${r.text.slice(0, 120)}`);
      assert.equal(fromClients(backend).at(-1)?.url, expected);
    }
  });

  test("the proxy's own paths in plain form are still its own", async () => {
    const r = await rawExchange(port(proxy), get('/_standby/status'));
    assert.equal(r.status, 200);
    assert.match(r.text, /"phase"/);
  });

  test('X-Forwarded-* from an untrusted client are replaced by what the proxy saw, for HTTP and WebSocket', async () => {
    const spoof = 'Host: dev.example.com\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 1\r\nForwarded: for=6.6.6.6;host=evil.example\r\nX-Real-IP: 6.6.6.6\r\n';
    const r = await rawExchange(port(proxy), get('/fwd', spoof));
    assert.equal(r.status, 200);
    const seen = fromClients(backend).at(-1)!;
    assert.equal(seen.url, '/fwd');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-host'], 'dev.example.com');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    for (const h of ['x-forwarded-port', 'forwarded', 'x-real-ip']) assert.equal(seen.headers[h], undefined, h);
    assert.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-forwarded-for').length, 1);

    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/ws-fwd`, { headers: { host: 'dev.example.com', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' }, handshakeTimeout: 5_000 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.close();
    const w = fromClients(backend).filter((s) => s.websocket).at(-1)!;
    assert.equal(w.url, '/ws-fwd');
    assert.equal(w.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(w.headers['x-forwarded-host'], 'dev.example.com');
    assert.equal(w.headers['x-forwarded-proto'], 'http');
  });

  test('hop-by-hop headers, and every header named in Connection, are stripped; framing and Host cannot be named away', async () => {
    const hop = 'Host: dev.example.com\r\nConnection: keep-alive, X-Secret, Foo\r\nX-Secret: s\r\nFoo: f\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Kept: yes\r\n';
    const r = await rawExchange(port(proxy), get('/hop', hop));
    assert.equal(r.status, 200);
    const seen = fromClients(backend).at(-1)!;
    assert.equal(seen.url, '/hop');
    for (const h of ['x-secret', 'foo', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'upgrade']) assert.equal(seen.headers[h], undefined, h);
    assert.equal(seen.headers['x-kept'], 'yes');
    assert.doesNotMatch(String(seen.headers.connection ?? ''), /secret|foo/i);

    const named = await rawExchange(port(proxy), 'POST /named HTTP/1.1\r\nHost: dev.example.com\r\nConnection: host, content-length, transfer-encoding, x-forwarded-for\r\nContent-Length: 5\r\n\r\nhello');
    assert.equal(named.status, 200);
    const n = fromClients(backend).at(-1)!;
    assert.equal(n.url, '/named');
    assert.equal(n.headers.host, 'dev.example.com');
    assert.equal(n.body, 'hello');
    assert.equal(n.headers['x-forwarded-for'], '127.0.0.1');
  });

  test("a WebSocket upgrade as Firefox sends it (Connection: keep-alive, Upgrade) still upgrades, with Upgrade and Connection rebuilt", async () => {
    const r = await rawExchange(port(proxy), 'GET /firefox-ws HTTP/1.1\r\nHost: dev.example.com\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    assert.equal(r.status, 101, r.text.slice(0, 100));
    const w = fromClients(backend).filter((s) => s.websocket).at(-1)!;
    assert.equal(w.url, '/firefox-ws');
    assert.equal(w.headers.upgrade, 'websocket');
    assert.match(String(w.headers.connection), /upgrade/i);
  });

  test('ambiguous framing is refused with 400 and reaches nothing: two Hosts, CL+TE, two lengths, chunked DELETE/OPTIONS, odd codings, obs-fold', async () => {
    const inner = 'GET /SMUGGLED HTTP/1.1\r\nHost: dev.example.com\r\n\r\n';
    const chunked = `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`;
    const cases: Record<string, string> = {
      'two Host headers': 'GET /two-hosts HTTP/1.1\r\nHost: dev.example.com\r\nHost: evil.example\r\n\r\n',
      'two Host headers, two spellings': 'GET /two-hosts HTTP/1.1\r\nhost: dev.example.com\r\nHOST: evil.example\r\n\r\n',
      'two Host headers on an upgrade': 'GET /two-hosts HTTP/1.1\r\nHost: dev.example.com\r\nHost: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      'CL and TE': `POST /clte HTTP/1.1\r\nHost: dev.example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`,
      'two Content-Lengths': 'POST /cl2 HTTP/1.1\r\nHost: dev.example.com\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde',
      'chunked DELETE': `DELETE /del HTTP/1.1\r\nHost: dev.example.com\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`,
      'chunked OPTIONS': `OPTIONS /opt HTTP/1.1\r\nHost: dev.example.com\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`,
      'gzip, chunked': `POST /gz HTTP/1.1\r\nHost: dev.example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${chunked}`,
      'obs-fold': 'GET /fold HTTP/1.1\r\nHost: dev.example.com\r\nX-A: a\r\n b\r\n\r\n',
      'bad chunk size': 'POST /chunk HTTP/1.1\r\nHost: dev.example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
      'no Host on HTTP/1.1': 'GET /nohost HTTP/1.1\r\n\r\n',
    };
    const before = fromClients(backend).length;
    for (const [name, bytes] of Object.entries(cases)) {
      const r = await rawExchange(port(proxy), bytes);
      assert.equal(r.status, 400, `${name}: ${r.text.slice(0, 100)}`);
    }
    assert.deepEqual(fromClients(backend).slice(before).map((s) => `${s.method} ${s.url}`), []);
    assert.doesNotMatch(backend.raw(), /SMUGGLED/);
  });

  test('header limits are answered 431, not a silent close; CONNECT and non-WebSocket upgrades are refused', async () => {
    const big = await rawExchange(port(proxy), get('/big', `Host: dev.example.com\r\nX-Big: ${'a'.repeat(20_000)}\r\n`));
    assert.equal(big.status, 431, big.text.slice(0, 100));
    const many = Array.from({ length: 100 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
    const tooMany = await rawExchange(port(proxy), get('/many', `Host: dev.example.com\r\n${many}`));
    assert.equal(tooMany.status, 431, tooMany.text.slice(0, 100));
    const justEnough = await rawExchange(port(proxy), get('/enough', `Host: dev.example.com\r\n${many.split('\r\n').slice(0, 99).join('\r\n')}\r\n`));
    assert.equal(justEnough.status, 200, justEnough.text.slice(0, 100));
    const connect = await rawExchange(port(proxy), 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n');
    assert.equal(connect.status, 405);
    const h2c = await rawExchange(port(proxy), 'GET /h2c HTTP/1.1\r\nHost: dev.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
    assert.equal(h2c.status, 400);
    assert.equal(fromClients(backend).filter((s) => ['/big', '/many', '/h2c'].includes(s.url)).length, 0);
  });
});

describe('trusted proxies', () => {
  let backend: RecordingBackend;
  let proxy: TestProxy;
  before(async () => {
    backend = await startRecordingBackend();
    proxy = await frontDoorProxy(backend, { trustedProxies: ['127.0.0.0/8', '::1'], limits: { maxConnectionsPerClient: 2 } });
  });
  after(async () => {
    await proxy?.close();
    await backend?.close();
  });

  test("a trusted hop's chain is kept and the peer appended; its Host and proto are kept", async () => {
    const r = await rawExchange(port(proxy), get('/t', 'Host: dev.example.com\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: public.example\r\nX-Forwarded-Proto: https\r\n'));
    assert.equal(r.status, 200);
    const seen = fromClients(backend).at(-1)!;
    assert.equal(seen.headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
    assert.equal(seen.headers['x-forwarded-host'], 'public.example');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    await rawExchange(port(proxy), get('/t2'));
    const plain = fromClients(backend).at(-1)!;
    assert.equal(plain.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(plain.headers['x-forwarded-host'], 'dev.example.com');
  });

  test('a trusted proxy is not held to the per-client connection cap (it carries many clients)', async (t) => {
    const held: OpenConnection[] = [];
    t.after(() => held.forEach((c) => c.socket.destroy()));
    for (let i = 0; i < 4; i++) held.push(await openConnection(port(proxy)));
    const r = await rawExchange(port(proxy), get('/over-cap-but-trusted'));
    assert.equal(r.status, 200);
  });
});

describe('limits: timeouts, the body rate, the per-client cap', () => {
  let backend: RecordingBackend;
  let proxy: TestProxy;
  let capped: TestProxy;
  let full: TestProxy;
  const L = { headersTimeoutMs: 400, idleTimeoutMs: 400, bodyMinBytesPerSecond: 2_000, bodyRateWindowMs: 400 };
  before(async () => {
    backend = await startRecordingBackend();
    proxy = await frontDoorProxy(backend, { limits: L });
    capped = await frontDoorProxy(backend, { limits: { maxConnectionsPerClient: 4 } });
    full = await frontDoorProxy(backend, { limits: { maxConnections: 3 } });
  });
  after(async () => {
    await proxy?.close();
    await capped?.close();
    await full?.close();
    await backend?.close();
  });

  test('headers that never finish get 408 and a close after headersTimeoutMs; a silent connection is closed too', async () => {
    const slow = await rawExchange(port(proxy), 'GET /slow-headers HTTP/1.1\r\nHost: dev.example.com\r\n', { untilClose: true, timeoutMs: 5_000 });
    assert.equal(slow.ended, 'closed');
    assert.equal(slow.status, 408);
    assert.ok(slow.ms >= L.headersTimeoutMs * 0.9, `closed after ${slow.ms} ms`);
    const silent = await rawExchange(port(proxy), [], { untilClose: true, timeoutMs: 5_000 });
    assert.notEqual(silent.ended, 'deadline', 'the proxy closed it');
  });

  test('an idle keep-alive connection is closed after idleTimeoutMs', async () => {
    const c = await openConnection(port(proxy));
    c.socket.write(get('/keep'));
    await waitFor('the response', () => /\r\n\r\n/.test(c.received()), { timeoutMs: 5_000 });
    const t0 = performance.now();
    await Promise.race([c.closed, sleep(5_000).then(() => assert.fail('still open after 5 s'))]);
    assert.ok(performance.now() - t0 >= L.idleTimeoutMs * 0.8);
  });

  test('a body slower than bodyMinBytesPerSecond is cut; it never reaches the backend whole', async () => {
    const head = 'POST /slow-body HTTP/1.1\r\nHost: dev.example.com\r\nContent-Length: 100000\r\n\r\n';
    // 10 bytes every 50 ms: 200 bytes/s against a minimum of 2000
    const r = await rawExchange(port(proxy), [head, ...Array.from({ length: 200 }, () => 'x'.repeat(10))], { gapMs: 50, untilClose: true, timeoutMs: 8_000 });
    assert.notEqual(r.ended, 'deadline', 'the proxy cut it');
    assert.ok(r.ms < 5_000, `cut after ${r.ms} ms`);
    // the backend may have seen its headers, never its whole body
    assert.ok(fromClients(backend).filter((s) => s.url === '/slow-body').every((s) => s.body.length === 0));
  });

  test('a body above the minimum rate goes through, however long it takes', async () => {
    const head = 'POST /steady-body HTTP/1.1\r\nHost: dev.example.com\r\nContent-Length: 10000\r\n\r\n';
    // 1000 bytes every 100 ms (10 kB/s) over 1 s: several windows
    const r = await rawExchange(port(proxy), [head, ...Array.from({ length: 10 }, () => 'y'.repeat(1_000))], { gapMs: 100, timeoutMs: 8_000 });
    assert.equal(r.status, 200, r.text.slice(0, 100));
    assert.equal(fromClients(backend).filter((s) => s.url === '/steady-body').at(-1)?.body.length, 10_000);
  });

  test('a quiet WebSocket outlives every timeout and window', async () => {
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/quiet`, { handshakeTimeout: 5_000 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    // silent for several header timeouts, idle timeouts and body windows
    await sleep(L.headersTimeoutMs * 4);
    assert.equal(ws.readyState, WebSocket.OPEN);
    const echo = new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
    ws.send('still here');
    assert.equal(await echo, 'still here');
    ws.close();
  });

  test('connections over maxConnectionsPerClient get 429 and a close, upgrades included; a freed slot serves again', async (t) => {
    const held: OpenConnection[] = [];
    t.after(() => held.forEach((c) => c.socket.destroy()));
    for (let i = 0; i < 4; i++) held.push(await openConnection(port(capped)));
    const over = await rawExchange(port(capped), get('/over-cap'));
    assert.equal(over.status, 429, over.text.slice(0, 100));
    const overWs = await rawExchange(port(capped), upgrade('/over-cap-ws'));
    assert.equal(overWs.status, 429);
    assert.equal(fromClients(backend).filter((s) => s.url.startsWith('/over-cap')).length, 0);
    held.pop()!.socket.destroy();
    await waitFor('a freed slot', async () => (await rawExchange(port(capped), get('/after-cap'))).status === 200, { timeoutMs: 5_000 });
  });

  test('over maxConnections in all, a new connection is closed at accept; a freed slot serves again', async (t) => {
    const held: OpenConnection[] = [];
    t.after(() => held.forEach((c) => c.socket.destroy()));
    for (let i = 0; i < 3; i++) held.push(await openConnection(port(full)));
    const over = await rawExchange(port(full), get('/over-global-cap'), { untilClose: true });
    assert.equal(over.status, 0, 'closed unanswered');
    assert.notEqual(over.ended, 'deadline');
    held.pop()!.socket.destroy();
    await waitFor('a freed slot', async () => (await rawExchange(port(full), get('/after-global-cap'))).status === 200, { timeoutMs: 5_000 });
    assert.equal(fromClients(backend).filter((s) => s.url === '/over-global-cap').length, 0);
  });
});
