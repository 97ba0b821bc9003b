// Regression: a client that sends a WebSocket upgrade
// the proxy refuses (/_standby/x, the agent socket without a token, any path
// while no backend is ready) and then resets its TCP connection crashed the
// proxy with an unhandled 'error' (ECONNRESET). The proxy runs here as a real
// child process, and must stay up and keep serving.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../core/free-port.ts';
import { ADMIN_TOKEN, proxySettings } from '../fixtures/proxy.ts';
import { startProxyProcess, type ProxyProcess } from '../fixtures/proxy-process.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

const ROUNDS = 15;

/** Sends `request` over raw TCP, resets the connection (RST) once the answer starts, or at once when `early`; resolves when closed. */
function sendThenReset(port: number, request: string, early: boolean): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => s.resetAndDestroy(), 2_000);
    s.on('error', () => undefined); // our own reset, or the proxy's close
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.on('connect', () => {
      s.write(request);
      if (early) setImmediate(() => s.resetAndDestroy());
    });
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      s.resetAndDestroy();
    });
  });
}

const upgrade = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: dev.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;

describe('clients that reset their connection', () => {
  let top: string;
  let gpu: WorkspaceServer;
  let cpu: WorkspaceServer;
  let proxy: ProxyProcess;
  let port: number;
  before(async () => {
    top = mkdtempSync(join(tmpdir(), 'standby-resets-'));
    [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
    port = await freePort();
    const configFile = join(top, 'proxy.json');
    // no agent and a long window: the proxy stays normal and routes to the GPU until the test fails it over
    // auth.maxFailures high: these rounds of refused upgrades are about resets, not lockouts (auth-throttle.test.ts)
    const settings = proxySettings({ primaryUrl: gpu.url, standbyUrl: cpu.url, settings: { listen: { host: '127.0.0.1', port }, logLevel: 'warn', auth: { maxFailures: 1000 }, detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 10 } } }, join(top, 'state'));
    writeFileSync(configFile, JSON.stringify(settings), { mode: 0o600 });
    proxy = await startProxyProcess(configFile, port);
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all([gpu?.close(), cpu?.close()]);
    rmSync(top, { recursive: true, force: true });
  });

  async function assertServing(): Promise<void> {
    assert.equal(proxy.log().match(/ECONNRESET|Unhandled|uncaught/i), null, `the proxy's log: ${proxy.log().slice(-2000)}`);
    const health = await fetch(`${proxy.url}/_standby/healthz`, { signal: AbortSignal.timeout(2_000) });
    assert.equal(health.status, 200);
  }

  test('upgrades to /_standby/ paths and to the agent socket without a token, reset before and after the answer', async () => {
    for (let i = 0; i < ROUNDS; i++) {
      for (const early of [false, true]) {
        const a = await sendThenReset(port, upgrade('/_standby/x'), early);
        if (!early) assert.match(a, /^HTTP\/1\.1 404 /);
        const b = await sendThenReset(port, upgrade('/_standby/agent'), early);
        if (!early) assert.match(b, /^HTTP\/1\.1 401 /);
        await sendThenReset(port, upgrade('/_standby/agent', 'Authorization: Bearer wrong-token-xyz\r\n'), early);
        await sendThenReset(port, upgrade('/x/../_standby/x'), early);
      }
    }
    await assertServing();
    assert.equal(await (await fetch(`${proxy.url}/whoami`, { signal: AbortSignal.timeout(2_000) })).text(), 'gpu', 'and it still routes');
  });

  test('upgrades while no backend is ready (a failover that cannot fence), reset before and after the 503', async () => {
    const r = await fetch(`${proxy.url}/_standby/api/v1/failover`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(2_000) });
    assert.equal(r.status, 202);
    // the fence key does not exist: the failover stays in failing_over, and nothing is routed
    await waitFor('no backend ready', async () => (await fetch(`${proxy.url}/anything`, { signal: AbortSignal.timeout(1_000) })).status === 503, { timeoutMs: 10_000 });
    for (let i = 0; i < ROUNDS; i++) {
      for (const early of [false, true]) {
        const a = await sendThenReset(port, upgrade('/stable-abc/?reconnectionToken=1'), early);
        if (!early) assert.match(a, /^HTTP\/1\.1 503 /);
        await sendThenReset(port, upgrade('/_standby/x'), early);
      }
    }
    await assertServing();
  });
});
