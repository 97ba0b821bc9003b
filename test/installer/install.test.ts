// `standby install` / `standby uninstall` for each role under --root with
// --no-start, as real child processes: what lands where, with which modes and
// content; a second run keeps keys and tokens; uninstall leaves the workspace.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { agentConfigSchema } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import { fetchFenceKey } from '../../installer/install-role.ts';
import { layoutOf } from '../../installer/layout.ts';
import { startUnit } from '../../installer/units.ts';
import { proxyConfigSchema } from '../../config/proxy.ts';
import { freePort } from '../../core/free-port.ts';
import { standby } from '../fixtures/cli-run.ts';
import { startTestProxy, type TestProxy } from '../fixtures/proxy.ts';

const mode = (p: string) => statSync(p).mode & 0o777;
const scratch = () => mkdtempSync(join(tmpdir(), 'standby-install-'));

describe('standby install agent', () => {
  test('lays down program, key (0700 dir), agent.json (0600, valid); a second run keeps key and token; uninstall keeps the workspace', async () => {
    const root = scratch();
    try {
      const workspace = join(root, 'workspace');
      mkdirSync(workspace);
      writeFileSync(join(workspace, 'work.txt'), 'mine');
      const args = ['install', 'agent', '--root', root, '--no-start', '--proxy', 'https://proxy.example:8443', '--standby-host', 'cpu-1.example', '--workspace', workspace, '--host-id', 'gpu-7'];
      const r1 = await standby(args, { STANDBY_TOKEN: 'token-from-env-123' });
      assert.equal(r1.code, 0, r1.stderr);
      assert.match(r1.stdout, /for a standby set up without a proxy \(with a proxy, invite the host instead: standby hosts add ID\): standby install standby --agent-key "ssh-ed25519 AAAA/);
      assert.ok(r1.stdout.includes(`not started (installed under --root ${root}); run it by hand: ${join(root, 'opt/standby/bin/standby')} agent --config ${join(root, 'etc/standby/agent.json')}\n`), r1.stdout);
      assert.doesNotMatch(r1.stdout + r1.stderr, /token-from-env-123/, 'the token is never printed');

      const config = join(root, 'etc/standby/agent.json');
      const keyDir = join(root, 'etc/standby/keys');
      assert.equal(mode(config), 0o600);
      assert.equal(mode(keyDir), 0o700);
      assert.equal(mode(join(keyDir, 'id_ed25519')), 0o600);
      // the unit makes only an existing known_hosts writable (ReadWritePaths=-...): ssh's accept-new pins the standby's key there
      assert.equal(readFileSync(join(root, 'etc/standby/known_hosts'), 'utf8'), '');
      const settings = validateSettings(agentConfigSchema, JSON.parse(readFileSync(config, 'utf8')), config);
      assert.equal(settings.hostId, 'gpu-7');
      assert.equal(settings.workspace, workspace);
      assert.equal(settings.standby!.host, 'cpu-1.example');
      assert.equal(settings.standby!.identityFile, join(keyDir, 'id_ed25519'));
      assert.equal(settings.proxy?.url, 'wss://proxy.example:8443/_standby/agent');
      assert.equal(settings.proxy?.token, 'token-from-env-123');

      const current = join(root, 'opt/standby/current');
      assert.ok(lstatSync(current).isSymbolicLink());
      const bin = join(root, 'opt/standby/bin/standby');
      assert.ok(existsSync(bin) && existsSync(join(current, 'node_modules/.bin/node')), 'the program with its pinned Node');
      assert.ok(!existsSync(join(current, 'test/installer')) && !existsSync(join(current, 'bench')) && !existsSync(join(current, 'node_modules/typescript')), 'no tests, no dev dependencies');
      const key1 = readFileSync(join(keyDir, 'id_ed25519'));

      // second run: upgrade in place, new flag merged, key and token kept
      const r2 = await standby(['install', 'agent', '--root', root, '--no-start', '--standby-port', '2222']);
      assert.equal(r2.code, 0, r2.stderr);
      assert.deepEqual(readFileSync(join(keyDir, 'id_ed25519')), key1, 'the key is never regenerated');
      const again = validateSettings(agentConfigSchema, JSON.parse(readFileSync(config, 'utf8')), config);
      assert.equal(again.standby!.port, 2222);
      assert.equal(again.proxy?.token, 'token-from-env-123');
      assert.equal(again.hostId, 'gpu-7');
      assert.notEqual(readlinkSync(current), '', 'current points at the new version');

      // the installed program runs
      const help = await import('node:child_process').then(({ execFileSync }) => execFileSync(bin, ['install', '--help'], { encoding: 'utf8', timeout: 20_000 }));
      assert.match(help, /install <role>/);

      const u = await standby(['uninstall', 'agent', '--root', root]);
      assert.equal(u.code, 0, u.stderr);
      assert.match(u.stdout, /removed .*opt\/standby/);
      assert.ok(!existsSync(join(root, 'opt/standby')));
      assert.ok(existsSync(config) && existsSync(join(keyDir, 'id_ed25519')), 'config and key stay without --purge');
      assert.equal(readFileSync(join(workspace, 'work.txt'), 'utf8'), 'mine');

      const again2 = await standby(['install', 'agent', '--root', root, '--no-start']);
      assert.equal(again2.code, 0, again2.stderr);
      const p = await standby(['uninstall', 'agent', '--root', root, '--purge']);
      assert.equal(p.code, 0, p.stderr);
      assert.ok(!existsSync(config) && !existsSync(keyDir), 'config and key go with --purge');
      assert.equal(readFileSync(join(workspace, 'work.txt'), 'utf8'), 'mine', 'never the workspace');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('errors name the missing flag', async () => {
    const root = scratch();
    try {
      const r = await standby(['install', 'agent', '--root', root, '--no-start']);
      assert.equal(r.code, 78);
      assert.match(r.stderr, /needs --standby-host/);
      const t = await standby(['install', 'agent', '--root', root, '--no-start', '--standby-host', 'h', '--proxy', 'https://p'], { STANDBY_TOKEN: '' });
      assert.notEqual(t.code, 0);
      const u = await standby(['uninstall', 'proxy', '--root', root]);
      assert.notEqual(u.code, 0);
      assert.match(u.stderr, /not installed/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

test('under --root the agent\'s workspace defaults to ROOT/workspace, as the standby\'s does', async () => {
  const root = scratch();
  try {
    const r = await standby(['install', 'agent', '--root', root, '--no-start', '--standby-host', 'cpu-1.example']);
    assert.equal(r.code, 0, r.stderr);
    const config = join(root, 'etc/standby/agent.json');
    const settings = validateSettings(agentConfigSchema, JSON.parse(readFileSync(config, 'utf8')), config);
    assert.equal(settings.workspace, join(root, 'workspace'));
    assert.equal(settings.standby!.path, join(root, 'workspace'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--no-start on a machine prints systemctl and the command that runs the daemon by hand', () => {
  const lines: string[] = [];
  startUnit(layoutOf('/'), 'proxy', '/etc/systemd/system/standby-proxy.service', true, (l) => lines.push(l));
  assert.deepEqual(lines, ['not started (--no-start); start it with: systemctl enable --now standby-proxy.service; or run it by hand: /opt/standby/bin/standby proxy --config /etc/standby/proxy.json']);
});

describe('standby install standby', () => {
  test('authorizes the agent key with the forced receiver, idempotently, never touching other lines', async () => {
    const root = scratch();
    try {
      const workspace = join(root, 'standby-workspace');
      const ak = join(root, 'root/.ssh/authorized_keys');
      mkdirSync(join(root, 'root/.ssh'), { recursive: true });
      const other = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOther admin@laptop';
      writeFileSync(ak, `# keep me\n${other}\n`);
      const agentKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAgentAgentAgentAgentAgentAgentAgentAgentA standby-agent@gpu';
      const r1 = await standby(['install', 'standby', '--root', root, '--no-start', '--workspace', workspace, '--agent-key', agentKey]);
      assert.equal(r1.code, 0, r1.stderr);
      const expected = `command="${join(root, 'opt/standby/bin/standby')} receive --root ${workspace} --state-dir ${join(root, 'var/lib/standby/receive')}",restrict ${agentKey}`;
      assert.equal(readFileSync(ak, 'utf8'), `# keep me\n${other}\n${expected}\n`);
      assert.equal(mode(ak), 0o600);
      assert.ok(existsSync(workspace));

      const r2 = await standby(['install', 'standby', '--root', root, '--no-start', '--workspace', workspace, '--agent-key', agentKey]);
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(readFileSync(ak, 'utf8'), `# keep me\n${other}\n${expected}\n`, 'one line per key, however often');

      const bad = await standby(['install', 'standby', '--root', root, '--no-start', '--agent-key', 'not a key']);
      assert.equal(bad.code, 78);
      assert.match(bad.stderr, /expected one ssh public key line/);

      writeFileSync(join(workspace, 'synced.txt'), 'data');
      const u = await standby(['uninstall', 'standby', '--root', root, '--purge']);
      assert.equal(u.code, 0, u.stderr);
      assert.equal(readFileSync(ak, 'utf8'), `# keep me\n${other}\n`, 'only the entry install added goes');
      assert.equal(readFileSync(join(workspace, 'synced.txt'), 'utf8'), 'data');
      assert.ok(!existsSync(join(root, 'opt/standby')));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('standby install standby: the fencing key', () => {
  const fenceLine = (root: string, workspace: string, key: string) =>
    `command="${join(root, 'opt/standby/bin/standby')} receive --allow-fence --state-dir ${join(root, 'var/lib/standby/receive')} --root ${workspace} --authorized-keys ${join(root, 'root/.ssh/authorized_keys')}",restrict ${key}`;

  test('--fence-key alone is enough (no --agent-key); its forced command may fence and manage writer entries; --purge removes it', async () => {
    const root = scratch();
    try {
      const workspace = join(root, 'ws');
      const fenceKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFenceFenceFenceFenceFenceFenceFenceFenceF standby-agent@proxy';
      const r = await standby(['install', 'standby', '--root', root, '--no-start', '--workspace', workspace, '--fence-key', fenceKey]);
      assert.equal(r.code, 0, r.stderr);
      const ak = join(root, 'root/.ssh/authorized_keys');
      assert.equal(readFileSync(ak, 'utf8'), fenceLine(root, workspace, fenceKey) + '\n');
      assert.equal(mode(ak), 0o600);
      assert.match(r.stdout, /authorized the proxy's fencing key SHA256:\S+ \(as given\)/);
      const u = await standby(['uninstall', 'standby', '--root', root, '--purge']);
      assert.equal(u.code, 0, u.stderr);
      assert.equal(readFileSync(ak, 'utf8'), '');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('a new proxy key replaces the one this installer authorized before; a line it did not write stays', async () => {
    const root = scratch();
    try {
      const workspace = join(root, 'ws');
      const ak = join(root, 'root/.ssh/authorized_keys');
      const oldKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOldOldOldOldOldOldOldOldOldOldOldOldOldOldO old@proxy';
      const newKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINewNewNewNewNewNewNewNewNewNewNewNewNewNewN new@proxy';
      // an operator's own fencing line, not the installer's: never touched
      const theirs = `command="/usr/local/bin/standby receive --allow-fence --state-dir /x --root /y",restrict ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITheirsTheirsTheirsTheirsTheirsTheirsTheir ops`;
      mkdirSync(join(root, 'root/.ssh'), { recursive: true });
      writeFileSync(ak, theirs + '\n');
      const base = ['install', 'standby', '--root', root, '--no-start', '--workspace', workspace];
      assert.equal((await standby([...base, '--fence-key', oldKey])).code, 0);
      const r = await standby([...base, '--fence-key', newKey]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /removed the previous proxy's fencing key SHA256:\S+ from .*: it may no longer fence or authorize writers/);
      assert.equal(readFileSync(ak, 'utf8'), `${theirs}\n${fenceLine(root, workspace, newKey)}\n`);
      // the record follows: --purge removes the new key and leaves the operator's line
      assert.equal((await standby(['uninstall', 'standby', '--root', root, '--purge'])).code, 0);
      assert.equal(readFileSync(ak, 'utf8'), theirs + '\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('under --root without --workspace, the workspace is ROOT/workspace: nothing outside the prefix', async () => {
    const root = scratch();
    try {
      const fenceKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFenceFenceFenceFenceFenceFenceFenceFenceF standby-agent@proxy';
      const r = await standby(['install', 'standby', '--root', root, '--no-start', '--fence-key', fenceKey]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(statSync(join(root, 'workspace')).isDirectory());
      assert.equal(readFileSync(join(root, 'root/.ssh/authorized_keys'), 'utf8'), fenceLine(root, join(root, 'workspace'), fenceKey) + '\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('no key and no --proxy: the error says to give --proxy; nothing is installed', async () => {
    const root = scratch();
    try {
      const r = await standby(['install', 'standby', '--root', root, '--no-start', '--workspace', join(root, 'ws')]);
      assert.equal(r.code, 78, r.stderr);
      assert.match(r.stderr, /needs --proxy https:\/\/PROXY .*or --fence-key/);
      assert.ok(!existsSync(join(root, 'opt/standby')));
      const bad = await standby(['install', 'standby', '--root', root, '--no-start', '--workspace', join(root, 'ws'), '--proxy', 'ftp://proxy.example']);
      assert.equal(bad.code, 78, bad.stderr);
      assert.match(bad.stderr, /--proxy ftp:\/\/proxy\.example: expected the proxy's URL/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('--proxy URL: fetches URL/_standby/fence-key.pub and authorizes it; a proxy without a key or no proxy at all is a clear error', async () => {
    const root = scratch();
    let withKey: TestProxy | undefined;
    let without: TestProxy | undefined;
    try {
      const identityFile = join(root, 'proxy-key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'standby-agent@proxy', '-f', identityFile], { stdio: 'ignore', timeout: 20_000 });
      const pub = readFileSync(`${identityFile}.pub`, 'utf8').trim();
      withKey = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', settings: { standby: { ssh: { identityFile } } } });
      without = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2' });
      const workspace = join(root, 'ws');
      const base = ['install', 'standby', '--root', root, '--no-start', '--workspace', workspace];

      const closed = await freePort(); // nothing listens on it (fetch refuses some low ports outright, so not port 1)
      const down = await standby([...base, '--proxy', `http://127.0.0.1:${closed}`]);
      assert.equal(down.code, 69, down.stderr);
      assert.match(down.stderr, new RegExp(`could not fetch the proxy's fencing key from http://127\\.0\\.0\\.1:${closed}/_standby/fence-key\\.pub: ECONNREFUSED; .*--fence-key-file`));
      const none = await standby([...base, '--proxy', without.url]);
      assert.equal(none.code, 69, none.stderr);
      assert.match(none.stderr, /HTTP 404 \(this proxy has no fencing key: .*\/nonexistent\/admin_key/);
      assert.ok(!existsSync(join(root, 'opt/standby')), 'nothing installed after a failed fetch');

      const ok = await standby([...base, '--proxy', `${withKey.url}/some/page?x=1`]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, new RegExp(`authorized the proxy's fencing key SHA256:\\S+ \\(from ${withKey.url.replace(/[.]/g, '\\.')}/_standby/fence-key\\.pub\\)`));
      assert.equal(readFileSync(join(root, 'root/.ssh/authorized_keys'), 'utf8'), fenceLine(root, workspace, pub) + '\n');

      // an upgrade with the proxy down fails loudly rather than silently keeping a key it could not check
      const again = await standby([...base, '--proxy', `http://127.0.0.1:${closed}`]);
      assert.equal(again.code, 69);
      // without --proxy an upgrade keeps what is authorized
      const upgrade = await standby(base);
      assert.equal(upgrade.code, 0, upgrade.stderr);
      assert.equal(readFileSync(join(root, 'root/.ssh/authorized_keys'), 'utf8'), fenceLine(root, workspace, pub) + '\n');
    } finally {
      await withKey?.close();
      await without?.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('the fetch gives up after its timeout against a proxy that never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => void sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as { port: number }).port;
      const started = performance.now();
      await assert.rejects(fetchFenceKey(`http://127.0.0.1:${port}`, 300), /fence-key\.pub: no answer within 0\.3 s/);
      assert.ok(performance.now() - started < 5_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('standby install proxy', () => {
  test('writes a valid proxy.json (0600) with generated tokens kept across runs', async () => {
    const root = scratch();
    try {
      const base = ['install', 'proxy', '--root', root, '--no-start', '--listen', '0.0.0.0:8443', '--gpu-url', 'http://10.0.0.5:8080', '--standby-url', 'http://10.0.0.6:8080', '--standby-host', '10.0.0.6'];
      // listening on every address, the installer cannot guess the URL hosts reach: it asks for it
      const wild = await standby(base);
      assert.equal(wild.code, 78, wild.stderr);
      assert.match(wild.stderr, /give --public-url https:\/\/NAME:PORT \(publicUrl: /);
      const args = [...base, '--public-url', 'https://proxy.example.com:8443/'];
      const r1 = await standby(args);
      assert.equal(r1.code, 0, r1.stderr);
      assert.match(r1.stdout, /generated adminToken \(read/);
      const file = join(root, 'etc/standby/proxy.json');
      const cmd = join(root, 'opt/standby/bin/standby');
      assert.ok(r1.stdout.includes(`next: with the proxy running, on this machine: \`${cmd} hosts add cpu-1 --config ${file}\` prints the standby's install line, then \`${cmd} hosts add gpu-1 --config ${file}\` the GPU's (one use each); both fetch from https://proxy.example.com:8443\n`), r1.stdout);
      assert.doesNotMatch(r1.stdout, /PROXY/, 'no placeholder');
      // under --root no systemctl: the command that runs the daemon by hand
      assert.ok(r1.stdout.includes(`not started (installed under --root ${root}); run it by hand: ${cmd} proxy --config ${file}\n`), r1.stdout);
      assert.equal(mode(file), 0o600);
      assert.equal(mode(join(root, 'var/lib/standby')), 0o700, "the proxy's state folder is its own");
      const c1 = validateSettings(proxyConfigSchema, JSON.parse(readFileSync(file, 'utf8')), file);
      assert.deepEqual({ ...c1.listen }, { host: '0.0.0.0', port: 8443 });
      assert.equal(c1.publicUrl, 'https://proxy.example.com:8443');
      assert.equal(c1.stateDir, join(root, 'var/lib/standby'));
      assert.equal(c1.standby.ssh.stateDir, join(root, 'var/lib/standby/receive'), "the standby role's receiver state, under the same prefix");
      assert.equal(c1.standby.ssh.identityFile, join(root, 'etc/standby/keys/fence_ed25519'));
      assert.match(readFileSync(`${c1.standby.ssh.identityFile}.pub`, 'utf8'), /^ssh-ed25519 \S+ standby-proxy-fence@\S+\n$/, 'labelled as the proxy\'s fencing key');
      assert.doesNotMatch(r1.stdout, new RegExp(c1.adminToken), 'tokens are not printed');

      const r2 = await standby(['install', 'proxy', '--root', root, '--no-start', '--listen', '127.0.0.1:9000']);
      assert.equal(r2.code, 0, r2.stderr);
      const c2 = validateSettings(proxyConfigSchema, JSON.parse(readFileSync(file, 'utf8')), file);
      assert.equal(c2.adminToken, c1.adminToken);
      assert.equal(c1.primary.agentToken, undefined, 'the GPU gets its own token at enrollment, none is made up');
      assert.equal(c2.listen.port, 9000);
      assert.equal(c2.publicUrl, 'https://proxy.example.com:8443', 'a given publicUrl is kept');
      assert.equal(c2.primary.url, 'http://10.0.0.5:8080');

      const u = await standby(['uninstall', 'proxy', '--root', root]);
      assert.equal(u.code, 0, u.stderr);
      assert.ok(existsSync(file) && !existsSync(join(root, 'opt/standby')));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('first install without the backends names what is missing', async () => {
    const root = scratch();
    try {
      const r = await standby(['install', 'proxy', '--root', root, '--no-start']);
      assert.equal(r.code, 78);
      assert.match(r.stderr, /needs --gpu-url/);
      assert.ok(!existsSync(join(root, 'etc/standby/proxy.json')));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
