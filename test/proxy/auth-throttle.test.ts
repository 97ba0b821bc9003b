// Failed authentication: wrong tokens are not answered
// at full speed for ever. After maxFailures from one address it is locked
// out (429, Retry-After) on every surface (admin API, agent socket,
// enrollment, metrics), other addresses are untouched, the log samples the
// failures, every failure gets the same body, and the addresses tracked are
// bounded.
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { AuthThrottle, DEFAULT_AUTH_LIMITS } from '../../proxy/auth-throttle.ts';
import { clientKey } from '../../proxy/client-address.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, agentSocketAnswer, startProxyWithBackends, type ProxyWithBackends, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const UNIFORM = { error: { code: 'STANDBY_ERR_UNAUTHORIZED', message: 'unauthorized' } };

interface Answer { status: number; body: string; retryAfter: string | undefined }

/** One request from a chosen loopback address (the whole of 127/8 is this host). */
function send(url: string, o: { from: string; path: string; method?: string; token?: string; body?: string; agent?: Agent }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({
      host: u.hostname, port: u.port, path: o.path, method: o.method ?? 'GET', localAddress: o.from, agent: o.agent,
      headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body ? { 'content-type': 'application/json' } : {}) },
      timeout: 5_000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The agent socket from a chosen address: 'open', or the status it was refused with. */
const upgrade = (url: string, from: string, token: string): Promise<number | 'open'> => agentSocketAnswer(url, token, from);

describe('failed authentication against a real proxy', () => {
  let proxy: TestProxy;
  let world: ProxyWithBackends;
  before(async () => {
    // both code-servers answer: an agent socket that closes is no failover here
    world = await startProxyWithBackends({
      fence: () => Promise.reject(new Error('no fence in this test')),
      settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } },
    });
    proxy = world.proxy;
  });
  after(async () => {
    await world?.close();
  });

  test('3,000 wrong admin tokens: 401 up to the limit, then 429 with Retry-After; the right token from another address still works', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 8, localAddress: '127.0.0.11' });
    try {
      const answers: Answer[] = [];
      const started = performance.now();
      for (let i = 0; i < 3_000 && performance.now() - started < 60_000; i += 50) {
        answers.push(...await Promise.all(Array.from({ length: 50 }, (_, j) =>
          send(proxy.url, { from: '127.0.0.11', path: '/_standby/api/v1/status', token: `wrong-token-${i + j}`, agent }))));
      }
      assert.equal(answers.length, 3_000);
      const unauthorized = answers.filter((a) => a.status === 401);
      const limited = answers.filter((a) => a.status === 429);
      assert.equal(unauthorized.length + limited.length, 3_000, 'nothing but 401 and 429');
      // the lockout starts at the 10th failure (each request is decided as it arrives, so 50 at once change nothing)
      assert.equal(unauthorized.length, 10);
      assert.equal(limited.length, 2_990);
      for (const a of unauthorized) assert.deepEqual(JSON.parse(a.body), UNIFORM);
      assert.ok(limited.every((a) => Number(a.retryAfter) >= 1), 'every 429 says when to come back');

      // the locked address is locked even with the right token; another address is not
      assert.equal((await send(proxy.url, { from: '127.0.0.11', path: '/_standby/api/v1/status', token: ADMIN_TOKEN })).status, 429);
      assert.equal((await send(proxy.url, { from: '127.0.0.12', path: '/_standby/api/v1/status', token: ADMIN_TOKEN })).status, 200);
      assert.equal(await upgrade(proxy.url, '127.0.0.12', AGENT_TOKEN), 'open');
      assert.equal(await upgrade(proxy.url, '127.0.0.11', AGENT_TOKEN), 429, 'the lockout holds on every surface');
      // ...but for a token the proxy issued (192 random bits): a GPU that shares its address with a noisy neighbour still connects
      const issued = proxy.hosts.rotate('gpu-1', 600_000).agentToken;
      assert.equal(await upgrade(proxy.url, '127.0.0.11', issued), 'open');
      assert.equal((await send(proxy.url, { from: '127.0.0.11', path: '/_standby/api/v1/status', token: ADMIN_TOKEN })).status, 429, 'and the address stays locked out');

      // the log: the first failures, the lockout, not thousands of lines
      const lines = proxy.logs.filter((l) => l['remote'] === '127.0.0.11' && /failed authentication/.test(String(l['msg'])));
      assert.ok(lines.length >= 4 && lines.length <= 6, `log lines for the address: ${lines.length}`);
      assert.ok(lines.some((l) => /locked out/.test(String(l['msg'])) && typeof l['lockoutMs'] === 'number'));
      assert.ok(lines.every((l) => l['surface'] === 'admin'));

      // and the metrics count them, for an alert
      const scraped = await send(proxy.url, { from: '127.0.0.12', path: '/_standby/metrics', token: ADMIN_TOKEN });
      assert.equal(scraped.status, 200);
      const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(scraped.body)?.[1]);
      assert.ok(value('standby_auth_failures_total') >= 10, 'the failures counted before the lockout');
      assert.ok(value('standby_auth_lockouts_total') >= 1);
    } finally {
      agent.destroy();
    }
  });

  test('enrollment says the same for an unknown, a replaced, an expired invitation and an agent token', async () => {
    // (runs after the first test, which rotated gpu-1's token once)
    const replaced = proxy.hosts.invite('gpu-5', 600_000).token;
    proxy.hosts.invite('gpu-5', 600_000); // the first one is no longer valid
    const expired = proxy.hosts.invite('gpu-6', 1).token;
    const agentToken = proxy.hosts.rotate('gpu-1', 600_000).agentToken;
    await waitFor('the short invitation expired', () => Date.now() > Date.parse(proxy.hosts.registry.get('gpu-6')!.invite!.expiresAt));
    const answers: Answer[] = [];
    for (const [i, token] of ['sbi_never-issued-0000', replaced, expired, agentToken, AGENT_TOKEN].entries()) {
      answers.push(await send(proxy.url, { from: `127.0.0.${40 + i}`, path: '/_standby/enroll', method: 'POST', token, body: '{"publicKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOv1"}' }));
    }
    for (const a of answers) assert.deepEqual([a.status, JSON.parse(a.body)], [401, UNIFORM]);
    assert.ok(proxy.logs.some((l) => /enrollment refused/.test(String(l['msg'])) && /expired/.test(String(l['why']))), 'the log has the reason');

    // the check the bundle download calls (inside AuthThrottle.guard): a usable invitation or a working agent token
    const usable = proxy.hosts.invite('gpu-8', 600_000).token;
    assert.deepEqual(
      [usable, agentToken, replaced, expired, AGENT_TOKEN, '', 'sbi_never-issued-0000', ADMIN_TOKEN].map((t) => proxy.hosts.holdsCredential(t)),
      [true, true, false, false, false, false, false, false], // AGENT_TOKEN: rotated away twice (the first test rotated gpu-1 too)
    );
  });

  test('the agent socket, enrollment and metrics: the same 401 body, then 429', async () => {
    const from = '127.0.0.13';
    const statuses: (number | 'open')[] = [];
    for (let i = 0; i < 4; i++) statuses.push(await upgrade(proxy.url, from, `wrong-agent-token-${i}`));
    assert.deepEqual(statuses, [401, 401, 401, 401]);
    const enroll = await send(proxy.url, { from, path: '/_standby/enroll', method: 'POST', token: 'sbi_unknown-invitation', body: '{"publicKey":"ssh-ed25519 AAAA"}' });
    assert.equal(enroll.status, 401);
    assert.deepEqual(JSON.parse(enroll.body), UNIFORM);
    const metrics = await send(proxy.url, { from, path: '/_standby/metrics', token: 'not-the-admin' });
    assert.equal(metrics.status, 401);
    assert.deepEqual(JSON.parse(metrics.body), UNIFORM);
    for (let i = 0; i < 4; i++) assert.equal((await send(proxy.url, { from, path: '/_standby/api/v1/hosts', token: `x-wrong-${i}` })).status, 401);
    // ten failures across the surfaces: locked out on each
    assert.equal(await upgrade(proxy.url, from, 'wrong-again-123'), 429);
    assert.equal((await send(proxy.url, { from, path: '/_standby/enroll', method: 'POST', token: 'sbi_x', body: '{}' })).status, 429);
    assert.equal((await send(proxy.url, { from, path: '/_standby/metrics', token: ADMIN_TOKEN })).status, 429);
    // a right token before the limit forgets the failures of its address
    const other = '127.0.0.14';
    for (let i = 0; i < 9; i++) assert.equal((await send(proxy.url, { from: other, path: '/_standby/api/v1/status', token: `w-${i}-wrong` })).status, 401);
    assert.equal((await send(proxy.url, { from: other, path: '/_standby/api/v1/status', token: ADMIN_TOKEN })).status, 200);
    assert.equal((await send(proxy.url, { from: other, path: '/_standby/api/v1/status', token: 'w-after-wrong' })).status, 401);
  });
});

