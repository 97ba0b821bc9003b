// installer/code-server.ts: where the cache is, what counts as an install
// (the hand-made layout included), an install there is taken without npm, a
// failed install (real npm, its registry a closed loopback port) leaves no
// folder behind and names the cause, and the lock keeps a second process
// waiting for the first one's install instead of running its own.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { StandbyError } from '../../core/errors.ts';
import { freePort } from '../../core/free-port.ts';
import { CODE_SERVER_VERSION, codeServerArgs, codeServerCacheDir, ensureCodeServer, installedCodeServer, installFailureHint, type CodeServerProgress } from '../../installer/code-server.ts';
import { exitOf, waitFor } from '../fixtures/wait-for.ts';

const tmp = mkdtempSync(join(tmpdir(), 'standby-cs-install-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A tree shaped as an install: <dir>/node_modules/code-server/{package.json, out/node/entry.js}. */
function fakeInstall(dir: string, version = CODE_SERVER_VERSION, entry = true): void {
  const pkg = join(dir, 'node_modules', 'code-server');
  mkdirSync(join(pkg, 'out', 'node'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"private":true}\n');
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'code-server', version }));
  if (entry) writeFileSync(join(pkg, 'out', 'node', 'entry.js'), '');
}

test('the cache folder: STANDBY_CODE_SERVER_CACHE, else XDG_CACHE_HOME, else ~/.cache', () => {
  const cases = [
    { name: 'explicit', env: { STANDBY_CODE_SERVER_CACHE: '/c', XDG_CACHE_HOME: '/x', HOME: '/h' }, want: '/c' },
    { name: 'xdg', env: { XDG_CACHE_HOME: '/x', HOME: '/h' }, want: '/x/standby-code-server' },
    { name: 'empty variables count as unset', env: { STANDBY_CODE_SERVER_CACHE: '', XDG_CACHE_HOME: '' }, want: join(process.env['HOME'] ?? '', '.cache', 'standby-code-server') },
  ];
  for (const c of cases) assert.equal(codeServerCacheDir(c.env), c.want, c.name);
});

test('an install is a tree with its entry and the version asked for (the hand-made npm layout included)', () => {
  const cases = [
    { name: 'whole', make: (d: string) => fakeInstall(d), ok: true },
    { name: 'another version', make: (d: string) => fakeInstall(d, '4.100.0'), ok: false },
    { name: 'no entry.js (cut off)', make: (d: string) => fakeInstall(d, CODE_SERVER_VERSION, false), ok: false },
    { name: 'a torn package.json', make: (d: string) => { fakeInstall(d); writeFileSync(join(d, 'node_modules/code-server/package.json'), '{"vers'); }, ok: false },
    { name: 'empty', make: (d: string) => mkdirSync(d), ok: false },
  ];
  for (const c of cases) {
    const dir = join(tmp, `layout-${c.name.replace(/\W+/g, '-')}`);
    c.make(dir);
    const found = installedCodeServer(dir);
    assert.equal(found !== undefined, c.ok, c.name);
    if (found) assert.deepEqual(found, { entry: join(dir, 'node_modules/code-server/out/node/entry.js'), version: CODE_SERVER_VERSION, dir });
  }
});

test('an install in the cache is returned as it is: no npm runs (none is on PATH here)', async () => {
  const cache = join(tmp, 'cached');
  fakeInstall(join(cache, CODE_SERVER_VERSION));
  const lines: CodeServerProgress[] = [];
  const path = process.env['PATH'];
  process.env['PATH'] = '/nonexistent';
  try {
    const cs = await ensureCodeServer({ cacheDir: cache, onProgress: (p) => lines.push(p) });
    assert.equal(cs.entry, join(cache, CODE_SERVER_VERSION, 'node_modules/code-server/out/node/entry.js'));
  } finally {
    process.env['PATH'] = path;
  }
  assert.deepEqual(lines, []);
});

