// The watcher on a real tree with real inotify: what each kind of change is
// reported as, folders that appear or go, and the watches it holds.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import type { ChangeKind } from '../../agent/change-set.ts';
import { inotifyWatchesHeld } from '../../agent/preflight.ts';
import { watchRoot, type RootWatch } from '../../agent/watcher.ts';
import { waitFor } from '../fixtures/wait-for.ts';

let dir: string;
let watch: RootWatch | undefined;
let seen: { path: string; kind: ChangeKind; entries?: number }[];
let errors: Error[];

async function start(excluded: (rel: string, isDir: boolean | undefined) => boolean = () => false): Promise<RootWatch> {
  watch = await watchRoot(0, dir, excluded, {
    change: (_root, path, kind, entries) => seen.push({ path, kind, ...(entries === undefined ? {} : { entries }) }),
    error: (err) => errors.push(err),
  });
  return watch;
}

/** the kinds reported for a path, in order */
function kinds(path: string): ChangeKind[] {
  return seen.filter((e) => e.path === path).map((e) => e.kind);
}

async function reported(path: string, kind: ChangeKind): Promise<void> {
  await waitFor(`${kind} ${JSON.stringify(path)} (seen: ${JSON.stringify(seen.slice(-5))})`, () => kinds(path).includes(kind), { timeoutMs: 5_000 });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'standby-watch-'));
  seen = [];
  errors = [];
});

afterEach(async () => {
  await watch?.close();
  watch = undefined;
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(errors, []);
});

test('file create, edit and delete are add, change and unlink; nothing is reported for what was there at start', async () => {
  writeFileSync(join(dir, 'old.txt'), 'there before');
  await start();
  writeFileSync(join(dir, 'a.txt'), 'one');
  await reported('a.txt', 'add');
  writeFileSync(join(dir, 'a.txt'), 'two');
  await reported('a.txt', 'change');
  rmSync(join(dir, 'a.txt'));
  await reported('a.txt', 'unlink');
  assert.deepEqual(kinds('old.txt'), []);
});

test('a same-size rewrite with the old mtime put back is still reported', async () => {
  writeFileSync(join(dir, 'same.txt'), 'aaaa');
  utimesSync(join(dir, 'same.txt'), 1_000_000, 1_000_000);
  await start();
  writeFileSync(join(dir, 'same.txt'), 'bbbb');
  utimesSync(join(dir, 'same.txt'), 1_000_000, 1_000_000);
  await reported('same.txt', 'change');
});

test('a folder made with content before its watch is set: the folder and all it holds are reported, and it is watched from then on', async () => {
  const w = await start();
  mkdirSync(join(dir, 'new', 'deep', 'er'), { recursive: true });
  writeFileSync(join(dir, 'new', 'deep', 'er', 'f.txt'), 'x');
  await reported('new', 'addDir');
  await reported('new/deep/er', 'addDir');
  await reported('new/deep/er/f.txt', 'add');
  assert.equal(w.folders, 4);
  writeFileSync(join(dir, 'new', 'deep', 'later.txt'), 'y');
  await reported('new/deep/later.txt', 'add');
});

