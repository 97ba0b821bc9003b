// The proxy's own probe of a code-server: its pace is read at each tick (the
// side that does not serve is probed every 2 s in steady phases), and hurry()
// probes at once when that side starts to matter (a failover begins).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { Prober } from '../../proxy/prober.ts';
import { waitFor } from '../fixtures/wait-for.ts';

let server: Server;
let hits = 0;
let base = '';
before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/healthz') hits++;
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('a slow pace probes once, hurry() probes at once; the pace is read again at each tick', async () => {
  let pace = 600_000; // "passive": effectively never again within this test
  const p = new Prober(base, '/healthz', () => pace, 1_000);
  try {
    hits = 0;
    p.start();
    await waitFor('the first probe', () => p.last !== undefined, { timeoutMs: 5_000 });
    assert.equal(hits, 1);
    assert.equal(p.last?.ok, true);
    pace = 20; // something happened: the side matters now
    p.hurry();
    await waitFor('probes at the fast pace', () => hits >= 5, { timeoutMs: 5_000 });
  } finally {
    p.close();
  }
});
