// Passive health: while the serving backend answers forwarded requests, those
// answers stand in for its probes (no GET /healthz reaches it), the other side
// is still probed, and a backend that dies under traffic is probed at once by
// the failing requests, no later than the probe alone would have noticed.
import assert from 'node:assert/strict';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { startWorkspaceServer } from '../fixtures/workspace-server.ts';
import { waitFor } from '../fixtures/wait-for.ts';

interface ProbeStatus {
  ok: boolean;
  error: string | null;
  failuresInARow: number;
  fromTraffic: boolean;
}

function probeOf(proxy: TestProxy, side: 'primary' | 'standby'): ProbeStatus | null {
  const backends = proxy.status().backends as { side: string; probe: ProbeStatus | null }[];
  return backends.find((b) => b.side === side)?.probe ?? null;
}

/** A backend counting the probes (GET /healthz) it gets; anything else answers its name. */
async function countingBackend(name: string): Promise<{ server: Server; url: string; probes: () => number }> {
  let probes = 0;
  const server = createServer((req, res) => {
    if (req.url === '/healthz') probes++;
    res.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, probes: () => probes };
}

/** Keep-alive GETs through the proxy, `clients` at a time, until stopped (bounded in count and time). */
function traffic(url: string, clients = 4): { stop(): Promise<void>; answered: () => number } {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  let stop = false;
  let answered = 0;
  const deadline = performance.now() + 60_000;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request(`${url}/whoami`, { agent, timeout: 2_000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if ((res.statusCode ?? 500) < 500) answered++;
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve());
      req.end();
    });
  const loops = Array.from({ length: clients }, async () => {
    for (let n = 0; !stop && n < 200_000 && performance.now() < deadline; n++) await one();
  });
  return {
    answered: () => answered,
    async stop() {
      stop = true;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

test('under steady traffic the serving backend gets no probe (its answers stand in); the other side is still probed; probes resume when traffic stops', async () => {
  const gpu = await countingBackend('gpu');
  const cpu = await countingBackend('cpu');
  let proxy: TestProxy | undefined;
  let load: ReturnType<typeof traffic> | undefined;
  try {
    proxy = await startTestProxy({ primaryUrl: gpu.url, standbyUrl: cpu.url, settings: { detector: { probeIntervalMs: 250, passiveProbeIntervalMs: 750 } } });
    const p = proxy;
    await waitFor('the first probes', () => gpu.probes() >= 1 && cpu.probes() >= 1, { timeoutMs: 5_000 });
    load = traffic(p.url);
    await waitFor('an answer standing in for a probe', () => probeOf(p, 'primary')?.fromTraffic === true, { timeoutMs: 5_000 });
    const gpuBefore = gpu.probes();
    const cpuBefore = cpu.probes();
    const answeredBefore = load.answered();
    const started = performance.now();
    // 4 probes of the standby's side (750 ms apart): about 12 ticks of the GPU's 250 ms pace
    await waitFor('the standby probed on', () => cpu.probes() >= cpuBefore + 4, { timeoutMs: 10_000 });
    const ticks = Math.floor((performance.now() - started) / 250);
    const gpuProbes = gpu.probes() - gpuBefore;
    assert.ok(load.answered() - answeredBefore > ticks, 'traffic flowed all along');
    // a tick finds no answer only when this process stalled for a whole tick (the clients are in it too)
    assert.ok(gpuProbes <= 1, `the GPU got ${gpuProbes} probes in ${ticks} ticks under traffic (before passive health: one a tick)`);
    assert.equal(probeOf(p, 'primary')?.ok, true);

    await load.stop();
    load = undefined;
    const idleFrom = gpu.probes();
    await waitFor('probes of the GPU again once traffic stopped', () => gpu.probes() >= idleFrom + 3, { timeoutMs: 5_000 });
    assert.equal(probeOf(p, 'primary')?.fromTraffic, false);
  } finally {
    await load?.stop();
    await proxy?.close();
    for (const s of [gpu.server, cpu.server]) {
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    }
  }
});

test('a backend SIGKILLed under traffic is probed at once by the failing requests, not at the next tick', async () => {
  const [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
  let proxy: TestProxy | undefined;
  let load: ReturnType<typeof traffic> | undefined;
  const PACE_MS = 4_000;
  try {
    // a slow pace: a failure seen well within it was not found by the regular tick
    proxy = await startTestProxy({ primaryUrl: gpu.url, standbyUrl: cpu.url, settings: { detector: { probeIntervalMs: PACE_MS } } });
    const p = proxy;
    await waitFor('the first probe', () => probeOf(p, 'primary')?.ok === true, { timeoutMs: 5_000 });
    load = traffic(p.url);
    // the tick after traffic began took the answers instead of probing: the next regular one is a pace away
    await waitFor('an answer standing in for a probe', () => probeOf(p, 'primary')?.fromTraffic === true, { timeoutMs: PACE_MS * 3 });
    const killedAt = performance.now();
    gpu.kill('SIGKILL');
    const seen = await waitFor('the probe failing', () => {
      const probe = probeOf(p, 'primary');
      return probe && !probe.ok ? probe : undefined;
    }, { timeoutMs: PACE_MS * 3, everyMs: 10 });
    const detectMs = performance.now() - killedAt;
    assert.equal(seen.fromTraffic, false, 'a real probe found it');
    assert.match(seen.error ?? '', /ECONNREFUSED|ECONNRESET/);
    assert.ok(detectMs < PACE_MS / 2, `the dead backend was probed ${Math.round(detectMs)} ms after the kill (the regular tick: up to ${PACE_MS} ms)`);
  } finally {
    await load?.stop();
    await proxy?.close();
    await Promise.all([gpu.close(), cpu.close()]);
  }
});

test('no traffic, a slow pace: a reload in the detection window (the GPU just killed) gets the transition page, and its refused connection probes the GPU at once', async () => {
  const [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
  let proxy: TestProxy | undefined;
  const PACE_MS = 4_000;
  try {
    proxy = await startTestProxy({ primaryUrl: gpu.url, standbyUrl: cpu.url, settings: { detector: { probeIntervalMs: PACE_MS, heartbeatIntervalMs: 60_000, missedHeartbeats: 10 } } });
    const p = proxy;
    await waitFor('the first probe', () => probeOf(p, 'primary')?.ok === true, { timeoutMs: 5_000 });
    const killedAt = performance.now();
    gpu.kill('SIGKILL');
    await waitFor('the GPU gone', async () => (await fetch(`${gpu.url}/`, { signal: AbortSignal.timeout(1_000) }).then(() => false, () => true)), { timeoutMs: 5_000 });
    const reload = await fetch(`${p.url}/some/page`, { headers: { accept: 'text/html' }, signal: AbortSignal.timeout(5_000) });
    assert.equal(reload.status, 503, 'the transition page, not a 502');
    assert.match(await reload.text(), /<html/i);
    const seen = await waitFor('the probe failing', () => {
      const probe = probeOf(p, 'primary');
      return probe && !probe.ok ? probe : undefined;
    }, { timeoutMs: PACE_MS * 3, everyMs: 10 });
    const detectMs = performance.now() - killedAt;
    assert.match(seen.error ?? '', /ECONNREFUSED|ECONNRESET/);
    assert.ok(detectMs < PACE_MS / 2, `probed ${Math.round(detectMs)} ms after the kill, on the reload's refused connection (the regular tick: up to ${PACE_MS} ms)`);
  } finally {
    await proxy?.close();
    await Promise.all([gpu.close(), cpu.close()]);
  }
});
