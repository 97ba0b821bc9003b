// An agent whose credentials the proxy revoked: the
// proxy refuses its upgrade with 403, or closes its socket with
// CLOSE_REVOKED. The agent then says it is revoked and pushes nothing; it must
// not also log "proxy unreachable ... sync goes on under the last grant"
// (it did, right after the refusal), and it does not connect again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { WebSocketServer } from 'ws';
import { agentConfigSchema } from '../../config/agent.ts';
import { HeartbeatClient } from '../../agent/heartbeat.ts';
import { SyncEngine } from '../../agent/sync-engine.ts';
import { validateSettings } from '../../config/file.ts';
import { CLOSE_REVOKED } from '../../protocol/messages.ts';
import { waitFor } from '../fixtures/wait-for.ts';

interface World {
  url: string;
  upgrades: () => number;
  closedSockets: () => number;
  close(): Promise<void>;
}

type Refusal = '403' | '403-text' | 'close';

/** A stand-in for the proxy's /_standby/agent that refuses the way agent-hub.ts does: 403 at the upgrade (a problem body; an older proxy's text), or a grant then close 4003. */
async function refusingProxy(how: Refusal): Promise<World> {
  let upgrades = 0;
  let closed = 0;
  const wss = new WebSocketServer({ noServer: true });
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    upgrades++;
    socket.on('error', () => undefined);
    socket.once('close', () => closed++);
    if (how !== 'close') {
      const why = 'revoked: the credentials of gpu-1 were revoked (fenced at epoch 2); this host may not sync any more';
      const body = how === '403' ? JSON.stringify({ error: { code: 'STANDBY_ERR_HOST_REVOKED', message: why } }) + '\n' : `${why}\n`;
      const type = how === '403' ? 'application/json; charset=utf-8' : 'text/plain';
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: ${type}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => undefined);
      ws.once('message', () => {
        ws.send(JSON.stringify({ type: 'grant', role: 'fenced', epoch: 2, reason: 'failed over' }));
        ws.close(CLOSE_REVOKED, 'revoked: fenced at epoch 2');
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/_standby/agent`,
    upgrades: () => upgrades,
    closedSockets: () => closed,
    close: () => new Promise<void>((resolve) => {
      wss.close();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

const REFUSALS: Record<Refusal, string> = { '403': '403 at the upgrade', '403-text': "403 at the upgrade with an older proxy's text body", close: 'closed with CLOSE_REVOKED' };

for (const how of ['403', '403-text', 'close'] as const) {
  test(`revoked (${REFUSALS[how]}): the agent logs that it is revoked, never "sync goes on under the last grant", and pushes nothing`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'standby-revoked-'));
    const proxy = await refusingProxy(how);
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: 'debug' }, new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
        done();
      },
    }));
    const config = validateSettings(agentConfigSchema, {
      hostId: 'gpu-1',
      workspace: dir,
      standby: { host: '127.0.0.1', path: '/nonexistent' },
      proxy: { url: proxy.url, token: 'agent-token-gpu-1', heartbeatIntervalMs: 50 },
    }, 'test');
    const engine = new SyncEngine(config, log);
    const client = new HeartbeatClient(config.proxy!, config.hostId, engine, log);
    t.after(async () => {
      client.close();
      await engine.close();
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    });
    client.start();
    await waitFor('the revocation', () => client.revoked, { timeoutMs: 10_000 });
    // the refused socket's close comes after the refusal: wait until it is gone on both ends
    await waitFor('the socket closed', () => proxy.closedSockets() >= proxy.upgrades(), { timeoutMs: 10_000 });
    await new Promise((r) => setImmediate(r));
    const messages = lines.map((l) => l.msg);
    assert.ok(messages.some((m) => /revoked this host's credentials/.test(m)), messages.join('\n'));
    assert.ok(!messages.some((m) => /sync goes on under the last grant/.test(m)), `the agent claims sync goes on after it was revoked:\n${messages.join('\n')}`);
    assert.ok(!messages.some((m) => /proxy unreachable/.test(m)), messages.join('\n'));
    assert.equal(engine.pushing, false);
    assert.equal(proxy.upgrades(), 1, 'a revoked agent does not connect again');
    if (how !== 'close') assert.match(client.revoked!, /^revoked: the credentials of gpu-1 were revoked \(fenced at epoch 2\)/, "the reason is the proxy's message, not its wire form");
  });
}
