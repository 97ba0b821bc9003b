// The link or the standby fails while the developer keeps writing: nothing is
// dropped, nothing acknowledged is missing, and the pair converges without a
// restart. Each case ends with a clean checksum verify.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { descendants } from '../../core/process-tree.ts';
import { startPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { watchAcknowledgements, WriterLog } from '../fixtures/writer-log.ts';


test('sshd killed mid-stream and back: every change is kept, retried, and lands; nothing acknowledged is lost', async (t) => {
  const pair = await startPair();
  try {
    const log = new WriterLog(pair.gpu, pair.engine);
    const acks = watchAcknowledgements(pair.engine, log, pair.cpu);
    // 8 s of writes at least; then on until six acknowledgements were checked (a loaded machine makes fewer passes), at most 40 s
    const minimum = performance.now() + 8_000;
    const deadline = performance.now() + 40_000;
    let killed = false;
    let restarted = false;
    const failedBefore = pair.engine.status().failedPasses;
    for (let i = 0; (performance.now() < minimum || acks.checks() <= 5) && performance.now() < deadline && i < 10_000; i++) {
      log.write(`notes/n-${i % 40}.txt`, 'x'.repeat(i % 3000));
      if (i % 7 === 0) log.remove(`notes/n-${(i + 13) % 40}.txt`);
      if (!killed && i === 60) {
        pair.sshd.kill('SIGKILL'); // listener and every connection, control master's included
        killed = true;
      }
      if (killed && !restarted && i === 160) {
        await pair.sshd.start();
        restarted = true;
      }
      await sleep(15);
    }
    assert.ok(restarted);
    await pair.synced(30_000);
    const s = pair.engine.status();
    assert.ok(s.failedPasses > failedBefore, 'passes failed while sshd was down');
    assert.equal(s.failingFor, 0, 'and recovered');
    // logged once per state change, not per attempt
    const failing = pair.logs.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('sync failing'));
    assert.equal(failing.length, 1, `one "sync failing" line for ${s.failedPasses} failed passes: ${JSON.stringify(pair.logs.filter((l) => /sync|pass|reachable/.test(String(l.msg))).map((l) => [l.msg, l.err ?? l.changes]))}`);
    assert.ok(pair.logs.some((l) => l.msg === 'standby reachable again; reconciling the whole tree'));
    assert.ok(acks.checks() > 5);
    assert.deepEqual(acks.violations, [], 'every acknowledged write is on the standby');
    // rsync may read a file the writer is rewriting in place: that copy is part of the newer,
    // unacknowledged write, and the verify below proves the next passes replaced it
    t.diagnostic(`${acks.checks()} checks, ${acks.torn.length} torn copies of running writes`);
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('a pass cut by SIGKILL of rsync never leaves a truncated file in place of a whole one', async () => {
  const pair = await startPair({ settings: { sync: { delayMs: 50, maxDelayMs: 100 } } });
  try {
    const big = join(pair.gpu, 'weights.bin');
    const v1 = Buffer.alloc(64 * 1024 * 1024, 1);
    writeFileSync(big, v1);
    await pair.synced();
    assert.equal(statSync(join(pair.cpu, 'weights.bin')).size, v1.length);

    // a new version, different size; kill rsync while it is sending it
    const v2 = Buffer.alloc(96 * 1024 * 1024, 2);
    let killedPid: number | undefined;
    const failed = new Promise<void>((resolve) => pair.engine.on('pass', (p) => p.ok || resolve()));
    writeFileSync(big, v2);
    await waitFor('rsync running', () => {
      const pids = descendants(process.pid).filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'rsync';
        } catch {
          return false;
        }
      });
      return pids.length > 0 ? pids : undefined;
    }, { everyMs: 2 }).then((pids) => {
      killedPid = pids[0];
      for (const pid of pids) process.kill(pid, 'SIGKILL');
    });
    await failed;
    assert.ok(killedPid);
    // what is in place is a whole version, never a torn one
    const size = statSync(join(pair.cpu, 'weights.bin')).size;
    assert.ok(size === v1.length || size === v2.length, `standby file is whole: ${size}`);
    await pair.synced(30_000);
    assert.equal(statSync(join(pair.cpu, 'weights.bin')).size, v2.length);
    const stray = readdirSync(pair.cpu).filter((n) => n !== 'weights.bin');
    assert.deepEqual(stray, [], 'no temporary files left beside it');
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('standby down at start: the agent waits, retries and converges without a restart', async () => {
  const pair = await startPair({ noStart: true, before: (gpu) => writeFileSync(join(gpu, 'early.txt'), 'early') });
  try {
    pair.sshd.kill();
    await pair.engine.start();
    await waitFor('a failed first reconcile', () => pair.engine.status().failedPasses >= 2, { timeoutMs: 10_000 });
    assert.equal(pair.engine.status().ready, false);
    writeFileSync(join(pair.gpu, 'while-down.txt'), 'kept');
    await pair.sshd.start();
    await pair.engine.whenReady();
    await pair.synced(20_000);
    assert.equal(readFileSync(join(pair.cpu, 'while-down.txt'), 'utf8'), 'kept');
    assert.ok(existsSync(join(pair.cpu, 'early.txt')));
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('listed paths gone by the time rsync looks (deleted, or their folder renamed, after the pass began): the standby follows, and sync settles (regression: such a change was put back and sent again for ever)', async () => {
  const top = mkdtempSync(join(tmpdir(), 'standby-slowrsync-'));
  // the standby's rsync starts 0.4 s late: the sender lists its files only once the receiver answers,
  // so what the test deletes in that window is gone when rsync looks
  const slow = join(top, 'slow-rsync');
  writeFileSync(slow, '#!/bin/sh\nsleep 0.4\nexec rsync "$@"\n', { mode: 0o755 });
  const pair = await startPair({ settings: { standby: { rsyncPath: slow }, sync: { delayMs: 50, maxDelayMs: 100 } } });
  const g = (p: string) => join(pair.gpu, p);
  const whilePassing = async (act: () => void): Promise<void> => {
    await waitFor('a pass in flight', () => pair.engine.status().phase === 'syncing', { timeoutMs: 5_000, everyMs: 2 });
    act();
  };
  try {
    mkdirSync(g('src/pkg'), { recursive: true });
    writeFileSync(g('src/pkg/mod.py'), 'x = 1\n');
    await pair.synced();
    const failedBefore = pair.engine.status().failedPasses;

    writeFileSync(g('brief.txt'), 'here for a moment\n');
    await whilePassing(() => rmSync(g('brief.txt')));
    await pair.synced();
    assert.equal(existsSync(join(pair.cpu, 'brief.txt')), false, 'a file gone before rsync looked is not on the standby');

    writeFileSync(g('src/pkg/mod.py'), 'x = 2\n');
    await whilePassing(() => renameSync(g('src/pkg'), g('src/package')));
    await pair.synced();
    assert.equal(readFileSync(join(pair.cpu, 'src/package/mod.py'), 'utf8'), 'x = 2\n');
    assert.equal(existsSync(join(pair.cpu, 'src/pkg')), false, 'the folder renamed away is gone');

    writeFileSync(g('back.txt'), 'v1\n');
    await whilePassing(() => {
      rmSync(g('back.txt'));
      writeFileSync(g('back.txt'), 'v2, written after the pass began\n');
    });
    await pair.synced();
    assert.equal(readFileSync(join(pair.cpu, 'back.txt'), 'utf8'), 'v2, written after the pass began\n');

    assert.equal(pair.engine.status().failedPasses, failedBefore, 'no pass failed');
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
    rmSync(top, { recursive: true, force: true });
  }
});
