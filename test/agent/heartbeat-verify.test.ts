// The agent's side of `standby verify --from-proxy`: a verify request from
// the proxy runs the comparison here and answers under the request's id; a
// second request while one runs is answered at once with a refusal, so the
// admin cannot stack whole-workspace checksum runs on the GPU.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { agentConfigSchema } from '../../config/agent.ts';
import { HeartbeatClient } from '../../agent/heartbeat.ts';
import { SyncEngine } from '../../agent/sync-engine.ts';
import { validateSettings } from '../../config/file.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('verify requests: answered under their id with the differences; one at a time', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-hb-verify-'));
  const answers: Record<string, unknown>[] = [];
  let agentSocket: WebSocket | undefined;
  const wss = new WebSocketServer({ noServer: true });
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => undefined);
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => undefined);
      agentSocket = ws;
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString()) as Record<string, unknown>;
        if (m['type'] === 'verified') answers.push(m);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/_standby/agent`;
  const log = pino({ level: 'silent' });
  const config = validateSettings(agentConfigSchema, { hostId: 'gpu-1', workspace: dir, standby: { host: '127.0.0.1', path: '/nonexistent' }, proxy: { url, token: 'agent-token-gpu-1' } }, 'test');
  const engine = new SyncEngine(config, log);
  const client = new HeartbeatClient(config.proxy!, config.hostId, engine, log);
  let finish: (() => void) | undefined;
  let runs = 0;
  client.verifier = () => {
    runs++;
    return new Promise((resolve) => (finish = () => resolve([{ root: dir, path: 'extra.txt', kind: 'extra on standby' }])));
  };
  t.after(async () => {
    client.close();
    await engine.close();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });
  client.start();
  const ws = await waitFor('the agent connected', () => agentSocket, { timeoutMs: 10_000 });
  ws.send(JSON.stringify({ type: 'verify', id: 'first' }));
  await waitFor('the first verify running', () => runs === 1, { timeoutMs: 5_000 });
  ws.send(JSON.stringify({ type: 'verify', id: 'second' }));
  const refused = await waitFor('the second answered', () => answers.find((a) => a['id'] === 'second'), { timeoutMs: 5_000 });
  assert.deepEqual(refused, { type: 'verified', id: 'second', ok: false, total: 0, differences: [], error: 'a verify is already running on this host: try again when it is done' });
  assert.equal(runs, 1, 'the second did not start a comparison');
  finish!();
  const first = await waitFor('the first answered', () => answers.find((a) => a['id'] === 'first'), { timeoutMs: 5_000 });
  assert.deepEqual(first, { type: 'verified', id: 'first', ok: true, total: 1, differences: [{ root: dir, path: 'extra.txt', kind: 'extra on standby' }], error: null });
  ws.send(JSON.stringify({ type: 'verify', id: 'third' }));
  await waitFor('a third, after the first, runs', () => runs === 2, { timeoutMs: 5_000 });
  finish!();
  await waitFor('the third answered', () => answers.find((a) => a['id'] === 'third'), { timeoutMs: 5_000 });
});
