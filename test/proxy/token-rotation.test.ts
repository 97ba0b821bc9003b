// Tokens rotated without downtime: `standby hosts rotate ID`
// issues a new agent token while the old one stays valid for a grace window,
// both shown in the host list; the agent reads proxy.tokenFile at every
// connection, so replacing the file is enough; when the window ends the old
// token is refused and a connection still on it is closed, the agent coming
// back with the new one. The admin token: previousAdminTokens, and a SIGHUP
// that re-reads proxy.json keeps the former token valid for the window.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { HeartbeatClient } from '../../agent/heartbeat.ts';
import { AGENT_PATH } from '../../protocol/messages.ts';
import { freePort } from '../../core/free-port.ts';
import { standby } from '../fixtures/cli-run.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, agentSocketAnswer, proxySettings, startTestProxy, startProxyWithBackends, type ProxyWithBackends, type TestProxy } from '../fixtures/proxy.ts';
import { startProxyProcess, type ProxyProcess } from '../fixtures/proxy-process.ts';
import { startPair, type SyncPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';

/** 'open' or the HTTP status the agent socket was refused with. */
const connect = (url: string, token: string): Promise<number | 'open'> => agentSocketAnswer(url, token);

const adminStatus = (url: string, token: string) => fetch(`${url}/_standby/api/v1/status`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) }).then((r) => r.status);

describe('agent token rotation', () => {
  let world: ProxyWithBackends;
  let proxy: TestProxy;
  let pair: SyncPair | undefined;
  let client: HeartbeatClient | undefined;
  before(async () => {
    world = await startProxyWithBackends({
      fence: () => Promise.reject(new Error('no fence in this test')),
      settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } },
    });
    proxy = world.proxy;
  });
  after(async () => {
    client?.close();
    await pair?.close();
    await world?.close();
  });

  test('rotate: both tokens work in the window, the list shows it, the agent picks the new one up from its file, then the old one is refused', async () => {
    const url = proxy.url.replace('http', 'ws') + AGENT_PATH;
    pair = await startPair({ noStart: true, settings: { hostId: 'gpu-1', proxy: { url, tokenFile: '/nonexistent-set-below', heartbeatIntervalMs: 100 } } });
    const tokenFile = join(pair.top, 'agent-token');
    writeFileSync(tokenFile, AGENT_TOKEN + '\n', { mode: 0o600 });
    client = new HeartbeatClient({ ...pair.config.proxy!, tokenFile }, 'gpu-1', pair.engine, pino({ level: 'silent' }));
    client.start();
    await waitFor('the agent granted with the proxy.json token', () => client!.grants > 0, { timeoutMs: 5_000 });

    const graceSeconds = 3;
    const res = await proxy.api('hosts/gpu-1/rotate', { method: 'POST', body: JSON.stringify({ graceSeconds }) });
    assert.equal(res.status, 200, await res.clone().text());
    const r = (await res.json()) as { agentToken: string; previousValidUntil: string };
    assert.match(r.agentToken, /^sba_/);
    const listed = ((await (await proxy.api('hosts')).json()) as { hosts: { id: string; source: string; previousTokenValidUntil: string | null }[] }).hosts.find((h) => h.id === 'gpu-1')!;
    assert.equal(listed.source, 'rotated');
    assert.equal(listed.previousTokenValidUntil, r.previousValidUntil);

    assert.equal(await connect(proxy.url, AGENT_TOKEN), 'open', 'the old token works in the window');
    assert.equal(await connect(proxy.url, r.agentToken), 'open', 'the new one works at once');
    // the agent's connection on the old token still heartbeats
    const grants = client.grants;
    await waitFor('heartbeats go on', () => client!.grants > grants + 2, { timeoutMs: 5_000 });

    // the operator replaces the file; the window ends: the old connection is closed, the agent reconnects with the new token
    writeFileSync(tokenFile, r.agentToken + '\n', { mode: 0o600 });
    await waitFor('the retired token\'s connection closed at the end of the window', () => proxy.logs.some((l) => /retired agent token this connection used has expired/.test(String(l['msg']))), { timeoutMs: graceSeconds * 1000 + 5_000 });
    const after = client.grants;
    await waitFor('the agent back, on the new token', () => client!.grants > after + 2 && proxy.hub.agents.get('gpu-1')!.connected, { timeoutMs: 10_000 });
    assert.equal(await connect(proxy.url, AGENT_TOKEN), 401, 'the old token is refused after the window');
    assert.equal(await connect(proxy.url, r.agentToken), 'open');
    const relisted = ((await (await proxy.api('hosts')).json()) as { hosts: { id: string; previousTokenValidUntil: string | null }[] }).hosts.find((h) => h.id === 'gpu-1')!;
    assert.equal(relisted.previousTokenValidUntil, null);
  });

  test('rotate refuses what has no token, and a bad grace', async () => {
    const invited = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'gpu-7' }) });
    assert.equal(invited.status, 201);
    assert.equal((await proxy.api('hosts/gpu-7/rotate', { method: 'POST' })).status, 409);
    assert.equal((await proxy.api('hosts/gpu-9/rotate', { method: 'POST' })).status, 404);
    assert.equal((await proxy.api('hosts/gpu-1/rotate', { method: 'POST', body: '{"graceSeconds":-1}' })).status, 400);
  });
});

