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

test('rm -rf of the workspace is held with the standby intact, other changes still flow, and confirming applies it', async () => {
  const pair = await startPair({ before: (gpu) => fill(gpu, 200) });
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

test('a folder moved out of the workspace is counted by rsync, not by its one event, and held when it is most of the copy', async () => {
  const pair = await startPair({ before: (gpu) => fill(gpu, 200) });
  try {
    // The watcher sees one event (the folder left); the 200 files inside it are rsync's count.
    renameSync(join(pair.gpu, 'proj'), join(pair.top, 'moved-away'));
    await waitFor('held', () => pair.engine.status().held, { timeoutMs: 10_000 });
    assert.ok(pair.engine.status().held!.deletions >= 200, `held ${JSON.stringify(pair.engine.status().held)}`);
    assert.equal(readdirSync(join(pair.cpu, 'proj')).length, 200, 'nothing was deleted on the standby');
    pair.engine.confirmDeletes();
    await pair.synced();
    assert.equal(existsSync(join(pair.cpu, 'proj')), false, 'confirmed deletions are applied');
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('a small folder moved out goes through at once, beside the files written with it', async () => {
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
    assert.equal(existsSync(join(pair.cpu, 'small')), false);
    assert.equal(readFileSync(join(pair.cpu, 'proj', 'new.txt'), 'utf8'), 'new');
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});
