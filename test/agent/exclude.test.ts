// excludeMatcher: the watcher's conservative copy of rsync's --exclude rules.
// rsync is the authority, so every pattern table is checked against a real
// `rsync -a --dry-run --itemize-changes --exclude=...` of a small temp tree:
// the matcher must never exclude a path rsync would send, and for the
// patterns it claims to understand it must agree with rsync exactly.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_EXCLUDES, EDITOR_USER_FILES } from '../../config/agent.ts';
import { excludeArgs, excludeMatcher, includeArgs, outsideInclude } from '../../agent/exclude.ts';

describe('excludeMatcher semantics', () => {
  const cases: { name: string; patterns: string[]; path: string; isDir: boolean | undefined; want: boolean }[] = [
    { name: 'name/ matches a folder of that name', patterns: ['build/'], path: 'build', isDir: true, want: true },
    { name: 'name/ matches a nested folder of that name', patterns: ['build/'], path: 'src/build', isDir: true, want: true },
    { name: 'name/ does not match a file of that name', patterns: ['build/'], path: 'lib/build', isDir: false, want: false },
    { name: 'name/ does not match when the type is unknown yet (conservative)', patterns: ['build/'], path: 'build', isDir: undefined, want: false },
    { name: 'name/ does not match a longer name', patterns: ['build/'], path: 'buildx', isDir: true, want: false },
    { name: '*.pyc matches a file at the root', patterns: ['*.pyc'], path: 'x.pyc', isDir: false, want: true },
    { name: '*.pyc matches a file at any depth', patterns: ['*.pyc'], path: 'a/b/x.pyc', isDir: false, want: true },
    { name: '*.pyc matches a folder so named too', patterns: ['*.pyc'], path: 'z.pyc', isDir: true, want: true },
    { name: '*.pyc does not match "pyc"', patterns: ['*.pyc'], path: 'src/pyc', isDir: false, want: false },
    { name: '* does not cross a slash', patterns: ['src*'], path: 'src/x', isDir: false, want: false },
    { name: 'anchored /build matches at the root', patterns: ['/build'], path: 'build', isDir: true, want: true },
    { name: 'anchored /build does not match deeper', patterns: ['/build'], path: 'src/build', isDir: true, want: false },
    { name: 'a/b matches the whole path', patterns: ['a/b'], path: 'a/b', isDir: true, want: true },
    { name: 'a/b matches a path tail', patterns: ['a/b'], path: 'x/a/b', isDir: false, want: true },
    { name: 'a/b matches only on component boundaries', patterns: ['a/b'], path: 'xa/b', isDir: true, want: false },
    { name: 'a/b does not match a longer last name', patterns: ['a/b'], path: 'a/bb', isDir: false, want: false },
    { name: '** spans folders', patterns: ['docs/**'], path: 'docs/deep/er/file.md', isDir: false, want: true },
    { name: '? matches exactly one character', patterns: ['?.pyc'], path: '12.pyc', isDir: false, want: false },
    { name: 'a dot is literal', patterns: ['a.b'], path: 'axb', isDir: true, want: false },
    { name: 'regex metacharacters are literal', patterns: ['(x)+$'], path: '(x)+$', isDir: false, want: true },
    { name: 'no patterns: nothing excluded', patterns: [], path: 'anything', isDir: false, want: false },
    { name: 'an empty pattern matches nothing', patterns: [''], path: 'anything', isDir: false, want: false },
    { name: 'unsupported [class] matches nothing', patterns: ['[x]'], path: 'x', isDir: false, want: false },
    { name: 'unsupported *** matches nothing', patterns: ['docs/***'], path: 'docs', isDir: true, want: false },
    { name: 'unsupported backslash escape matches nothing', patterns: ['\\*'], path: '*', isDir: false, want: false },
    { name: 'unsupported "- " rule prefix matches nothing', patterns: ['- build'], path: 'build', isDir: true, want: false },
    { name: 'unsupported "+ " rule prefix matches nothing', patterns: ['+ build'], path: 'build', isDir: true, want: false },
    { name: 'an unsupported pattern does not disable the others', patterns: ['[x]', '*.pyc'], path: 'a.pyc', isDir: false, want: true },
  ];
  for (const c of cases) test(c.name, () => assert.equal(excludeMatcher(c.patterns)(c.path, c.isDir), c.want));

  test('excludeArgs gives one --exclude= per pattern, unquoted', () => {
    assert.deepEqual(excludeArgs(['a b/', '*.pyc']), ['--exclude=a b/', '--exclude=*.pyc']);
    assert.deepEqual(excludeArgs([]), []);
  });
});

