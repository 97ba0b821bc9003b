// `standby install agent|standby` and code-server (installer/code-server-unit.ts),
// under --root with --no-start, as real child processes: the pinned version
// laid down from a folder (the cache, as tests do), its unit verified by
// systemd-analyze and its ExecStart run as written, serving code-server; the
// agent's freeze pointed at the unit's cgroup and its unit allowed to write
// cgroupfs; the user's own code-server used as it is; a wrong version, a folder
// that is no code-server and a failed download refused with what to do;
// uninstall removing what install laid down.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../core/free-port.ts';
import { CODE_SERVER_VERSION, ensureCodeServer } from '../../installer/code-server.ts';
import { CODE_SERVER_CGROUP } from '../../installer/code-server-unit.ts';
import { standby } from '../fixtures/cli-run.ts';
import { exitOf, waitFor } from '../fixtures/wait-for.ts';

const scratch = () => mkdtempSync(join(tmpdir(), 'standby-cs-unit-'));
const hasAnalyze = existsSync('/usr/bin/systemd-analyze');

/** A unit file's settings, key -> values. */
function settingsOf(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#') || t.startsWith('[')) continue;
    const eq = t.indexOf('=');
    m.set(t.slice(0, eq), [...(m.get(t.slice(0, eq)) ?? []), t.slice(eq + 1)]);
  }
  return m;
}

let cache: string;
before(async () => {
  // the cache `npm test`'s pretest fills (installs it here only if it is missing)
  cache = (await ensureCodeServer()).dir;
});

