// A stand-in for GCP's metadata server, answering on loopback like the real
// one: /computeMetadata/v1/instance/preempted is FALSE until the test calls
// preempt(); with wait_for_change=true the request hangs until the value
// differs from the caller's last_etag; without the Metadata-Flavor header it
// answers 403, as GCP does.
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeGcpMetadata {
  /** the instance/preempted URL, for the agent's notices.gcpMetadataUrl */
  preemptedUrl: string;
  preempt(): void;
  /** requests seen, with their headers */
  requests: { url: string; flavor: string | undefined }[];
  close(): Promise<void>;
}

export async function startFakeGcpMetadata(): Promise<FakeGcpMetadata> {
  let value = 'FALSE';
  const etagOf = (v: string) => (v === 'TRUE' ? 'etag-true' : 'etag-false');
  const waiting = new Set<ServerResponse>();
  const requests: FakeGcpMetadata['requests'] = [];
  const answer = (res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/text', 'metadata-flavor': 'Google', etag: etagOf(value) });
    res.end(value);
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://metadata');
    requests.push({ url: req.url ?? '', flavor: req.headers['metadata-flavor'] as string | undefined });
    if (req.headers['metadata-flavor'] !== 'Google') {
      res.writeHead(403, { 'content-type': 'text/html' });
      res.end('Missing Metadata-Flavor:Google header.');
      return;
    }
    if (url.pathname !== '/computeMetadata/v1/instance/preempted') {
      res.writeHead(404);
      res.end();
      return;
    }
    const wait = url.searchParams.get('wait_for_change') === 'true';
    const last = url.searchParams.get('last_etag');
    if (!wait || (last !== null && last !== etagOf(value))) return answer(res);
    waiting.add(res);
    res.on('close', () => waiting.delete(res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    preemptedUrl: `http://127.0.0.1:${port}/computeMetadata/v1/instance/preempted`,
    requests,
    preempt() {
      value = 'TRUE';
      for (const res of waiting) answer(res);
      waiting.clear();
    },
    async close() {
      for (const res of waiting) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
