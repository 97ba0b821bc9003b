// The mass-deletion guard: a pass that would delete most of the standby's copy
// (rm -rf at the root, a wiped or unmounted workspace) is held, not applied,
// until someone confirms it; ordinary deletions go through.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';

function fill(dir: string, n: number): void {
  mkdirSync(join(dir, 'proj'), { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(dir, 'proj', `f-${i}.txt`), `file ${i}`);
}

/** rsync's dry runs counting deletions, so far */
function dryRuns(pair: { logs: Record<string, unknown>[] }): number {
  return pair.logs.filter((l) => l.msg === 'rsync run done' && l.dryRun === true).length;
}

test('rm -rf of the workspace is held with the standby intact, other changes still flow, and confirming applies it', async () => {
  const pair = await startPair({
    before: (gpu) => {
      fill(gpu, 200);
      mkdirSync(join(gpu, 'tiny'));
      for (let i = 0; i < 3; i++) writeFileSync(join(gpu, 'tiny', `t-${i}`), `${i}`);
    },
  });
  try {
    assert.equal(readdirSync(join(pair.cpu, 'proj')).length, 200);
    // ordinary deletions are not held
    for (let i = 0; i < 5; i++) rmSync(join(pair.gpu, 'proj', `f-${i}.txt`));
    await pair.synced();
    assert.equal(readdirSync(join(pair.cpu, 'proj')).length, 195);
    assert.equal(pair.engine.status().held, null);

    rmSync(join(pair.gpu, 'proj'), { recursive: true });
    await waitFor('held', () => pair.engine.status().held, { timeoutMs: 10_000 });
    writeFileSync(join(pair.gpu, 'after.txt'), 'still syncing');
    await waitFor('other changes flow while deletions are held', () => existsSync(join(pair.cpu, 'after.txt')), { timeoutMs: 10_000 });
    // while a deletion is held the standby holds what the watcher no longer sees: rsync counts a folder's deletion
    const counted = dryRuns(pair);
    renameSync(join(pair.gpu, 'tiny'), join(pair.top, 'tiny-moved-away'));
    await waitFor('a small folder moved out still goes', () => !existsSync(join(pair.cpu, 'tiny')), { timeoutMs: 10_000 });
    assert.equal(dryRuns(pair), counted + 1);
    const s = pair.engine.status();
    assert.equal(readdirSync(join(pair.cpu, 'proj')).length, 195, 'nothing was deleted on the standby');
    assert.ok(s.held && s.held.deletions >= 195, `held ${JSON.stringify(s.held)}`);
    assert.ok(s.watermark < s.lastSeq, 'held deletions are not acknowledged');
    assert.ok(pair.logs.some((l) => typeof l.msg === 'string' && (l.msg as string).includes('standby sync --confirm-deletes')), 'the log says how to confirm');

    pair.engine.confirmDeletes();
    await pair.synced();
    assert.equal(existsSync(join(pair.cpu, 'proj')), false, 'confirmed deletions are applied');
    assert.equal(pair.engine.status().held, null);
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('a workspace found empty at start (wiped or not mounted) does not wipe the standby', async () => {
  const pair = await startPair({ before: (_gpu, cpu) => fill(cpu, 120) });
  try {
    const s = pair.engine.status();
    assert.ok(s.held && s.held.deletions >= 120, `held at start: ${JSON.stringify(s.held)}`);
    assert.equal(readdirSync(join(pair.cpu, 'proj')).length, 120, 'standby copy intact');
    pair.engine.confirmDeletes();
    await waitFor('applied', () => !existsSync(join(pair.cpu, 'proj')), { timeoutMs: 10_000 });
    await pair.synced();
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('a few extra files on the standby at start are reconciled away without holding', async () => {
  const pair = await startPair({
    before: (gpu, cpu) => {
      fill(gpu, 100);
      fill(cpu, 100);
      writeFileSync(join(cpu, 'proj', 'stale.txt'), 'deleted on the GPU while the agent was down');
    },
  });
  try {
    assert.equal(existsSync(join(pair.cpu, 'proj', 'stale.txt')), false);
    assert.equal(pair.engine.status().held, null);
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('a folder moved out of the workspace weighs all it held, not its one event, and is held when it is most of the copy', async () => {
  const pair = await startPair({ before: (gpu) => fill(gpu, 200) });
  try {
    // The watcher sees one event (the folder left): its count of the 200 files inside trips the guard, and rsync counts them exactly.
    renameSync(join(pair.gpu, 'proj'), join(pair.top, 'moved-away'));
    await waitFor('held', () => pair.engine.status().held, { timeoutMs: 10_000 });
    assert.equal(pair.engine.status().held!.deletions, 201, `held ${JSON.stringify(pair.engine.status().held)}`);
    assert.equal(dryRuns(pair), 1, 'rsync counted what the standby holds');
    assert.equal(readdirSync(join(pair.cpu, 'proj')).length, 200, 'nothing was deleted on the standby');
    pair.engine.confirmDeletes();
    await pair.synced();
    assert.equal(existsSync(join(pair.cpu, 'proj')), false, 'confirmed deletions are applied');
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('a small folder moved out goes through at once, beside the files written with it, weighed by the watcher\'s count without a dry run', async () => {
  const pair = await startPair({
    before: (gpu) => {
      fill(gpu, 200);
      mkdirSync(join(gpu, 'small'));
      for (let i = 0; i < 60; i++) writeFileSync(join(gpu, 'small', `s-${i}`), `${i}`);
    },
  });
  try {
    renameSync(join(pair.gpu, 'small'), join(pair.top, 'moved-away'));
    writeFileSync(join(pair.gpu, 'proj', 'new.txt'), 'new');
    await pair.synced();
    assert.equal(pair.engine.status().held, null);
    assert.equal(dryRuns(pair), 0);
    assert.equal(existsSync(join(pair.cpu, 'small')), false);
    assert.equal(readFileSync(join(pair.cpu, 'proj', 'new.txt'), 'utf8'), 'new');
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});