describe('standby install agent with code-server from a folder', () => {
  let root: string;
  let port: number;
  let install: Awaited<ReturnType<typeof standby>>;
  before(async () => {
    root = scratch();
    mkdirSync(join(root, 'workspace'));
    writeFileSync(join(root, 'workspace', 'hello.txt'), 'hello\n');
    port = await freePort();
    install = await standby(['install', 'agent', '--root', root, '--no-start', '--standby-host', 'cpu-1', '--code-server-from', cache, '--code-server-listen', `127.0.0.1:${port}`]);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('lays down the pinned version, its unit (as the workspace owner, on the address given, opening the workspace) and says so', () => {
    assert.equal(install.code, 0, install.stderr);
    const dir = join(root, 'opt/standby/code-server', CODE_SERVER_VERSION);
    assert.equal(JSON.parse(readFileSync(join(dir, 'node_modules/code-server/package.json'), 'utf8')).version, CODE_SERVER_VERSION);
    const unit = settingsOf(readFileSync(join(root, 'etc/systemd/system/standby-code-server.service'), 'utf8'));
    assert.deepEqual(unit.get('User'), ['root'], "the workspace's owner");
    assert.deepEqual(unit.get('Restart'), ['always']);
    assert.deepEqual(unit.get('WantedBy'), ['multi-user.target']);
    const exec = unit.get('ExecStart')![0]!;
    assert.ok(exec.startsWith(`/opt/standby/current/node_modules/node/bin/node /opt/standby/code-server/${CODE_SERVER_VERSION}/node_modules/code-server/out/node/entry.js `), exec);
    assert.match(exec, new RegExp(`--auth none --disable-telemetry --disable-update-check --disable-workspace-trust --bind-addr 127\\.0\\.0\\.1:${port} .* ${join(root, 'workspace')}$`));
    assert.match(install.stdout, /code-server not started \(installed under --root/);
    const record = JSON.parse(readFileSync(join(root, 'var/lib/standby/installed-agent.json'), 'utf8'));
    assert.equal(record.codeServer.mode, 'unit');
    assert.equal(record.codeServer.version, CODE_SERVER_VERSION);
  });

  test("the agent's freeze is the unit's cgroup, and the agent's unit may write cgroupfs (a drop-in)", () => {
    const agent = JSON.parse(readFileSync(join(root, 'etc/standby/agent.json'), 'utf8'));
    assert.deepEqual(agent.freeze, { cgroup: CODE_SERVER_CGROUP });
    const dropIn = settingsOf(readFileSync(join(root, 'etc/systemd/system/standby-agent.service.d/standby-code-server.conf'), 'utf8'));
    assert.deepEqual(dropIn.get('ProtectControlGroups'), ['no']);
  });

  test('systemd-analyze verify passes on the code-server unit and on the agent unit with its drop-in', { skip: hasAnalyze ? false : 'systemd-analyze is not installed (Debian package systemd)' }, () => {
    // systemd's own units, the agent's unit and mkdir (ExecStartPre) where the units expect them
    mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
    cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
    mkdirSync(join(root, 'usr/bin'), { recursive: true });
    copyFileSync('/usr/bin/mkdir', join(root, 'usr/bin/mkdir'));
    copyFileSync(join(import.meta.dirname, '../../systemd/standby-agent.service'), join(root, 'etc/systemd/system/standby-agent.service'));
    for (const name of ['standby-code-server.service', 'standby-agent.service']) {
      const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, name], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      assert.equal(r.stderr.trim(), '', `${name}: no warnings either`);
    }
    const cat = spawnSync('systemd-analyze', ['cat-config', `--root=${root}`, 'systemd/system/standby-agent.service'], { encoding: 'utf8' });
    if (cat.status === 0) assert.match(cat.stdout, /ProtectControlGroups=no/, 'the drop-in is read with the unit');
  });

  test("the unit's ExecStart, run as written (inside the prefix), serves code-server on the address given, opening the workspace", { timeout: 90_000 }, async () => {
    const words = settingsOf(readFileSync(join(root, 'etc/systemd/system/standby-code-server.service'), 'utf8')).get('ExecStart')![0]!.split(' ');
    const inRoot = (w: string) => (w.startsWith('/opt/') ? join(root, w) : w);
    const data = mkdtempSync(join(tmpdir(), 'standby-cs-unit-data-'));
    // the user data folders of this run, not root's real ones
    const args = words.slice(1).map(inRoot).map((w, i, all) => (all[i - 1] === '--user-data-dir' ? join(data, 'user') : all[i - 1] === '--extensions-dir' ? join(data, 'ext') : w));
    mkdirSync(join(data, 'user'));
    mkdirSync(join(data, 'ext'));
    const child = spawn(inRoot(words[0]!), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    try {
      await waitFor('code-server from the installed tree answering /healthz', async () => (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) })).status === 200, {
        timeoutMs: 60_000,
        failIf: () => exitOf('code-server', child, () => err),
      });
      const res = await fetch(`http://127.0.0.1:${port}/`, { redirect: 'manual' });
      await res.arrayBuffer();
      assert.equal(res.headers.get('location'), `./?folder=${join(root, 'workspace')}`);
    } finally {
      const { killTree } = await import('../../core/process-tree.ts');
      if (child.pid !== undefined && child.exitCode === null) killTree(child.pid, 'SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('close', r)));
      rmSync(data, { recursive: true, force: true });
    }
  });

  test("without systemd (a container), the start script beside the version runs code-server as the unit would, from under the prefix too", { timeout: 90_000 }, async () => {
    const start = join(root, 'opt/standby/code-server/start');
    const text = readFileSync(start, 'utf8');
    assert.match(text, new RegExp(`--bind-addr 127\\.0\\.0\\.1:${port} `));
    const data = mkdtempSync(join(tmpdir(), 'standby-cs-start-data-'));
    // this run's user data folders, not root's real ones; beside the original, so its relative paths hold
    const copy = join(root, 'opt/standby/code-server/start-test');
    writeFileSync(copy, text.replaceAll('/root/.local/share/code-server/extensions', join(data, 'ext')).replaceAll('/root/.local/share/code-server', join(data, 'user')), { mode: 0o755 });
    const child = spawn(copy, [], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    try {
      await waitFor('code-server from the start script answering /healthz', async () => (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) })).status === 200, {
        timeoutMs: 60_000,
        failIf: () => exitOf('the start script', child, () => err),
      });
      const res = await fetch(`http://127.0.0.1:${port}/`, { redirect: 'manual' });
      await res.arrayBuffer();
      assert.equal(res.headers.get('location'), `./?folder=${join(root, 'workspace')}`);
      assert.ok(existsSync(join(data, 'user')) && existsSync(join(data, 'ext')), 'it made the user data folders');
    } finally {
      const { killTree } = await import('../../core/process-tree.ts');
      if (child.pid !== undefined && child.exitCode === null) killTree(child.pid, 'SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('close', r)));
      rmSync(copy, { force: true });
      rmSync(data, { recursive: true, force: true });
    }
  });

  test('a second install keeps the version laid down (no copy, no download) and the unit', async () => {
    const r = await standby(['install', 'agent', '--root', root, '--no-start']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`code-server ${CODE_SERVER_VERSION.replace(/\./g, '\\.')}: kept `));
    assert.ok(existsSync(join(root, 'etc/systemd/system/standby-code-server.service')));
  });

  test('uninstall removes the unit, the drop-in and code-server', async () => {
    const r = await standby(['uninstall', 'agent', '--root', root]);
    assert.equal(r.code, 0, r.stderr);
    for (const p of ['etc/systemd/system/standby-code-server.service', 'etc/systemd/system/standby-agent.service.d', 'opt/standby/code-server']) assert.equal(existsSync(join(root, p)), false, p);
    assert.ok(existsSync(join(root, 'workspace/hello.txt')), 'never the workspace');
  });
});

