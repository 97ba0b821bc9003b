// No false failover: with the agent SIGSTOPped for 1 s at a time (heartbeats
// late and bunched) and both cores saturated by other work, the proxy may
// call the GPU suspect or degraded, but never fails over while its
// code-server answers. (The 10-minute soak is `npm run bench -- no-false-failover`.)
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { test } from 'node:test';
import { heartbeatsFlowing, startWorld } from '../fixtures/failover-world.ts';

const SOAK_MS = Number(process.env.STANDBY_SOAK_MS ?? 20_000);

test(`${SOAK_MS / 1000} s of SIGSTOP pauses and saturated cores: zero failovers`, { timeout: SOAK_MS + 60_000 }, async () => {
  const world = await startWorld();
  const burners: ChildProcess[] = [];
  try {
    await heartbeatsFlowing(world);
    for (let i = 0; i < 2; i++) burners.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
    const phases = new Set<string>();
    const end = performance.now() + SOAK_MS;
    let pauses = 0;
    while (performance.now() < end) {
      world.agent!.kill('SIGSTOP');
      const stoppedUntil = performance.now() + 1_000;
      while (performance.now() < stoppedUntil) {
        phases.add(world.proxy.store.state.phase);
        await new Promise((r) => setTimeout(r, 50));
      }
      world.agent!.kill('SIGCONT');
      pauses++;
      // run for a random 0.5-2 s before the next pause
      const runUntil = performance.now() + 500 + Math.random() * 1_500;
      while (performance.now() < runUntil) {
        phases.add(world.proxy.store.state.phase);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const s = world.proxy.store.state;
    assert.deepEqual([s.active, s.epoch, s.failovers], ['primary', 1, 0], `phases seen: ${[...phases].join(', ')}`);
    assert.ok(pauses >= SOAK_MS / 3_000, `${pauses} pauses`);
    assert.equal((await world.get('/whoami')).body, 'gpu');
  } finally {
    for (const b of burners) b.kill('SIGKILL');
    world.agent?.kill('SIGCONT');
    await world.close();
  }
});