// The tree rsync and the matcher are compared on. Folders end with '/'.
const TREE = [
  'build/out.o', 'src/build/x.o', 'lib/build', 'buildx/f',
  'node_modules/pkg/index.js', 'node_modules/.cache/c', 'web/node_modules/.cache/d', 'web/node_modules/keep.js',
  'x.pyc', 'src/y.pyc', 'src/pyc', 'z.pyc/inner.txt', '1.pyc', '12.pyc',
  'a/b/file', 'a/q/b/h', 'x/a/b/file', 'xa/b/f', 'a/bb', 'a.b/c', 'axb/c',
  'er', 'docs/deep/er/file.md', 'docs/file.md', 'docs/readme',
  '.cache/pip/w', 'src/.cache/w', '.Trash-1000/t', '.Trash-/t', 'Trash-1/t',
  'f.swp', 'f.swx', 'f.swpx', '__pycache__/m.pyc', 'pkg/__pycache__/n.pyc', 'pkg/keep.py', '.ipynb_checkpoints/nb.ipynb',
  'a b/c d.txt', 'ünï/ø.txt', 'ø.txt', '[x]', 'x/plain', 'foobar/baz', 'x/foolish', 'x/afoo',
  'empty/',
];

/** every path in TREE with its type, folders above files included */
function allPaths(): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const entry of TREE) {
    const isDir = entry.endsWith('/');
    const path = isDir ? entry.slice(0, -1) : entry;
    out.set(path, isDir);
    for (let d = dirname(path); d !== '.'; d = dirname(d)) out.set(d, true);
  }
  return out;
}

let root = '';
let src = '';

/** paths rsync would send with these excludes (relative, no trailing '/') */
function rsyncSends(patterns: readonly string[]): Set<string> {
  const r = spawnSync('rsync', ['-a', '-8', '--dry-run', '--itemize-changes', ...excludeArgs(patterns), `${src}/`, join(root, 'dst-never-created') + '/'], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C.UTF-8' },
  });
  assert.equal(r.status, 0, `rsync failed: ${r.stderr}`);
  const sent = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    if (!/^[<>ch.][fdLDS]/.test(line)) continue; // "created directory ..." and the like
    const name = line.slice(12).replace(/\/$/, '');
    if (name !== '.') sent.add(name);
  }
  return sent;
}

/** what the watcher would skip: the path, or a folder above it, matches (the watcher does not descend into skipped folders) */
function watcherSkips(match: (p: string, d: boolean | undefined) => boolean, path: string, isDir: boolean): boolean {
  if (match(path, isDir)) return true;
  for (let d = dirname(path); d !== '.'; d = dirname(d)) if (match(d, true)) return true;
  return false;
}

describe('excludeMatcher against real rsync', () => {
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'standby-exclude-'));
    src = join(root, 'src');
    for (const entry of TREE) {
      const p = join(src, entry);
      if (entry.endsWith('/')) mkdirSync(p, { recursive: true });
      else {
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, entry);
      }
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('the tree is what rsync sees (sanity check of the harness)', () => {
    const sent = rsyncSends([]);
    assert.deepEqual([...sent].sort(), [...allPaths().keys()].sort());
  });

  const cases: { name: string; patterns: readonly string[]; exact: boolean }[] = [
    { name: 'dir-only build/', patterns: ['build/'], exact: true },
    { name: '*.pyc', patterns: ['*.pyc'], exact: true },
    { name: 'anchored /build', patterns: ['/build'], exact: true },
    { name: 'anchored dir-only /build/', patterns: ['/build/'], exact: true },
    { name: 'tail match a/b', patterns: ['a/b'], exact: true },
    { name: 'literal dot a.b', patterns: ['a.b'], exact: true },
    { name: '** under a folder: docs/**', patterns: ['docs/**'], exact: true },
    // rsync lets a leading '**/' match no folder at all (it skips the top-level 'er' too); the matcher
    // does not, which only costs a watch, never a change
    { name: '** before a name: **/er (conservative at the root)', patterns: ['**/er'], exact: false },
    { name: '** between names: a/**/b (needs at least one folder between)', patterns: ['a/**/b'], exact: true },
    { name: 'trailing **: foo**', patterns: ['foo**'], exact: true },
    { name: '? wildcard: ?.pyc', patterns: ['?.pyc'], exact: true },
    { name: 'nested dir-only node_modules/.cache/', patterns: ['node_modules/.cache/'], exact: true },
    { name: 'a name with spaces: a b/', patterns: ['a b/'], exact: true },
    { name: 'a unicode name: ø.txt', patterns: ['ø.txt'], exact: true },
    { name: 'everything: *', patterns: ['*'], exact: true },
    { name: 'the default excludes', patterns: DEFAULT_EXCLUDES, exact: true },
    { name: 'several patterns together', patterns: ['build/', '*.pyc', '/docs', 'a/b', '.Trash-*/'], exact: true },
    { name: 'unsupported: [x] class', patterns: ['[x]'], exact: false },
    { name: 'unsupported: docs/*** folder and contents', patterns: ['docs/***'], exact: false },
    { name: 'unsupported: escaped \\[x\\]', patterns: ['\\[x\\]'], exact: false },
    { name: 'unsupported: "- build" rule prefix', patterns: ['- build'], exact: false },
    { name: 'unsupported: "+ build" rule prefix alone', patterns: ['+ build'], exact: false },
    { name: 'regression: an earlier "+ build" include wins over a later build/ exclude in rsync, so the matcher must not skip build', patterns: ['+ build', 'build/'], exact: false },
    { name: 'regression: "!" clears the rules before it, so the matcher must not keep *.pyc', patterns: ['*.pyc', '!'], exact: false },
  ];

  for (const c of cases) {
    test(`${c.name}: never excludes what rsync sends${c.exact ? ', and agrees exactly' : ''}`, () => {
      const sent = rsyncSends(c.patterns);
      const match = excludeMatcher(c.patterns);
      const wronglySkipped: string[] = [];
      const missed: string[] = [];
      for (const [path, isDir] of allPaths()) {
        const skipped = watcherSkips(match, path, isDir);
        if (skipped && sent.has(path)) wronglySkipped.push(path);
        if (!skipped && !sent.has(path)) missed.push(path);
      }
      assert.deepEqual(wronglySkipped, [], `the matcher skips paths rsync sends with ${JSON.stringify(c.patterns)}`);
      if (c.exact) assert.deepEqual(missed, [], `rsync skips these but the matcher does not, with ${JSON.stringify(c.patterns)}`);
    });
  }

  test('unsupported patterns match nothing at all', () => {
    for (const patterns of [['[x]'], ['docs/***'], ['\\[x\\]'], ['- build'], ['+ build'], ['']]) {
      const match = excludeMatcher(patterns);
      for (const [path] of allPaths()) {
        assert.equal(match(path, true), false, `${JSON.stringify(patterns)} matched folder ${path}`);
        assert.equal(match(path, false), false, `${JSON.stringify(patterns)} matched file ${path}`);
      }
    }
  });
});

