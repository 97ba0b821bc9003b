// The lag history through the real proxy: the GPU agent's heartbeats become
// samples at GET /_standby/api/v1/sync/lag, and a proxy restarted on the same
// state folder still has them (the chart is not emptied by a restart).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import type { Grant, Heartbeat } from '../../protocol/messages.ts';
import type { LagSample } from '../../proxy/lag-history.ts';
import { AGENT_TOKEN, connectAgent, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer } from '../fixtures/workspace-server.ts';

async function lagSamples(proxy: TestProxy): Promise<LagSample[]> {
  const res = await proxy.api('sync/lag');
  assert.equal(res.status, 200);
  return ((await res.json()) as { samples: LagSample[] }).samples;
}

test('the GPU agent\'s heartbeats are the chart\'s samples, and a restarted proxy still has them', { timeout: 60_000 }, async (t) => {
  const [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
  t.after(() => Promise.all([gpu.close(), cpu.close()]));
  const stateDir = mkdtempSync(join(tmpdir(), 'standby-lag-restart-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const options = { primaryUrl: gpu.url, standbyUrl: cpu.url, stateDir };
  let proxy = await startTestProxy(options);
  t.after(() => proxy.close());

  const { ws } = await connectAgent(proxy.url, AGENT_TOKEN);
  assert.ok(ws, 'the agent socket opened');
  let epoch = 0;
  ws.on('message', (d) => {
    const grant = JSON.parse(d.toString()) as Grant;
    if (typeof grant.epoch === 'number') epoch = grant.epoch;
  });
  let seq = 0;
  const beat = (): void => {
    const hb: Heartbeat = {
      type: 'heartbeat', hostId: 'gpu-1', epoch, seq: ++seq,
      sync: { watermark: 3, lastSeq: 7, pending: seq, oldestPendingAgeMs: 100 * seq, lastPassAgeMs: 100, ready: true, held: false, lastError: null, target: null, progress: null },
      codeServer: { healthy: true, checkedAgeMs: 10 }, preemption: null, frozen: false, resume: null,
    };
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(hb));
  };
  beat();
  const timer = setInterval(beat, 200);
  t.after(() => clearInterval(timer));
  // the lag grows with every heartbeat: what the first write put on disk is not what the chart ends with
  await waitFor('a sample with the heartbeats\' lag', async () => (await lagSamples(proxy)).some((s) => s[1] >= 1_500 && s[2] >= 15), { timeoutMs: 10_000 });
  clearInterval(timer);
  ws.close();
  const before = await lagSamples(proxy);

  await proxy.close();
  proxy = await startTestProxy(options);
  assert.deepEqual(await lagSamples(proxy), before, 'the same samples after the restart');
});
