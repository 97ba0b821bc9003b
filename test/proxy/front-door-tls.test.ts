// The front door over HTTPS: the per-client cap is counted after the TLS
// handshake and answered 429 over TLS, and TLS clients that reset after a
// refused upgrade leave the proxy serving.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { startRecordingBackend, type RecordingBackend } from '../fixtures/recording-backend.ts';
import { startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { statusOf } from '../fixtures/raw-http.ts';
import { waitFor } from '../fixtures/wait-for.ts';

describe('the front door over TLS', () => {
  let dir: string;
  let backend: RecordingBackend;
  let proxy: TestProxy;
  let ca: Buffer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'standby-tls-door-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    ca = readFileSync(join(dir, 'cert.pem'));
    backend = await startRecordingBackend();
    proxy = await startTestProxy({
      primaryUrl: backend.url,
      standbyUrl: backend.url,
      fence: () => Promise.reject(new Error('no fence in this test')),
      settings: { tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }, detector: { heartbeatIntervalMs: 60_000, probeIntervalMs: 60_000 }, limits: { maxConnectionsPerClient: 3 }, logLevel: 'warn' },
    });
  });
  after(async () => {
    await proxy?.close();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A TLS connection over a TCP socket the test can reset. */
  function open(): Promise<{ tls: TLSSocket; reset(): void; text(): string; closed: Promise<void> }> {
    return new Promise((resolve, reject) => {
      const tcp = tcpConnect(proxy.port, '127.0.0.1');
      tcp.on('error', () => undefined);
      const tls = tlsConnect({ socket: tcp, ca, host: '127.0.0.1' });
      let text = '';
      tls.on('data', (d: Buffer) => (text += d.toString('latin1')));
      tls.on('error', () => undefined);
      const closed = new Promise<void>((r) => tls.once('close', () => r()));
      tls.once('secureConnect', () => resolve({ tls, reset: () => tcp.resetAndDestroy(), text: () => text, closed }));
      tls.once('close', () => reject(new Error('closed before the handshake')));
    });
  }

  test('TLS clients that reset after a refused upgrade leave the proxy serving', async () => {
    for (let i = 0; i < 10; i++) {
      for (const path of ['/_standby/x', '/_standby/agent']) {
        const c = await open();
        c.tls.write(`GET ${path} HTTP/1.1\r\nHost: dev.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
        if (i % 2 === 0) await waitFor('the refusal', () => c.text().length > 0 || undefined, { timeoutMs: 5_000 });
        c.reset();
        await c.closed;
      }
    }
    const r = await fetchStatus('/_standby/healthz');
    assert.equal(r, 200);
  });

  async function fetchStatus(path: string): Promise<number> {
    const c = await open();
    c.tls.write(`GET ${path} HTTP/1.1\r\nHost: dev.example.com\r\nConnection: close\r\n\r\n`);
    await c.closed;
    return statusOf(c.text());
  }

  test('over maxConnectionsPerClient, a TLS connection is answered 429 after its handshake', async (t) => {
    const held: { tls: TLSSocket }[] = [];
    t.after(() => held.forEach((c) => c.tls.destroy()));
    for (let i = 0; i < 3; i++) held.push(await open());
    const over = await open();
    await over.closed;
    assert.equal(statusOf(over.text()), 429, over.text().slice(0, 100));
    held.pop()!.tls.destroy();
    await waitFor('a freed slot', async () => (await fetchStatus('/_standby/healthz')) === 200, { timeoutMs: 5_000 });
  });
});