test('standby install standby lays down the code-server unit too, and no agent drop-in', async () => {
  const root = scratch();
  try {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBFbW2RlLGQii4r+S2Vrxxckn+CmNcwttrLO1Aedu9NW proxy';
    const r = await standby(['install', 'standby', '--root', root, '--no-start', '--fence-key', key, '--code-server-from', cache, '--code-server-listen', `127.0.0.1:${await freePort()}`]);
    assert.equal(r.code, 0, r.stderr);
    const unit = settingsOf(readFileSync(join(root, 'etc/systemd/system/standby-code-server.service'), 'utf8'));
    assert.match(unit.get('ExecStart')![0]!, new RegExp(` ${join(root, 'workspace')}$`), 'opens the copy the standby serves');
    assert.equal(existsSync(join(root, 'etc/systemd/system/standby-agent.service.d')), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the user's own code-server (something answering on the port) is used: no unit, no freeze, and the install says so", async () => {
  const root = scratch();
  const theirs = createServer((s) => s.destroy());
  await new Promise<void>((r) => theirs.listen(0, '127.0.0.1', r));
  try {
    const port = (theirs.address() as { port: number }).port;
    const r = await standby(['install', 'agent', '--root', root, '--no-start', '--standby-host', 'cpu-1', '--code-server-from', cache, '--code-server-listen', `127.0.0.1:${port}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`code-server: using yours \\(something answers on 127\\.0\\.0\\.1:${port}\\); no unit written`));
    assert.equal(existsSync(join(root, 'etc/systemd/system/standby-code-server.service')), false);
    assert.equal(existsSync(join(root, 'opt/standby/code-server')), false);
    assert.equal(JSON.parse(readFileSync(join(root, 'etc/standby/agent.json'), 'utf8')).freeze, undefined);
  } finally {
    theirs.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('left out: --no-code-server, and an install under --root given no --code-server-from (tests download nothing)', async () => {
  const cases = [
    { name: 'no-code-server', args: ['--no-code-server', '--code-server-from', '/nonexistent'], says: /code-server: left alone \(--no-code-server\)/ },
    { name: 'root without from', args: [], says: /code-server: not installed \(under --root .* without --code-server-from\)/ },
  ];
  for (const c of cases) {
    const root = scratch();
    try {
      const r = await standby(['install', 'agent', '--root', root, '--no-start', '--standby-host', 'cpu-1', ...c.args]);
      assert.equal(r.code, 0, `${c.name}: ${r.stderr}`);
      assert.match(r.stdout, c.says, c.name);
      assert.equal(existsSync(join(root, 'etc/systemd/system/standby-code-server.service')), false, c.name);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
});

describe('refused, with what to do, before any unit is written', () => {
  let server: Server;
  let base: string;
  let files: string;
  before(async () => {
    files = scratch();
    // a tarball that is no code-server release: a folder with a README
    mkdirSync(join(files, 'not-code-server'));
    writeFileSync(join(files, 'not-code-server', 'README'), 'hello');
    assert.equal(spawnSync('tar', ['-czf', join(files, 'not.tar.gz'), '-C', files, 'not-code-server']).status, 0);
    server = createHttpServer((req, res) => {
      if (req.url === '/not.tar.gz') res.writeHead(200).end(readFileSync(join(files, 'not.tar.gz')));
      else res.writeHead(404).end('no such release');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => {
    server.close();
    rmSync(files, { recursive: true, force: true });
  });

  const cases = () => [
    { name: 'another version in the folder', from: () => { const d = join(files, 'old'); mkdirSync(join(d, 'node_modules/code-server/out/node'), { recursive: true }); writeFileSync(join(d, 'node_modules/code-server/out/node/entry.js'), ''); writeFileSync(join(d, 'node_modules/code-server/package.json'), '{"version":"4.100.0"}'); return d; }, says: new RegExp(`holds code-server 4\\.100\\.0; this Standby runs ${CODE_SERVER_VERSION.replace(/\./g, '\\.')} on every host`) },
    { name: 'a folder that is no code-server', from: () => files, says: /not a code-server folder/ },
    { name: 'a download that fails', from: () => `${base}/missing.tar.gz`, says: /could not download code-server from .*missing\.tar\.gz: HTTP 404; .*--code-server-from DIR/ },
    { name: 'a tarball that is no code-server release', from: () => `${base}/not.tar.gz`, says: /held no code-server/ },
  ];
  test('a wrong version, a folder or a tarball that is no code-server, a failed download', async () => {
    for (const c of cases()) {
      const root = scratch();
      try {
        const r = await standby(['install', 'agent', '--root', root, '--no-start', '--standby-host', 'cpu-1', '--code-server-from', c.from(), '--code-server-listen', `127.0.0.1:${await freePort()}`]);
        assert.notEqual(r.code, 0, c.name);
        assert.match(r.stderr, c.says, `${c.name}: ${r.stderr}`);
        assert.equal(existsSync(join(root, 'etc/systemd/system/standby-code-server.service')), false, c.name);
        assert.deepEqual(existsSync(join(root, 'opt/standby/code-server')) ? spawnSync('ls', ['-A', join(root, 'opt/standby/code-server')], { encoding: 'utf8' }).stdout.trim() : '', '', `${c.name}: no partial folder left`);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    }
  });
});

test("one unit per machine: the standby role installed beside the agent (a GPU's first boot) keeps the agent's unit; uninstalling either keeps it for the other", async () => {
  const root = scratch();
  try {
    mkdirSync(join(root, 'workspace'));
    const port = await freePort();
    const a = await standby(['install', 'agent', '--root', root, '--no-start', '--standby-host', 'cpu-1', '--code-server-from', cache, '--code-server-listen', `127.0.0.1:${port}`]);
    assert.equal(a.code, 0, a.stderr);
    const unitFile = join(root, 'etc/systemd/system/standby-code-server.service');
    const unit = readFileSync(unitFile, 'utf8');
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBFbW2RlLGQii4r+S2Vrxxckn+CmNcwttrLO1Aedu9NW proxy';
    const s = await standby(['install', 'standby', '--root', root, '--no-start', '--fence-key', key, '--workspace', join(root, 'other-workspace'), '--code-server-from', cache]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /code-server: the unit the agent role laid down serves this machine/);
    assert.equal(readFileSync(unitFile, 'utf8'), unit, "the agent's unit, untouched (it opens the GPU's workspace)");
    const u1 = await standby(['uninstall', 'standby', '--root', root]);
    assert.equal(u1.code, 0, u1.stderr);
    assert.ok(existsSync(unitFile) && existsSync(join(root, 'opt/standby/code-server', CODE_SERVER_VERSION)), 'kept for the agent');
    assert.ok(existsSync(join(root, 'etc/systemd/system/standby-agent.service.d/standby-code-server.conf')));
    const u2 = await standby(['uninstall', 'agent', '--root', root]);
    assert.equal(u2.code, 0, u2.stderr);
    assert.equal(existsSync(unitFile), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
