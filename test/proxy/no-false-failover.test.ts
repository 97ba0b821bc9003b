// No false failover: the GPU's agent is SIGSTOPped again and again, in turn for
// 1 s (heartbeats late and bunched, within the detector's window) and for the
// window plus 1 s (no heartbeat at all for longer than the window, while the
// GPU's code-server still answers the proxy's probes). The proxy must call the
// GPU degraded (or suspect) at every long pause and be back to normal once
// heartbeats flow again, and never fail over. Two CPU burners at the lowest
// priority keep both cores busy the whole time. (The 10-minute soak is
// `npm run bench -- no-false-failover`.)
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { test } from 'node:test';
import { heartbeatsFlowing, startWorld, type World } from '../fixtures/failover-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const SOAK_MS = Number(process.env.STANDBY_SOAK_MS ?? 20_000);
const SHORT_PAUSE_MS = 1_000;

/**
 * A CPU burner at nice 19: it takes every cycle the cores would leave idle, but yields
 * to any other work, so it does not starve the test file node --test runs beside this
 * one (two burners at nice 0 took both cores of a 2-core machine from it).
 */
function burner(): ChildProcess {
  return spawn(process.execPath, ['-e', "require('node:os').setPriority(19); for (;;) {}"], { stdio: 'ignore' });
}

/** The phases the proxy entered after event `afterSeq`, in order (from its durable event log). */
function phasesSince(world: World, afterSeq: number): string[] {
  return world.proxy.store.events(1_000).flatMap((e) => (e.seq > afterSeq && e.type === 'phase' ? [e.phase] : []));
}

/** Sleeps `ms` while nothing has failed over; gives up at once if something has. */
async function runFor(world: World, ms: number): Promise<void> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    assert.equal(world.proxy.store.state.failovers, 0, `failed over: phases ${phasesSince(world, 0).join(', ')}`);
    await new Promise((r) => setTimeout(r, Math.min(50, until - performance.now())));
  }
}

test(`${SOAK_MS / 1000} s of SIGSTOP pauses and busy cores: degraded at every pause past the window, back to normal, zero failovers`, { timeout: SOAK_MS + 60_000 }, async (t) => {
  const world = await startWorld();
  const burners: ChildProcess[] = [];
  try {
    await heartbeatsFlowing(world, { normal: true });
    const { heartbeatIntervalMs, missedHeartbeats } = world.proxy.config.detector;
    const windowMs = heartbeatIntervalMs * missedHeartbeats;
    // whenever the last heartbeat came before the stop, the silence passes the window at least 1 s before the agent resumes
    const longPauseMs = windowMs + 1_000;
    const startSeq = world.proxy.store.state.seq;
    for (let i = 0; i < 2; i++) burners.push(burner());
    const end = performance.now() + SOAK_MS;
    let pauses = 0;
    let longPauses = 0;
    while (performance.now() < end) {
      const long = pauses % 2 === 1;
      const seq = world.proxy.store.state.seq;
      world.agent!.kill('SIGSTOP');
      await runFor(world, long ? longPauseMs : SHORT_PAUSE_MS);
      world.agent!.kill('SIGCONT');
      pauses++;
      if (long) {
        longPauses++;
        await waitFor('the proxy back to normal after the agent resumed', () => world.proxy.store.state.phase === 'normal', {
          timeoutMs: 10_000,
          failIf: () => (world.proxy.store.state.failovers > 0 ? `failed over: phases ${phasesSince(world, startSeq).join(', ')}` : undefined),
        });
        const seen = phasesSince(world, seq);
        assert.ok(seen.includes('degraded') || seen.includes('suspect'), `a ${longPauseMs} ms pause (window ${windowMs} ms) left the proxy's phase alone: phases ${seen.join(', ') || 'none'}`);
        assert.equal(seen.at(-1), 'normal', `phases after the pause: ${seen.join(', ')}`);
      }
      // run for a random 0.5-1.25 s before the next pause
      await runFor(world, 500 + Math.random() * 750);
    }
    const phases = phasesSince(world, startSeq);
    t.diagnostic(`${pauses} pauses, ${longPauses} of ${longPauseMs} ms; phases: ${phases.join(', ')}`);
    const s = world.proxy.store.state;
    assert.deepEqual([s.active, s.epoch, s.failovers], ['primary', 1, 0], `phases seen: ${phases.join(', ')}`);
    assert.ok(pauses >= SOAK_MS / 3_000, `${pauses} pauses`);
    assert.ok(longPauses >= SOAK_MS / 7_000, `${longPauses} pauses past the window`);
    await waitFor('the proxy back to normal', () => world.proxy.store.state.phase === 'normal', { timeoutMs: 10_000 });
    assert.equal((await world.get('/whoami')).body, 'gpu');
  } finally {
    for (const b of burners) b.kill('SIGKILL');
    world.agent?.kill('SIGCONT');
    await world.close();
  }
});
