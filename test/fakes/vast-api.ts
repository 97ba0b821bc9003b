// A stand-in for the Vast.ai REST API on loopback, as much of it as the proxy
// reads: GET /api/v0/instances/{id}/ with a Bearer key, answering
// {"instances": {..., "actual_status": ...}} like the real one.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeVastApi {
  /** base URL, for primary.notices.vast.apiUrl */
  apiUrl: string;
  apiKey: string;
  setStatus(instanceId: number, actualStatus: string | null): void;
  requests: number;
  close(): Promise<void>;
}

export async function startFakeVastApi(apiKey = 'fake-vast-key'): Promise<FakeVastApi> {
  const instances = new Map<number, string | null>();
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${apiKey}`) return json(401, { success: false, error: 'invalid_api_key', msg: 'Invalid user key' });
    const m = /^\/api\/v0\/instances\/(\d+)\/(\?.*)?$/.exec(req.url ?? '');
    if (!m || req.method !== 'GET') return json(404, { success: false, error: 'not_found' });
    const id = Number(m[1]);
    if (!instances.has(id)) return json(200, { instances: null });
    json(200, { instances: { id, actual_status: instances.get(id), intended_status: 'running', cur_state: 'running', gpu_name: 'RTX 4090', num_gpus: 1 } });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    apiUrl: `http://127.0.0.1:${port}/api/v0`,
    apiKey,
    setStatus: (id, s) => void instances.set(id, s),
    get requests() {
      return requests;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
