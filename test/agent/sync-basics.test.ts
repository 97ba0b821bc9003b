// What a developer does in a workspace arrives on the standby exactly:
// real sshd, real rsync, the engine in this process.
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startPair, type SyncPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';

describe('sync basics', () => {
  let pair: SyncPair;
  before(async () => {
    pair = await startPair({
      settings: { sync: { exclude: ['*.tmpcache', 'scratch/'], paths: [] } },
      before: (gpu) => {
        // an existing tree: the first full reconcile brings it over
        mkdirSync(join(gpu, 'existing/deep'), { recursive: true });
        writeFileSync(join(gpu, 'existing/deep/a.txt'), 'already here\n');
      },
    });
  });
  after(() => pair?.close());

  const g = (p: string) => join(pair.gpu, p);
  const c = (p: string) => join(pair.cpu, p);

  test('the first full reconcile brings the existing tree', () => {
    assert.equal(readFileSync(c('existing/deep/a.txt'), 'utf8'), 'already here\n');
  });

  test('creates, edits, deletes and renames of files and folders, empty folders, symlinks, modes, mtimes and odd names arrive', async () => {
    const odd = ['with space.txt', 'ünïcødé-名前.txt', 'new\nline.txt', "quote'\"$(x).txt", '-dash-first.txt'];
    mkdirSync(g('src/pkg'), { recursive: true });
    for (const name of odd) writeFileSync(g(`src/${name}`), `content of ${name}`);
    writeFileSync(g('src/pkg/mod.py'), 'x = 1\n');
    mkdirSync(g('empty/inner'), { recursive: true });
    symlinkSync('pkg/mod.py', g('src/link-to-mod'));
    symlinkSync('/nonexistent/target', g('src/dangling'));
    writeFileSync(g('run.sh'), '#!/bin/sh\necho hi\n');
    chmodSync(g('run.sh'), 0o750);
    writeFileSync(g('old-mtime.txt'), 'old\n');
    utimesSync(g('old-mtime.txt'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
    await pair.synced();

    writeFileSync(g('src/pkg/mod.py'), 'x = 2  # edited\n');
    renameSync(g('src/pkg'), g('src/package'));
    renameSync(g('run.sh'), g('start.sh'));
    rmSync(g('existing'), { recursive: true });
    mkdirSync(g('to-delete/sub'), { recursive: true });
    writeFileSync(g('to-delete/sub/f'), 'f');
    await pair.synced();
    rmSync(g('to-delete'), { recursive: true });
    await pair.synced();

    for (const name of odd) assert.equal(readFileSync(c(`src/${name}`), 'utf8'), `content of ${name}`, name);
    assert.equal(readFileSync(c('src/package/mod.py'), 'utf8'), 'x = 2  # edited\n');
    assert.equal(existsSync(c('src/pkg')), false, 'renamed-away folder removed');
    assert.ok(statSync(c('empty/inner')).isDirectory(), 'empty folders arrive');
    assert.ok(lstatSync(c('src/link-to-mod')).isSymbolicLink());
    assert.equal(readlinkSync(c('src/link-to-mod')), 'pkg/mod.py', 'symlinks arrive as links, not followed');
    assert.equal(readlinkSync(c('src/dangling')), '/nonexistent/target');
    assert.equal(statSync(c('start.sh')).mode & 0o777, 0o750, 'permissions arrive');
    assert.equal(existsSync(c('run.sh')), false);
    assert.equal(statSync(c('old-mtime.txt')).mtimeMs, Date.parse('2020-01-02T03:04:05Z'), 'mtimes arrive');
    assert.equal(existsSync(c('existing')), false, 'deleted folder removed');
    assert.equal(existsSync(c('to-delete')), false);
    assert.deepEqual(await pair.verify(), []);
  });

  test('a rewrite of the same size within the same second is not skipped (regression: a watcher that compares size and mtime drops the event, and the rsync quick check skips such a file)', async () => {
    writeFileSync(g('same.txt'), 'AAAA');
    const t = new Date('2024-05-05T05:05:05Z');
    utimesSync(g('same.txt'), t, t);
    await pair.synced();
    assert.equal(readFileSync(c('same.txt'), 'utf8'), 'AAAA');
    writeFileSync(g('same.txt'), 'BBBB');
    utimesSync(g('same.txt'), t, t); // same size, same mtime: only content differs
    await pair.synced();
    assert.equal(readFileSync(c('same.txt'), 'utf8'), 'BBBB');
  });

  test('excluded paths stay on the GPU', async () => {
    writeFileSync(g('data.tmpcache'), 'cache');
    mkdirSync(g('scratch'));
    writeFileSync(g('scratch/big'), 'scratch');
    mkdirSync(g('__pycache__'));
    writeFileSync(g('__pycache__/m.cpython-312.pyc'), 'pyc'); // a default exclude
    writeFileSync(g('kept.txt'), 'kept');
    await pair.synced();
    assert.equal(readFileSync(c('kept.txt'), 'utf8'), 'kept');
    assert.equal(existsSync(c('data.tmpcache')), false);
    assert.equal(existsSync(c('scratch')), false);
    assert.equal(existsSync(c('__pycache__')), false);
  });

  test('passes reuse one ssh connection instead of a handshake each', async () => {
    await pair.synced();
    const before = pair.sshd.connections();
    const passesBefore = pair.engine.status().passes;
    const flushesBefore = pair.logs.filter((l) => l.msg === 'flush done').length;
    for (let i = 0; i < 6; i++) {
      writeFileSync(g(`conn-${i}.txt`), String(i));
      await waitFor(`pass ${i}`, () => existsSync(c(`conn-${i}.txt`)), { timeoutMs: 10_000 });
    }
    const passes = pair.engine.status().passes - passesBefore;
    const connections = pair.sshd.connections() - before;
    assert.ok(passes >= 5, `expected about a pass per write, got ${passes}`);
    assert.ok(connections <= 1, `expected the control master to carry the passes, but sshd accepted ${connections} new connections for ${passes} passes`);
    // a plain sshd, no receiver to flush in the transfer's session: each pass flushes in one of its own
    const flushes = pair.logs.filter((l) => l.msg === 'flush done').length - flushesBefore;
    assert.ok(flushes >= passes, `expected a flush session per pass, got ${flushes} for ${passes} passes`);
    assert.equal(pair.logs.some((l) => l.flushed === true), false);
    // nor one to say the standby's folder was empty: its first full pass wrote no file in place
    assert.equal(pair.logs.some((l) => l.inplace === true), false);
  });

  test('a path deleted here as a file that is a non-empty folder on the standby goes all the same (named as a file, left in place by rsync, then sent again as a folder)', async () => {
    await pair.synced();
    // drift: a folder with content on the standby only (a deletion the guard held, then this path reused, say)
    mkdirSync(c('shape/inner'), { recursive: true });
    writeFileSync(c('shape/inner/a.txt'), 'a');
    writeFileSync(c('shape/b.txt'), 'b');
    // here the path is a file, made and deleted within one batch: the pass names a deleted file, alone
    writeFileSync(g('shape'), 'briefly a file');
    rmSync(g('shape'));
    await waitFor('the folder gone from the standby', () => !existsSync(c('shape')), { timeoutMs: 15_000 });
    await pair.synced();
    assert.deepEqual(await pair.verify(), []);
  });

  test('a periodic or requested full reconcile repairs drift on the standby', async () => {
    writeFileSync(c('stray-on-standby.txt'), 'nobody wrote this on the GPU');
    writeFileSync(g('kept.txt'), 'kept');
    pair.engine.requestFullResync('test');
    await waitFor('stray removed', () => !existsSync(c('stray-on-standby.txt')), { timeoutMs: 10_000 });
    await pair.synced();
    assert.deepEqual(await pair.verify(), []);
  });
});

describe('extra sync roots', () => {
  let pair: SyncPair;
  let extraLocal: string;
  let extraRemote: string;
  before(async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const base = mkdtempSync(join(tmpdir(), 'standby-extra-'));
    extraLocal = join(base, 'User');
    extraRemote = join(base, 'remote-User');
    mkdirSync(extraLocal);
    writeFileSync(join(extraLocal, 'settings.json'), '{"editor.fontSize": 14}');
    pair = await startPair({ settings: { sync: { paths: [{ local: extraLocal, remote: extraRemote }] } } });
  });
  after(async () => {
    await pair?.close();
    rmSync(join(extraLocal, '..'), { recursive: true, force: true });
  });

  test('code-server settings beside the workspace are synced to their own place', async () => {
    assert.equal(readFileSync(join(extraRemote, 'settings.json'), 'utf8'), '{"editor.fontSize": 14}');
    writeFileSync(join(extraLocal, 'keybindings.json'), '[]');
    writeFileSync(join(pair.gpu, 'w.txt'), 'w');
    await pair.synced();
    assert.equal(readFileSync(join(extraRemote, 'keybindings.json'), 'utf8'), '[]');
    assert.equal(readFileSync(join(pair.cpu, 'w.txt'), 'utf8'), 'w');
    assert.deepEqual(await pair.verify(), []);
  });
});

test('a batch of more than 1,000 changed paths with a deletion among them (more than RULES_MAX: a --files-from run, then the deletions) lands exactly', async () => {
  const pair = await startPair({ settings: { sync: { delayMs: 2_000, maxDelayMs: 30_000 } } }); // one batch even on a loaded machine
  try {
    mkdirSync(join(pair.gpu, 'many'));
    writeFileSync(join(pair.gpu, 'many/old.txt'), 'old\n');
    await pair.synced();
    // one batch: 1,100 new files in a folder the standby has, and a deletion
    for (let i = 0; i < 1_100; i++) writeFileSync(join(pair.gpu, 'many', `f${i}.txt`), `${i}\n`);
    rmSync(join(pair.gpu, 'many/old.txt'));
    await pair.synced();
    assert.ok(pair.logs.some((l) => l.msg === 'pass done' && (l.changes as number) > 1_000), 'one pass took more than 1,000 changes');
    assert.equal(readFileSync(join(pair.cpu, 'many/f1099.txt'), 'utf8'), '1099\n');
    assert.equal(existsSync(join(pair.cpu, 'many/old.txt')), false);
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('a long full pass flushes the standby\'s disk while its rsync runs, so its last flush finds little left (a restore to a new GPU)', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { execFileSync } = await import('node:child_process');
  const bin = mkdtempSync(join(tmpdir(), 'standby-flush-bin-'));
  try {
    // on the standby's PATH: its rsync receiver starts only once a flush ran while it waited (at most 10 s), else fails
    const realRsync = execFileSync('sh', ['-c', 'command -v rsync'], { encoding: 'utf8' }).trim();
    writeFileSync(join(bin, 'sync'), `#!/bin/sh\n: > ${bin}/flushed\nexec /bin/sync "$@"\n`, { mode: 0o755 });
    writeFileSync(join(bin, 'rsync'), `#!/bin/sh\n[ "$1" = --server ] || exec ${realRsync} "$@"\n` +
      `i=0; while [ ! -e ${bin}/flushed ]; do i=$((i+1)); [ $i -gt 200 ] && { echo "no flush while the rsync ran" >&2; exit 1; }; sleep 0.05; done\nexec ${realRsync} "$@"\n`, { mode: 0o755 });
    const pair = await startPair({
      sshd: { path: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` },
      before: (gpu) => writeFileSync(join(gpu, 'a.txt'), 'restored\n'),
      noStart: true,
    });
    try {
      await pair.engine.start();
      await waitFor('the first full pass landed', () => pair.engine.status().ready, { timeoutMs: 30_000 });
      assert.equal(readFileSync(join(pair.cpu, 'a.txt'), 'utf8'), 'restored\n');
      assert.equal(pair.engine.status().failedPasses, 0, 'the first full pass succeeded at once');
    } finally {
      await pair.close();
    }
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