test('a failed install (no registry reachable) names the cause, leaves neither the install nor its temporary folder, and a half install is not taken', async () => {
  const cache = join(tmp, 'offline');
  // an install cut off before: its temporary folder holds what looks whole, and must not count
  fakeInstall(join(cache, `.${CODE_SERVER_VERSION}.partial-99999`));
  const port = await freePort();
  const env = { npm_config_registry: `http://127.0.0.1:${port}/`, npm_config_fetch_retries: '0', npm_config_cache: join(tmp, 'npm-cache') };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  const lines: string[] = [];
  try {
    await assert.rejects(ensureCodeServer({ cacheDir: cache, onProgress: (p) => lines.push(p.line), timeoutMs: 120_000 }), (err: unknown) => {
      assert.ok(err instanceof StandbyError);
      assert.equal(err.code, 'STANDBY_ERR_INSTALL_FAILED');
      assert.match(err.message, /could not reach its registry: check the network/);
      assert.match(err.message, /ECONNREFUSED/, "npm's own lines are in the message");
      return true;
    });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  assert.ok(lines.some((l) => l.startsWith(`installing code-server ${CODE_SERVER_VERSION}`)), 'progress said what it does');
  assert.deepEqual(readdirSync(cache).filter((n) => !n.endsWith('.lock')), [], 'no install, no temporary folder, no old partial');
});

test('while another process holds the install lock, ensureCodeServer waits, and takes the install that process made', async () => {
  const cache = join(tmp, 'locked');
  mkdirSync(cache, { recursive: true });
  const lock = join(cache, `.install-${CODE_SERVER_VERSION}.lock`);
  const holder = spawn('flock', ['--exclusive', lock, 'sh', '-c', 'echo held; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  after(() => {
    if (holder.exitCode === null) holder.kill('SIGKILL');
  });
  let out = '';
  holder.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('the other process holding the lock', () => out.includes('held'), { failIf: () => exitOf('flock', holder) });
  const lines: string[] = [];
  let settled = false;
  const pending = ensureCodeServer({ cacheDir: cache, onProgress: (p) => lines.push(p.line) }).finally(() => (settled = true));
  await waitFor('ensureCodeServer saying it waits', () => lines.some((l) => l.startsWith("waiting for another process's install")), { timeoutMs: 5_000 });
  assert.equal(settled, false);
  // the other process's install lands, then it lets go
  fakeInstall(join(cache, CODE_SERVER_VERSION));
  holder.stdin.end();
  const cs = await pending;
  assert.equal(cs.dir, join(cache, CODE_SERVER_VERSION));
  assert.ok(lines.some((l) => l.includes('installed by another process meanwhile')));
});

test('a lock held for longer than lockTimeoutMs fails with what to do, and installs nothing', async () => {
  const cache = join(tmp, 'stuck');
  mkdirSync(cache, { recursive: true });
  const lock = join(cache, `.install-${CODE_SERVER_VERSION}.lock`);
  const holder = spawn('flock', ['--exclusive', lock, 'sh', '-c', 'echo held; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  after(() => {
    if (holder.exitCode === null) holder.kill('SIGKILL');
  });
  let out = '';
  holder.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('the other process holding the lock', () => out.includes('held'), { failIf: () => exitOf('flock', holder) });
  await assert.rejects(ensureCodeServer({ cacheDir: cache, lockTimeoutMs: 1_000 }), /another process has been installing code-server for over 1 s/);
  holder.stdin.end();
  assert.equal(existsSync(join(cache, CODE_SERVER_VERSION)), false);
});

test("code-server's flags: no auth of its own, no telemetry, no update check, no trust prompt, the folder last", () => {
  assert.deepEqual(codeServerArgs({ host: '::1', port: 8080, userDataDir: '/u', extensionsDir: '/e', folder: '/workspace' }), [
    '--auth', 'none', '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
    '--bind-addr', '[::1]:8080', '--user-data-dir', '/u', '--extensions-dir', '/e', '/workspace',
  ]);
});

test("a failed install's message names the cause npm's lines show, and what to do", () => {
  const cases = [
    { name: 'no Kerberos headers', output: "gyp info spawn make\n../src/kerberos.cc:1:10: fatal error: gssapi/gssapi.h: No such file or directory", want: /install libkrb5-dev/ },
    { name: 'no network', output: 'npm error code EAI_AGAIN\nnpm error request to https://registry.npmjs.org/code-server failed', want: /could not reach its registry/ },
    { name: 'the wrong Node', output: 'ERROR: code-server currently requires node v24.\nWe have detected that you are on node v20', want: /pinned Node must come first on PATH/ },
    { name: 'no compiler', output: 'gyp ERR! stack Error: not found: make', want: /g\+\+ make python3 pkg-config/ },
    { name: 'a full disk', output: 'npm error code ENOSPC', want: /disk is full/ },
    { name: 'anything else', output: 'npm error something new', want: /libkrb5-dev, build-essential or python3, or no network/ },
  ];
  for (const c of cases) assert.match(installFailureHint(c.output), c.want, c.name);
});