test('rm -rf of a folder reports every file in it and the folder, and releases its watches', async () => {
  mkdirSync(join(dir, 'proj', 'sub'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(dir, 'proj', 'sub', `f${i}`), `${i}`);
  const w = await start();
  assert.equal(w.folders, 3);
  const held = inotifyWatchesHeld();
  rmSync(join(dir, 'proj'), { recursive: true });
  await reported('proj', 'unlinkDir');
  await reported('proj/sub', 'unlinkDir');
  for (let i = 0; i < 20; i++) assert.deepEqual(kinds(`proj/sub/f${i}`), ['unlink'], `proj/sub/f${i}`);
  assert.equal(w.folders, 1);
  await waitFor('watches released', () => inotifyWatchesHeld() <= held - 2, { timeoutMs: 2_000 });
});

test('a folder renamed inside the tree: the old path goes, the new one comes with its content, and stays watched', async () => {
  mkdirSync(join(dir, 'before'));
  writeFileSync(join(dir, 'before', 'f.txt'), 'x');
  const w = await start();
  renameSync(join(dir, 'before'), join(dir, 'after'));
  await reported('before', 'unlinkDir');
  await reported('after', 'addDir');
  await reported('after/f.txt', 'add');
  assert.equal(w.folders, 2);
  writeFileSync(join(dir, 'after', 'g.txt'), 'y');
  await reported('after/g.txt', 'add');
  assert.deepEqual(kinds('before/g.txt'), []);
});

/** what the watcher said a folder held when it went */
function heldWhenGone(path: string): number | undefined {
  return seen.find((e) => e.path === path && e.kind === 'unlinkDir')?.entries;
}

test('a folder moved out of the tree is reported with every entry it held, itself included; excluded entries are not counted', async () => {
  mkdirSync(join(dir, 'proj', 'sub', 'deeper'), { recursive: true });
  for (let i = 0; i < 3; i++) writeFileSync(join(dir, 'proj', `top${i}`), 'x');
  for (let i = 0; i < 20; i++) writeFileSync(join(dir, 'proj', 'sub', `f${i}`), 'x');
  writeFileSync(join(dir, 'proj', 'sub', 'skip.pyc'), 'x');
  await start((rel) => rel.endsWith('.pyc'));
  writeFileSync(join(dir, 'proj', 'sub', 'deeper', 'late.txt'), 'made after the scan');
  await reported('proj/sub/deeper/late.txt', 'add');
  const outside = mkdtempSync(join(tmpdir(), 'standby-watch-out-'));
  try {
    renameSync(join(dir, 'proj'), join(outside, 'proj'));
    await reported('proj', 'unlinkDir');
    // proj, 3 files, sub, 20 files, deeper, late.txt
    assert.equal(heldWhenGone('proj'), 27);
    assert.deepEqual(kinds('proj/sub'), [], 'a move reports the folder alone');
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
});

test('a folder\'s count is never below what it holds: files made and deleted at once, renamed over others, or deleted, and recounted once it runs far over', async () => {
  mkdirSync(join(dir, 'busy'));
  for (let i = 0; i < 5; i++) writeFileSync(join(dir, 'busy', `keep${i}`), 'x');
  await start();
  for (let i = 0; i < 300; i++) {
    // an editor's save: a temp file renamed over the real one, and a scratch file made and gone at once
    writeFileSync(join(dir, 'busy', `.keep0.tmp`), `${i}`);
    renameSync(join(dir, 'busy', '.keep0.tmp'), join(dir, 'busy', 'keep0'));
    writeFileSync(join(dir, 'busy', 'scratch'), 'x');
    rmSync(join(dir, 'busy', 'scratch'));
  }
  rmSync(join(dir, 'busy', 'keep4'));
  writeFileSync(join(dir, 'busy', 'new'), 'x');
  await reported('busy/new', 'add');
  const outside = mkdtempSync(join(tmpdir(), 'standby-watch-out-'));
  try {
    renameSync(join(dir, 'busy'), join(outside, 'busy'));
    await reported('busy', 'unlinkDir');
    const entries = heldWhenGone('busy')!;
    // it held itself and 5 files; the 300 or more events that named a file appearing were recounted past 2 x 5 + 256
    assert.ok(entries >= 6 && entries <= 6 + 2 * 5 + 256, `counted ${entries}`);
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
});

test('a folder replaced by a file of the same name, and back', async () => {
  mkdirSync(join(dir, 'x'));
  const w = await start();
  rmSync(join(dir, 'x'), { recursive: true });
  writeFileSync(join(dir, 'x'), 'now a file');
  await waitFor('x reported as a file', () => kinds('x').some((k) => k === 'add' || k === 'change'), { timeoutMs: 5_000 });
  assert.equal(w.folders, 1);
  rmSync(join(dir, 'x'));
  mkdirSync(join(dir, 'x'));
  await reported('x', 'addDir');
  writeFileSync(join(dir, 'x', 'in.txt'), 'z');
  await reported('x/in.txt', 'add');
});

test('excluded folders are neither watched nor reported', async () => {
  mkdirSync(join(dir, 'node_modules', 'pkg'), { recursive: true });
  const excluded = (rel: string): boolean => rel === 'node_modules' || rel.startsWith('node_modules/') || rel.endsWith('.pyc');
  const w = await start(excluded);
  assert.equal(w.folders, 1);
  writeFileSync(join(dir, 'node_modules', 'pkg', 'index.js'), 'x');
  writeFileSync(join(dir, 'm.pyc'), 'x');
  writeFileSync(join(dir, 'kept.py'), 'x');
  await reported('kept.py', 'add');
  assert.deepEqual(seen.filter((e) => e.path !== 'kept.py'), []);
});

test('a symlink to a folder is reported as a link and not followed', async () => {
  mkdirSync(join(dir, 'real'));
  const w = await start();
  symlinkSync('real', join(dir, 'link'));
  await reported('link', 'add');
  assert.equal(w.folders, 2);
});

test('odd names: spaces, unicode, a newline', async () => {
  await start();
  for (const name of ['with space.txt', 'ünï cødé ✓.txt', 'line\nbreak.txt']) {
    writeFileSync(join(dir, name), name);
    await reported(name, 'add');
  }
});

test('a file named like its folder is reported when it goes', async () => {
  mkdirSync(join(dir, 'd'));
  writeFileSync(join(dir, 'd', 'd'), 'same name as the folder');
  await start();
  rmSync(join(dir, 'd', 'd'));
  await waitFor('d/d reported', () => kinds('d/d').length > 0, { timeoutMs: 5_000 });
});

test('close releases every inotify watch', async () => {
  const before = inotifyWatchesHeld();
  for (let i = 0; i < 10; i++) mkdirSync(join(dir, `f${i}`, 'g'), { recursive: true });
  const w = await start();
  assert.equal(w.folders, 21);
  assert.equal(inotifyWatchesHeld(), before + 21);
  await w.close();
  watch = undefined;
  assert.equal(inotifyWatchesHeld(), before);
});