describe('failed authentication behind a trusted proxy (trustedProxies)', () => {
  let proxy: TestProxy;
  let world: ProxyWithBackends;
  before(async () => {
    world = await startProxyWithBackends({
      fence: () => Promise.reject(new Error('no fence in this test')),
      // 127.0.0.21 plays a TLS terminator in front of the proxy
      settings: { trustedProxies: ['127.0.0.21'], detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } },
    });
    proxy = world.proxy;
  });
  after(async () => {
    await world?.close();
  });

  /** A request through the "terminator": it forwards for `client` (after whatever chain the client made up). */
  const via = (client: string, token: string, madeUp = ''): Promise<Answer> => new Promise((resolve, reject) => {
    const u = new URL(proxy.url);
    const req = request({
      host: u.hostname, port: u.port, path: '/_standby/api/v1/status', localAddress: '127.0.0.21', agent: false,
      headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': madeUp ? `${madeUp}, ${client}` : client },
      timeout: 5_000,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: '', retryAfter: res.headers['retry-after'] }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });

  test('the client it forwards for is locked out, not the proxy in front: other clients behind it still get in; a made-up chain changes nothing', async () => {
    const statuses: number[] = [];
    // the attacker prepends addresses of its own to the chain: only the entry the terminator added counts
    for (let i = 0; i < 12; i++) statuses.push((await via('198.51.100.7', 'wrong-token-xxxx', `203.0.113.${i}`)).status);
    assert.deepEqual(statuses.slice(0, 10), Array(10).fill(401));
    assert.deepEqual(statuses.slice(10), [429, 429]);
    assert.equal((await via('198.51.100.7', ADMIN_TOKEN)).status, 429, 'the locked-out client stays locked out, even with the right token');
    assert.equal((await via('198.51.100.8', ADMIN_TOKEN)).status, 200, 'another client behind the same terminator is not locked out');
    // a peer that is not trusted cannot pick who it is: its forwarded header is ignored
    const direct = await send(proxy.url, { from: '127.0.0.22', path: '/_standby/api/v1/status', token: ADMIN_TOKEN });
    assert.equal(direct.status, 200);
  });
});