describe("a root's include list (code-server's User folder) against real rsync", () => {
  // what code-server 4.139.1 keeps in <user-data-dir>/User (docs/editor.md), and names that only look alike
  const USER_TREE = [
    'settings.json', 'keybindings.json', 'tasks.json', 'snippets/python.json', 'snippets/global.code-snippets',
    'Backups/62dd17cf/untitled/-7f9c1a2e', 'Backups/62dd17cf/file/-3b1e2a', 'globalStorage/state.vscdb', 'globalStorage/agent-host.db',
    'workspaceStorage/62dd17cf/vscode.lock', 'workspaceStorage/62dd17cf/state.vscdb', 'History/6cd9a5cd/entries.json',
    'caches/CachedConfigurations/folder/x/configuration.json', 'machineid', 'chatLanguageModels.json', 'settings.json.bak',
    'snippetsx/f', 'sub/settings.json', 'Backupsold/f',
  ];
  let top = '';
  before(() => {
    top = mkdtempSync(join(tmpdir(), 'standby-include-'));
    for (const entry of USER_TREE) {
      mkdirSync(dirname(join(top, 'User', entry)), { recursive: true });
      writeFileSync(join(top, 'User', entry), entry);
    }
  });
  after(() => rmSync(top, { recursive: true, force: true }));

  test('the watcher reports exactly the paths rsync sends: settings, keybindings, tasks, snippets and Backups, never state.vscdb', () => {
    const r = spawnSync('rsync', ['-a', '--dry-run', '--itemize-changes', ...excludeArgs(DEFAULT_EXCLUDES), ...includeArgs(EDITOR_USER_FILES), `${join(top, 'User')}/`, join(top, 'never') + '/'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const sent = new Set(r.stdout.split('\n').filter((l) => /^[<>ch.][fdLDS]/.test(l)).map((l) => l.slice(12).replace(/\/$/, '')).filter((n) => n !== '.'));
    const watched = new Set<string>();
    for (const entry of USER_TREE) {
      const parts = entry.split('/');
      for (let i = 1; i <= parts.length; i++) {
        const path = parts.slice(0, i).join('/');
        // the watcher does not descend into what it skips
        if (!parts.slice(0, i).some((_, j) => outsideInclude(EDITOR_USER_FILES, parts.slice(0, j + 1).join('/')))) watched.add(path);
      }
    }
    assert.deepEqual([...watched].sort(), [...sent].sort());
    for (const never of ['globalStorage/state.vscdb', 'workspaceStorage/62dd17cf/state.vscdb', 'machineid', 'sub/settings.json', 'snippetsx/f']) assert.ok(!sent.has(never), never);
    for (const always of ['settings.json', 'snippets/python.json', 'Backups/62dd17cf/untitled/-7f9c1a2e']) assert.ok(sent.has(always), always);
  });
});
