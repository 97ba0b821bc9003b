// The agent's local status endpoint, on loopback only: GET /status for the
// sync state, POST /confirm-deletes to release deletions the guard holds,
// POST /resync for a full reconcile now. `standby status --agent` and
// `standby sync` call it; its answers' shapes are protocol/agent-status.ts.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SyncEngine } from './sync-engine.ts';

export interface StatusServer {
  port: number;
  close(): Promise<void>;
}

export async function startStatusServer(engine: SyncEngine, host: string, port: number): Promise<StatusServer> {
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body) + '\n');
    };
    if (req.method === 'GET' && req.url === '/status') return send(200, engine.status());
    if (req.method === 'POST' && req.url === '/confirm-deletes') return send(200, engine.confirmDeletes());
    if (req.method === 'POST' && req.url === '/resync') {
      engine.requestFullResync('asked through the status endpoint');
      return send(202, { ok: true });
    }
    send(404, { error: 'not found: try GET /status' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
