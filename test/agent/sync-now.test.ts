// A final pass (planned failover, sync-now) covers every write that finished
// before it was asked for, also one whose inotify event the agent had not read
// yet: the watch barrier makes the watcher catch up first.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createWatchBarrier } from '../../agent/watch-barrier.ts';
import { watchRoot } from '../../agent/watcher.ts';
import { startPair } from '../fixtures/sync-pair.ts';

test('the barrier: once it passes, the watcher has seen every write made before it, by this process or another', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'barrier-ws-'));
  const barrierParent = mkdtempSync(join(tmpdir(), 'barrier-tmp-'));
  const seen = new Set<string>();
  const errors: Error[] = [];
  const watch = await watchRoot(0, dir, () => false, { change: (_r, path) => void seen.add(path), error: (e) => void errors.push(e) });
  const barrier = createWatchBarrier(barrierParent);
  try {
    for (let i = 0; i < 100; i++) {
      const mine = `mine-${i}`;
      writeFileSync(join(dir, mine), 'x');
      assert.ok(!seen.has(mine), 'no event is read before the loop turns: without a barrier the watcher lags');
      assert.equal(await barrier.pass(2_000), null);
      assert.ok(seen.has(mine), `${mine} seen once the barrier passed`);
      const theirs = `theirs-${i}`;
      execFileSync('sh', ['-c', 'echo y > "$1"', 'sh', join(dir, theirs)]);
      assert.equal(await barrier.pass(2_000), null);
      assert.ok(seen.has(theirs), `${theirs} (another process) seen once the barrier passed`);
    }
    assert.deepEqual(readdirSync(readdirSync(barrierParent).map((d) => join(barrierParent, d))[0]!), [], 'barrier files are removed');
    assert.deepEqual(errors, []);
  } finally {
    barrier.close();
    await watch.close();
    assert.deepEqual(readdirSync(barrierParent), [], 'close removes its folder');
    rmSync(dir, { recursive: true, force: true });
    rmSync(barrierParent, { recursive: true, force: true });
  }
});

test('the barrier says why when it cannot pass: its folder removed under it', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'barrier-tmp-'));
  const barrier = createWatchBarrier(parent);
  try {
    rmSync(parent, { recursive: true, force: true });
    const why = await barrier.pass(500);
    assert.match(why ?? '', /could not write .*standby-barrier-.*ENOENT|no event for .* within 500 ms|failed/);
  } finally {
    barrier.close();
  }
});

test('a barrier folder left by a killed agent is removed by the next barrier in the same parent; a live one is kept', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'barrier-tmp-'));
  try {
    // the pid of a process that has ended, as an agent killed with SIGKILL has
    const child = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
    const deadPid = Number(child.stdout.trim());
    mkdirSync(join(parent, `standby-barrier-${deadPid}-AbC123`));
    mkdirSync(join(parent, `standby-barrier-${process.ppid}-XyZ789`)); // alive: kept
    mkdirSync(join(parent, 'standby-barrier-noPid1')); // not of this format: kept
    const barrier = createWatchBarrier(parent);
    try {
      const left = readdirSync(parent).sort();
      assert.ok(!left.includes(`standby-barrier-${deadPid}-AbC123`), `the dead agent's folder is gone: ${left.join(', ')}`);
      assert.ok(left.includes(`standby-barrier-${process.ppid}-XyZ789`));
      assert.ok(left.includes('standby-barrier-noPid1'));
      assert.equal(left.filter((e) => e.startsWith(`standby-barrier-${process.pid}-`)).length, 1, 'its own folder carries its pid');
    } finally {
      barrier.close();
    }
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test('sync-now right after a write: when it answers ok, every file written before the call is on the standby', async () => {
  // a long batch delay: only sync-now can send these in time
  const pair = await startPair({ settings: { sync: { delayMs: 5_000, maxDelayMs: 10_000 } } });
  try {
    await pair.synced();
    for (let i = 0; i < 20; i++) {
      const name = `final-${i}.txt`;
      writeFileSync(join(pair.gpu, name), `round ${i}`);
      const r = await pair.engine.syncNow(10_000); // called before the loop turned: the event is still unread
      assert.equal(r.ok, true, r.error ?? '');
      assert.equal(existsSync(join(pair.cpu, name)) && readFileSync(join(pair.cpu, name), 'utf8'), `round ${i}`, `${name} on the standby when sync-now answered`);
    }
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});
