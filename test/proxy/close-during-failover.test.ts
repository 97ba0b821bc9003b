// A proxy stopped (systemd's SIGTERM, a test's close) while a planned
// failover waits for the GPU agent's final pass: it closes at once, and logs
// no new epoch on its way out (a restarted proxy decides again). Before, the
// pending request was dropped unanswered and close() waited on it for ever.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { AGENT_TOKEN, startProxyWithBackends } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('closed while the final pass is awaited: close() returns, no epoch is logged', { timeout: 60_000 }, async () => {
  const world = await startProxyWithBackends({
    fence: () => Promise.resolve({ waitedMs: 0, killed: 0 }),
    settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } },
  });
  let ws: WebSocket | undefined;
  let closed = false;
  try {
    const { proxy } = world;
    // a GPU agent that heartbeats once and never answers sync-now
    ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/_standby/agent`, { headers: { authorization: `Bearer ${AGENT_TOKEN}` } });
    ws.on('error', () => undefined);
    await new Promise((resolve, reject) => {
      ws!.once('open', resolve);
      ws!.once('unexpected-response', () => reject(new Error('agent socket refused')));
    });
    ws.send(JSON.stringify({
      type: 'heartbeat', hostId: 'gpu-1', epoch: 0, seq: 1,
      sync: { watermark: 0, lastSeq: 0, pending: 0, oldestPendingAgeMs: null, lastPassAgeMs: null, ready: true, held: false, lastError: null },
      codeServer: { healthy: true, checkedAgeMs: 0 }, preemption: null,
    }));
    await waitFor('the GPU seen', () => proxy.store.state.phase === 'normal', { timeoutMs: 5_000 });
    assert.equal((await proxy.api('failover', { method: 'POST' })).status, 202);
    await waitFor('frozen, waiting for the final pass', () => proxy.failover.frozen, { timeoutMs: 5_000 });

    const started = performance.now();
    const result = await Promise.race([
      world.close().then(() => 'closed'),
      new Promise((resolve) => setTimeout(resolve, 5_000, 'still closing after 5 s')).then((r) => r),
    ]);
    closed = result === 'closed';
    assert.equal(result, 'closed');
    assert.ok(performance.now() - started < 5_000);
    assert.equal(proxy.store.events().filter((e) => e.type === 'epoch').length, 0, 'no epoch logged on the way out');
  } finally {
    ws?.terminate();
    if (!closed) await world.close().catch(() => undefined);
  }
});