describe('admin token rotation', () => {
  test('previousAdminTokens: accepted until their time, never after', async () => {
    const proxy = await startTestProxy({
      primaryUrl: 'http://127.0.0.1:1',
      standbyUrl: 'http://127.0.0.1:2',
      fence: () => Promise.reject(new Error('no fence in this test')),
      settings: {
        detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 },
        previousAdminTokens: [
          { token: 'old-admin-token-1', until: new Date(Date.now() + 3_600_000).toISOString() },
          { token: 'old-admin-token-0', until: '2020-01-01T00:00:00Z' },
        ],
      },
    });
    try {
      assert.equal(await adminStatus(proxy.url, ADMIN_TOKEN), 200);
      assert.equal(await adminStatus(proxy.url, 'old-admin-token-1'), 200);
      assert.equal(await adminStatus(proxy.url, 'old-admin-token-0'), 401, 'expired');
      const s = (await (await proxy.api('status')).json()) as { auth: { retiringAdminTokensUntil: string[] } };
      assert.equal(s.auth.retiringAdminTokensUntil.length, 1);
      assert.ok(!JSON.stringify(s).includes('old-admin-token-1'), 'the status never shows a token');
    } finally {
      await proxy.close();
    }
  });

  describe('SIGHUP re-reads proxy.json', () => {
    let dir = '';
    let p: ProxyProcess | undefined;
    after(async () => {
      await p?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('a new adminToken works at once; the former one for auth.rotationGraceMs; the proxy serves on', async () => {
      dir = mkdtempSync(join(tmpdir(), 'standby-sighup-'));
      const port = await freePort();
      const file = join(dir, 'proxy.json');
      const settings = (adminToken: string) => ({
        ...proxySettings({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', settings: { logLevel: 'info', detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 }, auth: { rotationGraceMs: 3_000 } } }, join(dir, 'state')),
        listen: { host: '127.0.0.1', port },
        adminToken,
      });
      writeFileSync(file, JSON.stringify(settings(ADMIN_TOKEN)), { mode: 0o600 });
      p = await startProxyProcess(file, port);
      assert.equal(await adminStatus(p.url, ADMIN_TOKEN), 200);
      const NEW = 'new-admin-token-after-rotation';
      assert.equal(await adminStatus(p.url, NEW), 401);
      writeFileSync(file, JSON.stringify(settings(NEW)), { mode: 0o600 });
      p.kill('SIGHUP');
      await waitFor('the new admin token accepted', async () => (await adminStatus(p!.url, NEW)) === 200, { timeoutMs: 10_000 });
      assert.equal(await adminStatus(p.url, ADMIN_TOKEN), 200, 'the former one still works in the window');
      await waitFor('the former token refused after the window', async () => (await adminStatus(p!.url, ADMIN_TOKEN)) === 401, { timeoutMs: 10_000 });
      const cli = await standby(['status', '--proxy', p.url, '--token', NEW]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(p.log(), /admin token replaced/);
    });
  });
});
