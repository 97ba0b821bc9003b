// Failover when the network fails, with hosts in network namespaces: the
// GPU's link blackholed (nothing answers), and the GPU cut off from the proxy
// but not from the standby, where fencing must keep the old GPU from writing
// over what the developer does on the standby.
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { netnsUnavailable } from '../fixtures/netns.ts';
import { startNetWorld } from '../fixtures/netns-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const skip = netnsUnavailable();

function listing(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const s = statSync(join(dir, name));
    m.set(name, `${s.size}:${s.mtimeMs}`);
  }
  return m;
}

describe('network failures', { skip, concurrency: false }, () => {
  test('the GPU blackholed: the proxy fails over to the fenced standby', async () => {
    const w = await startNetWorld();
    try {
      writeFileSync(join(w.gpuDir, 'before.txt'), 'synced before the cut');
      await waitFor('synced', () => existsSync(join(w.cpuDir, 'before.txt')), { timeoutMs: 10_000 });
      assert.equal((await w.get('/whoami')).body, 'gpu');
      const cutAt = performance.now();
      await w.gpu.cut();
      await waitFor('the standby served', async () => (await w.get('/whoami', 500)).body === 'cpu', { timeoutMs: 15_000, everyMs: 20 });
      const ms = performance.now() - cutAt;
      const s = w.proxy.store.state;
      assert.deepEqual([s.active, s.epoch, s.fencedEpoch], ['standby', 2, 2]);
      assert.ok(ms < 6_000, `switched in ${Math.round(ms)} ms`);
      assert.equal(readFileSync(join(w.cpuDir, 'before.txt'), 'utf8'), 'synced before the cut');
    } finally {
      await w.close();
    }
  });

  test('the GPU cut off from the proxy but not from the standby: after the fence nothing it sends lands, the developer\'s work on the standby stays', async () => {
    const w = await startNetWorld();
    const big = join(w.gpuDir, 'big.bin');
    let writing: NodeJS.Timeout | undefined;
    try {
      writeFileSync(join(w.gpuDir, 'shared.txt'), 'v1 from the GPU');
      await waitFor('synced', () => existsSync(join(w.cpuDir, 'shared.txt')), { timeoutMs: 10_000 });
      // A file that keeps growing, so an rsync of it is in flight when the fence comes.
      const fd = openSync(big, 'w');
      const chunk = Buffer.alloc(4 << 20, 7);
      let gpuWrites = 0;
      writing = setInterval(() => {
        writeSync(fd, chunk);
        writeFileSync(join(w.gpuDir, `gpu-${gpuWrites++}.txt`), 'written on the GPU after the cut');
        writeFileSync(join(w.gpuDir, 'shared.txt'), `stale GPU version ${gpuWrites}`);
      }, 50);
      await waitFor('writes under way', () => gpuWrites >= 6, { timeoutMs: 10_000 });
      await w.net.partition(w.gpu, 'root');
      await waitFor('failed over', () => w.proxy.store.state.phase === 'failed_over', { timeoutMs: 15_000 });
      const fencedEvent = w.proxy.store.events().find((e) => e.type === 'fenced');
      assert.ok(fencedEvent);

      // The developer, now on the standby, edits the shared file and makes a new one.
      writeFileSync(join(w.cpuDir, 'shared.txt'), 'the developer on the standby');
      writeFileSync(join(w.cpuDir, 'dev-new.txt'), 'new on the standby');
      const after = listing(w.cpuDir);
      // The GPU keeps writing and its agent keeps trying (it never heard the proxy) for a while.
      await new Promise((r) => setTimeout(r, 3_000));
      clearInterval(writing);
      writing = undefined;
      closeSync(fd);
      assert.equal(readFileSync(join(w.cpuDir, 'shared.txt'), 'utf8'), 'the developer on the standby');
      assert.equal(readFileSync(join(w.cpuDir, 'dev-new.txt'), 'utf8'), 'new on the standby');
      assert.deepEqual(listing(w.cpuDir), after, 'nothing on the standby changed after the route moved');
      assert.ok(gpuWrites > 40, 'the GPU did keep writing');
      // cut off from the proxy, the old agent learns it is fenced from the standby's refusal, and stops
      assert.match(w.agent.logTail(), /the standby refused this epoch: a newer one fenced it/);
      // the growing file's copy is some earlier state of it (rsync read it mid-write, so any length),
      // never a torn or hole-filled one: every byte is what the GPU wrote
      const copy = join(w.cpuDir, 'big.bin');
      if (existsSync(copy)) {
        const data = readFileSync(copy);
        assert.ok(data.equals(Buffer.alloc(data.length, 7)), 'no byte the GPU did not write');
      }
      assert.equal(readFileSync(join(w.receiveState, 'epoch'), 'utf8').trim(), '2');

      // The partition heals: the old GPU's agent is heard again, is told it is fenced, and stops pushing.
      // Its heartbeats of the old epoch are dropped: a fenced agent is no sign the GPU lives.
      const gpuRecord = w.proxy.hub.agents.get('gpu-1')!;
      const heartbeatsBefore = gpuRecord.heartbeats;
      const droppedBefore = gpuRecord.dropped;
      await w.net.heal(w.gpu, 'root');
      await waitFor('the old agent heard again', () => gpuRecord.dropped > droppedBefore, { timeoutMs: 15_000 });
      await waitFor('told it is fenced', () => /fenced: pushing nothing more; \d+ changes here are not on the standby/.test(w.agent.logTail()), { timeoutMs: 5_000 });
      assert.equal(gpuRecord.heartbeats, heartbeatsBefore, 'none of its heartbeats counted');
      assert.deepEqual(listing(w.cpuDir), after);
    } finally {
      if (writing) clearInterval(writing);
      await w.close();
    }
  });
});