describe('AuthThrottle', () => {
  const quiet = () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, new Writable({ write(c: Buffer, _e, done) { lines.push(JSON.parse(c.toString()) as Record<string, unknown>); done(); } }));
    return { log, lines };
  };

  test('locked out after maxFailures; a second lockout right after the first lasts twice as long; a quiet window starts over', () => {
    let now = 0;
    const { log } = quiet();
    const t = new AuthThrottle({ ...DEFAULT_AUTH_LIMITS, maxFailures: 3, windowMs: 1_000, lockoutMs: 5_000 }, log, () => now);
    t.failed('10.0.0.1', 'admin');
    t.failed('10.0.0.1', 'admin');
    assert.equal(t.retryAfterMs('10.0.0.1'), 0);
    t.failed('10.0.0.1', 'admin');
    assert.equal(t.retryAfterMs('10.0.0.1'), 5_000);
    assert.equal(t.retryAfterMs('10.0.0.2'), 0, 'another address is not affected');
    now = 5_001;
    assert.equal(t.retryAfterMs('10.0.0.1'), 0);
    for (let i = 0; i < 3; i++) t.failed('10.0.0.1', 'admin');
    assert.equal(t.retryAfterMs('10.0.0.1'), 10_000, 'backoff: the next lockout doubles');
    now = 20_000;
    t.succeeded('10.0.0.1');
    for (let i = 0; i < 3; i++) t.failed('10.0.0.1', 'admin');
    assert.equal(t.retryAfterMs('10.0.0.1'), 5_000, 'a success forgets the history');
    now = 30_000;
    t.failed('10.0.0.3', 'agent');
    t.failed('10.0.0.3', 'agent');
    now = 31_500; // the window ended: the count starts over
    t.failed('10.0.0.3', 'agent');
    assert.equal(t.retryAfterMs('10.0.0.3'), 0);
  });

  test('memory is bounded: the least recently seen addresses go first', () => {
    const { log } = quiet();
    const t = new AuthThrottle({ ...DEFAULT_AUTH_LIMITS, maxAddresses: 100 }, log, () => 0);
    for (let i = 0; i < 5_000; i++) t.failed(`10.1.${i >> 8}.${i & 255}`, 'admin');
    assert.equal(t.tracked, 100);
  });

  test('the log: an address\'s first three failures, then one line per interval with the count', () => {
    let now = 0;
    const { log, lines } = quiet();
    const t = new AuthThrottle({ ...DEFAULT_AUTH_LIMITS, maxFailures: 1_000, logEveryMs: 60_000 }, log, () => now);
    for (let i = 0; i < 500; i++) t.failed('10.0.0.9', 'agent');
    assert.equal(lines.length, 3);
    now = 60_000;
    t.failed('10.0.0.9', 'agent');
    assert.equal(lines.length, 4);
    assert.equal(lines[3]!['unloggedSinceLast'], 497);
    assert.equal(lines[3]!['failures'], 501);
  });

  test('addresses: IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:0db8:0001:0002:ffff:1:2:3'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
  });
});
