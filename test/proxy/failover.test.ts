// Failover with real processes: the GPU's agent and code-server stand-in, the
// standby's sshd with the receiver, the proxy. Detection, fencing before
// routing, degraded without failover, planned failover with nothing lost.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { heartbeatsFlowing, startWorld } from '../fixtures/failover-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('the GPU SIGKILLed: the proxy fences the standby and serves it within seconds, the synced work is there', async () => {
  const world = await startWorld();
  try {
    writeFileSync(join(world.gpuDir, 'notes.txt'), 'written on the GPU');
    await world.agent!.settled(10_000);
    assert.equal((await world.get('/whoami')).body, 'gpu');
    await heartbeatsFlowing(world, { normal: true });

    const killedAt = performance.now();
    world.killGpu();
    await waitFor('the standby served', async () => (await world.get('/whoami', 500)).body === 'cpu', { timeoutMs: 15_000, everyMs: 20 });
    const switchMs = performance.now() - killedAt;

    const s = world.proxy.store.state;
    assert.deepEqual([s.active, s.phase, s.epoch, s.fencedEpoch, s.failovers], ['standby', 'failed_over', 2, 2, 1]);
    assert.deepEqual(world.proxy.store.events().filter((e) => ['epoch', 'fenced', 'routed'].includes(e.type)).map((e) => e.type), ['epoch', 'fenced', 'routed'], 'fence before route');
    assert.equal(readFileSync(join(world.receiveState, 'epoch'), 'utf8').trim(), '2', 'the standby holds the new epoch');
    assert.equal(readFileSync(join(world.cpuDir, 'notes.txt'), 'utf8'), 'written on the GPU');
    assert.ok(switchMs < 5_000, `switched in ${Math.round(switchMs)} ms`);
    const status = (await (await world.proxy.api('status')).json()) as { lastFailover: { totalMs: number; fenceMs: number } };
    assert.ok(status.lastFailover.fenceMs > 0);
  } finally {
    await world.close();
  }
});

test('agent dead, code-server alive: degraded, reported, no failover', async () => {
  const world = await startWorld();
  try {
    await heartbeatsFlowing(world);
    world.agent!.kill('SIGKILL');
    await waitFor('degraded', () => world.proxy.store.state.phase === 'degraded', { timeoutMs: 5_000 });
    // two more windows: still degraded, still the GPU
    const until = performance.now() + 3_000;
    while (performance.now() < until) {
      assert.equal(world.proxy.store.state.active, 'primary');
      assert.equal((await world.get('/whoami')).body, 'gpu');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(world.proxy.store.state.epoch, 1);
    assert.equal(existsSync(join(world.receiveState, 'epoch')), false, 'nobody fenced the standby');
    const status = (await (await world.proxy.api('status')).json()) as { phase: string; verdict: { kind: string; reason: string } };
    assert.equal(status.phase, 'degraded');
    assert.match(status.verdict.reason, /code-server still answers/);
    // the agent comes back: normal again
    await world.agent!.stop();
    await world.startAgent();
    await waitFor('normal again', () => world.proxy.store.state.phase === 'normal', { timeoutMs: 10_000 });
  } finally {
    await world.close();
  }
});

test('a manual (planned) failover: freeze, final sync, fence, route; every write made before it is on the standby', async () => {
  const world = await startWorld();
  let writer: NodeJS.Timeout | undefined;
  try {
    await heartbeatsFlowing(world);
    // a steady writer on the GPU, as the developer's tools would be
    let n = 0;
    writer = setInterval(() => writeFileSync(join(world.gpuDir, `w-${String(n++).padStart(4, '0')}.txt`), `write ${n}`), 10);
    await waitFor('writes under way', () => n >= 50, { timeoutMs: 10_000 });
    // the writer keeps going while the request travels: what it writes meanwhile races the freeze, and only
    // what was written before the request is promised (the last of it a few ms before, its event maybe unread)
    const writtenBefore = n;
    const res = await world.proxy.api('failover', { method: 'POST' });
    clearInterval(writer);
    assert.equal(res.status, 202);
    await waitFor('failed over', () => world.proxy.store.state.phase === 'failed_over', { timeoutMs: 20_000 });
    for (let i = 0; i < writtenBefore; i++) {
      const name = `w-${String(i).padStart(4, '0')}.txt`;
      assert.ok(existsSync(join(world.cpuDir, name)), `${name} (written before the failover was asked for) is on the standby`);
    }
    const epochEvent = world.proxy.store.events().find((e) => e.type === 'epoch');
    assert.ok(epochEvent && epochEvent.type === 'epoch' && epochEvent.planned);
    assert.equal((await world.get('/whoami')).body, 'cpu');
    const again = await world.proxy.api('failover', { method: 'POST' });
    assert.equal(again.status, 409);
  } finally {
    clearInterval(writer); // stopped above; here too when the test failed before
    await world.close();
  }
});

function socketsOpen(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

test('a failover under load closes every connection to the GPU at once and leaks no socket', async () => {
  const world = await startWorld();
  const clients: WebSocket[] = [];
  try {
    await heartbeatsFlowing(world);
    await world.get('/whoami');
    const baseline = socketsOpen();
    // load: 20 WebSockets through the proxy to the GPU and a stream of keep-alive requests
    const wsUrl = world.proxy.url.replace('http', 'ws') + '/ws';
    const closedByProxy: Promise<number>[] = [];
    for (let i = 0; i < 20; i++) {
      const ws = new WebSocket(wsUrl);
      clients.push(ws);
      await new Promise<void>((resolve, reject) => {
        ws.once('message', () => resolve());
        ws.once('error', reject);
      });
      closedByProxy.push(new Promise((resolve) => ws.once('close', (code) => resolve(code))));
    }
    const agent = new Agent({ keepAlive: true, maxSockets: 10 });
    let stop = false;
    const load = (async () => {
      let n = 0;
      while (!stop && n < 100_000) {
        n++;
        await new Promise<void>((resolve) => {
          const req = request(`${world.proxy.url}/load`, { agent, timeout: 1_000 }, (res) => {
            res.resume();
            res.on('end', () => resolve());
          });
          req.on('error', () => resolve());
          req.on('timeout', () => req.destroy());
          req.end();
        });
      }
    })();
    assert.ok(world.proxy.router.openSockets().primary >= 20);

    world.killGpu();
    await waitFor('the standby served', async () => (await world.get('/whoami', 500)).body === 'cpu', { timeoutMs: 15_000, everyMs: 20 });
    const codes = await Promise.all(closedByProxy);
    assert.equal(codes.length, 20, 'every GPU WebSocket was closed');
    assert.equal(world.proxy.router.openSockets().primary, 0, 'no socket to the GPU left');
    stop = true;
    await load;
    agent.destroy();
    // a browser reconnects and lands on the standby
    const again = new WebSocket(wsUrl);
    clients.push(again);
    const hello = await new Promise<string>((resolve, reject) => {
      again.once('message', (d) => resolve(d.toString()));
      again.once('error', reject);
    });
    assert.match(hello, /"hello":"cpu"/);
    again.close();
    await new Promise((r) => again.once('close', r));
    await waitFor(`sockets back to the baseline of ${baseline}`, () => socketsOpen() <= baseline, { timeoutMs: 5_000 });
  } finally {
    for (const c of clients) c.terminate();
    await world.close();
  }
});
