// The proxy on HTTPS (the URL is public): pages, WebSockets and the agent
// socket over TLS, with a certificate the test makes (openssl) and trusts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { AGENT_PATH } from '../../protocol/messages.ts';
import { AGENT_TOKEN, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

describe('TLS', () => {
  let dir: string;
  let gpu: WorkspaceServer;
  let cpu: WorkspaceServer;
  let proxy: TestProxy;
  let ca: Buffer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'standby-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    ca = readFileSync(join(dir, 'cert.pem'));
    [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
    proxy = await startTestProxy({
      primaryUrl: gpu.url,
      standbyUrl: cpu.url,
      fence: () => Promise.reject(new Error('no fence in this test')),
      settings: { tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }, detector: { heartbeatIntervalMs: 60_000 } },
    });
  });
  after(async () => {
    await proxy?.close();
    await Promise.all([gpu?.close(), cpu?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('the proxy serves https and says X-Forwarded-Proto: https', async () => {
    assert.match(proxy.url, /^https:/);
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(`${proxy.url}/echo`, { ca, timeout: 5_000 }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(b));
      });
      req.on('error', reject);
      req.end();
    });
    const seen = JSON.parse(body) as { name: string; headers: Record<string, string> };
    assert.equal(seen.name, 'gpu');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
  });

  test('wss: code-server sockets and the agent socket', async () => {
    const ws = new WebSocket(`${proxy.url.replace('https', 'wss')}/ws`, { ca });
    const hello = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(d.toString()));
      ws.once('error', reject);
    });
    assert.match(hello, /"hello":"gpu"/);
    ws.close();
    const agent = new WebSocket(`${proxy.url.replace('https', 'wss')}${AGENT_PATH}`, { ca, headers: { authorization: `Bearer ${AGENT_TOKEN}` } });
    await new Promise<void>((resolve, reject) => {
      agent.once('open', () => resolve());
      agent.once('error', reject);
    });
    agent.close();
  });

  test('a client that does not trust the certificate is refused by TLS, not served', async () => {
    const r = await fetch(`${proxy.url}/whoami`).then(() => 'served', (e: Error) => String((e.cause as Error | undefined)?.message ?? e.message));
    assert.match(r, /self-signed|certificate/i);
  });
});
