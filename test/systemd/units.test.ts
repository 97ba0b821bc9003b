// The unit files: systemd-analyze verify passes on each (in a root that holds
// systemd's own units and the program where the units expect it), a broken
// unit does fail it, and the units say what the design asks: Type=notify, a
// watchdog, Restart=always, hardening, the installer's paths.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

const UNITS = join(import.meta.dirname, '..', '..', 'systemd');
const NAMES = ['standby-agent.service', 'standby-proxy.service'];
const skip = existsSync('/usr/bin/systemd-analyze') ? false : 'systemd-analyze is not installed (Debian package systemd; scripts/ensure-deps.sh test installs it)';

function unit(name: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of readFileSync(join(UNITS, name), 'utf8').split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#') || t.startsWith('[')) continue;
    const eq = t.indexOf('=');
    m.set(t.slice(0, eq), [...(m.get(t.slice(0, eq)) ?? []), t.slice(eq + 1)]);
  }
  return m;
}

describe('systemd units', { skip }, () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'standby-units-'));
    mkdirSync(join(root, 'opt/standby/current/bin'), { recursive: true });
    mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
    mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
    cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
    copyFileSync(join(UNITS, '..', 'bin', 'standby'), join(root, 'opt/standby/current/bin/standby'));
    chmodSync(join(root, 'opt/standby/current/bin/standby'), 0o755);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const verify = (name: string) => spawnSync('systemd-analyze', ['verify', `--root=${root}`, name], { encoding: 'utf8' });

  for (const name of NAMES) {
    test(`${name}: systemd-analyze verify passes`, () => {
      copyFileSync(join(UNITS, name), join(root, 'etc/systemd/system', name));
      const r = verify(name);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr.trim(), '', 'no warnings either');
    });
  }

  test('the check can fail: a unit whose program is missing does not verify', () => {
    writeFileSync(join(root, 'etc/systemd/system/broken.service'), '[Service]\nType=notify\nExecStart=/opt/standby/nowhere/standby agent\n');
    const r = verify('broken.service');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /not executable|No such file/);
  });

  for (const name of NAMES) {
    test(`${name}: notify, watchdog, restart, hardening, the installer's paths`, () => {
      const u = unit(name);
      assert.deepEqual(u.get('Type'), ['notify']);
      assert.deepEqual(u.get('NotifyAccess'), ['all'], 'the notify sender is a child of the daemon');
      assert.ok(Number.parseInt(u.get('WatchdogSec')?.[0] ?? '0') > 0);
      assert.deepEqual(u.get('Restart'), ['always']);
      assert.ok(Number.parseInt(u.get('RestartSec')?.[0] ?? '99') <= 5, 'a short RestartSec');
      for (const k of ['NoNewPrivileges', 'PrivateTmp', 'ProtectKernelTunables', 'ProtectControlGroups']) assert.deepEqual(u.get(k), ['yes'], k);
      assert.deepEqual(u.get('ProtectSystem'), ['strict']);
      assert.deepEqual(u.get('WantedBy'), ['multi-user.target']);
      const role = name.includes('agent') ? 'agent' : 'proxy';
      assert.deepEqual(u.get('ExecStart'), [`/opt/standby/current/bin/standby ${role} --config /etc/standby/${role}.json${role === 'agent' ? ' --runDir /var/lib/standby-agent' : ''}`]);
    });
  }

  test("the agent's runDir is its state folder, kept across restarts (the resume command's run-once record), not the private /tmp", () => {
    const u = unit('standby-agent.service');
    assert.deepEqual(u.get('StateDirectory'), ['standby-agent']);
    assert.match(u.get('ExecStart')?.[0] ?? '', / --runDir \/var\/lib\/standby-agent$/);
  });

  test("the agent may write the standby's host key (accept-new pins it), nothing else under /etc", () => {
    assert.deepEqual(unit('standby-agent.service').get('ReadWritePaths'), ['-/etc/standby/known_hosts']);
  });

  test('the proxy runs as its own user, with its state folder and compile cache the only places it writes', () => {
    const u = unit('standby-proxy.service');
    assert.deepEqual(u.get('User'), ['standby']);
    assert.deepEqual(u.get('StateDirectory'), ['standby']);
    assert.deepEqual(u.get('CacheDirectory'), ['standby-proxy']);
    assert.equal(u.get('ReadWritePaths'), undefined);
  });

  test("the agent's compile cache has a writable place (its home is read-only): bin/standby reads CACHE_DIRECTORY", () => {
    assert.deepEqual(unit('standby-agent.service').get('CacheDirectory'), ['standby-agent']);
    assert.deepEqual(unit('standby-agent.service').get('ProtectHome'), ['read-only']);
  });
});
