// Fuzzer for the admin API's bodies: random methods, paths under
// /_standby/api/v1/ (and /_standby/enroll), JSON and non-JSON bodies, with
// the admin token, a wrong one or none. No 500, no crash; without the token
// only 401 or 429 and no change at all; with it, state (hosts.json, the
// failover state) changes only on an answer that says it did (2xx).
// Bounded in count and time; the seed is in any failure's message
// (STANDBY_FUZZ_SEED=N replays it).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ErrorCodes } from '../../core/errors.ts';
import { pathOwner } from '../../proxy/request-path.ts';
import { seededRandom, withSeed, type Random } from '../fixtures/fuzz-random.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, startProxyWithBackends, type ProxyWithBackends, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const ROUNDS = 600;
const TIME_LIMIT_MS = 60_000;
const AUTHORIZED_FROM = '127.0.0.22';

interface Answer { status: number; body: string; type: string }

function send(url: string, o: { from: string; method: string; path: string; token: string | undefined; body: Buffer | undefined; contentType: string | undefined }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({
      host: u.hostname, port: u.port, method: o.method, path: o.path, localAddress: o.from, timeout: 10_000,
      headers: { ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}), ...(o.contentType ? { 'content-type': o.contentType } : {}), ...(o.body ? { 'content-length': String(o.body.length) } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), type: String(res.headers['content-type'] ?? '') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${o.method} ${o.path} within 10 s`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

function jsonValue(r: Random, depth = 0): unknown {
  switch (r.int(0, depth > 3 ? 4 : 7)) {
    case 0: return null;
    case 1: return r.chance(0.5);
    case 2: return r.pick([0, -1, 60, 3600, 604_801, 1.5, 1e300, -0, 2 ** 53 + 1]);
    case 3: return r.string(r.int(0, 40));
    case 4: return r.pick(['gpu-1', 'gpu-2', 'cpu-1', 'gpu 1', '../x', '', 'a'.repeat(300)]);
    case 5: return Array.from({ length: r.int(0, 4) }, () => jsonValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(0, 4); i > 0; i--) o[r.pick(['id', 'ttlSeconds', 'graceSeconds', 'publicKey', 'hostname', '__proto__', 'constructor', r.string(r.int(1, 8), 'abcxyz')])] = jsonValue(r, depth + 1);
      return o;
    }
  }
}

function body(r: Random): { body: Buffer | undefined; contentType: string | undefined } {
  const contentType = r.pick([undefined, 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16']);
  switch (r.int(0, 7)) {
    case 0: return { body: undefined, contentType };
    case 1: return { body: Buffer.from(r.string(r.int(0, 300))), contentType };
    case 2: return { body: Buffer.from(Array.from({ length: r.int(1, 200) }, () => r.int(0, 255))), contentType };
    case 3: return { body: Buffer.alloc(r.int(65_537, 80_000), 0x7b), contentType }; // over the 64 KiB limit
    case 4: return nearInvite(r);
    case 5: return { body: Buffer.from(JSON.stringify(r.pick([{}, { graceSeconds: r.pick([0, 60, -1, 3e6, 'x']) }]))), contentType }; // near a rotation
    default: return { body: Buffer.from(JSON.stringify(jsonValue(r))), contentType };
  }
}

/** An invitation's body, valid or off by a little. */
function nearInvite(r: Random): { body: Buffer; contentType: string } {
  return { body: Buffer.from(JSON.stringify({ id: r.pick(['gpu-2', 'gpu-3', 'gpu 4', 'cpu-1']), ttlSeconds: r.pick([60, 3600, 59, 604_801, 'x']) })), contentType: 'application/json' };
}

function path(r: Random): string {
  const id = r.pick(['gpu-1', 'gpu-2', 'cpu-1', 'nobody', '%zz', '%2e%2e', encodeURIComponent(r.string(r.int(1, 12))), '']);
  const p = r.pick([
    'status', 'associations', 'events', 'failover', 'failover/report', 'failover/report?days=0', 'settings', 'hosts', 'hosts/', `hosts/${id}/rotate`, `hosts/${id}/revoke`, `hosts/${id}`, `hosts/${id}/x`,
    '', 'STATUS', 'status/', '../status', 'hosts/../status', encodeURIComponent(r.string(r.int(1, 20))),
  ]);
  const query = r.chance(0.1) ? `?${encodeURIComponent(r.string(r.int(1, 20)))}=${encodeURIComponent(r.string(r.int(0, 20)))}` : '';
  return r.chance(0.08) ? `/_standby/enroll${query}` : `/_standby/api/v1/${p}${query}`;
}

let world: ProxyWithBackends;
let proxy: TestProxy;
before(async () => {
  world = await startProxyWithBackends({
    // the fence is never reached: a failover the fuzzer starts waits here (failing_over) until the proxy closes
    fence: () => Promise.reject(new Error('no fence in this test')),
    settings: {
      detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 },
      standby: { ssh: { timeoutMs: 1_000, waitMs: 0 } },
      logLevel: 'warn',
    },
  });
  proxy = world.proxy;
});
after(async () => {
  await world?.close();
});

test(`admin API fuzzer: ${ROUNDS} requests, no 500, state changes only on an authorized 2xx`, { timeout: TIME_LIMIT_MS + 30_000 }, async (t) => {
  const r = seededRandom();
  t.diagnostic(`seed ${r.seed} (STANDBY_FUZZ_SEED to replay)`);
  const hostsFile = join(proxy.config.stateDir, 'hosts.json');
  const snapshot = () => JSON.stringify({ hosts: existsSync(hostsFile) ? readFileSync(hostsFile, 'utf8') : '', state: proxy.store.state, events: proxy.store.events().length });
  await withSeed(r, 'admin API fuzzer', async () => {
    const started = performance.now();
    const seen = new Map<number, number>();
    for (let i = 0; i < ROUNDS && performance.now() - started < TIME_LIMIT_MS; i++) {
      const authorized = r.chance(0.6);
      const token = authorized ? ADMIN_TOKEN : r.pick([undefined, '', 'wrong-admin-token', AGENT_TOKEN, `${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1), r.string(r.int(1, 60), 'abcdef0123456789')]);
      const from = authorized ? AUTHORIZED_FROM : `127.0.1.${r.int(1, 32)}`;
      // a third of the authorized requests go where bodies are read (invite, rotate), so bodies get past the token
      const toBodies = authorized && r.chance(0.35);
      const method = toBodies ? 'POST' : r.pick(['GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);
      const p = toBodies ? `/_standby/api/v1/${r.pick(['hosts', 'hosts', 'hosts/gpu-1/rotate', 'hosts/gpu-2/rotate'])}` : path(r);
      const b = toBodies && p.endsWith('/hosts') && r.chance(0.3) ? nearInvite(r) : body(r);
      const before = snapshot();
      const what = `request ${i}: ${method} ${p} ${authorized ? 'with the token' : `token ${JSON.stringify(token)?.slice(0, 30)}`}, body ${b.body ? JSON.stringify(b.body.subarray(0, 80).toString()) : 'none'}`;
      const a = await send(proxy.url, { from, method, path: p, token, ...b });
      seen.set(a.status, (seen.get(a.status) ?? 0) + 1);
      assert.ok(a.status < 500, `${what}: answered ${a.status} ${a.body.slice(0, 300)}`);
      if (a.type.startsWith('application/json') && method !== 'HEAD') {
        const parsed = JSON.parse(a.body) as { error?: { code?: unknown; message?: unknown } };
        if (a.status >= 400) assert.ok(typeof parsed.error?.code === 'string' && typeof parsed.error.message === 'string', `${what}: a problem answer`);
        if (a.status >= 400) assert.ok(Object.hasOwn(ErrorCodes, parsed.error!.code as string), `${what}: ${String(parsed.error!.code)} is not a STANDBY_ERR_* code of core/errors.ts`);
      }
      if (!authorized) {
        // outside the API once normalized (/_standby/api/v1/../x): a plain 404; enroll takes POST only
        const outside = !new URL(p, 'http://proxy').pathname.startsWith('/_standby/api/v1/') && !p.startsWith('/_standby/enroll');
        // a path a backend could read as another (/hosts/%2e%2e) is refused at the front door, before any token
        const ambiguous = pathOwner(p) === 'ambiguous';
        assert.ok([401, 429].includes(a.status) || (outside && a.status === 404) || (p.startsWith('/_standby/enroll') && a.status === 405) || (ambiguous && a.status === 400), `${what}: without the admin token only 401/429, got ${a.status}`);
        if (a.status === 401 && method !== 'HEAD') assert.deepEqual(JSON.parse(a.body), { error: { code: 'STANDBY_ERR_UNAUTHORIZED', message: 'unauthorized' } });
      } else {
        assert.ok([200, 201, 202, 400, 401, 404, 405, 409].includes(a.status), `${what}: answered ${a.status}`);
        if (a.status === 401) assert.ok(p.startsWith('/_standby/enroll'), `${what}: the admin token is refused only at enroll (it is no invitation)`);
      }
      // a failover accepted goes on after the answer: wait for it to settle (the fence is refused here) before the next snapshot
      if (a.status === 202 && p.includes('/failover')) await waitFor('the failover under way', () => proxy.store.state.phase === 'failing_over', { timeoutMs: 15_000 });
      const after = snapshot();
      if (after !== before) assert.ok(authorized && a.status >= 200 && a.status < 300, `${what}: the state changed on a ${a.status}`);
    }
    t.diagnostic(`answers: ${JSON.stringify(Object.fromEntries([...seen].sort((x, y) => x[0] - y[0])))}`);
    assert.ok((seen.get(401) ?? 0) > 0 && (seen.get(404) ?? 0) > 0 && (seen.get(400) ?? 0) > 20 && (seen.get(200) ?? 0) > 0 && (seen.get(201) ?? 0) > 0, 'the main outcomes were exercised');
    const health = await fetch(`${proxy.url}/_standby/healthz`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(health.status, 200, 'the proxy is up');
  });
});
