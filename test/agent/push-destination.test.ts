// Where a grant's target sends the agent: ssh to the target's address with
// the write identity, only the grant's host keys trusted (accept-new when it
// lists none), a target change told by id, address or folder; and the public
// key line heartbeats carry, from IDENTITY.pub or ssh-keygen -y.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { knownHostsText, sameTarget, standbyDestination, targetDestination } from '../../agent/push-destination.ts';
import { publicKeyOf, writePublicKey } from '../../agent/write-identity.ts';
import { agentConfigSchema, syncRoots } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import type { PushTarget } from '../../protocol/messages.ts';
import { StandbyError } from '../../core/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'standby-destination-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1cmtpbmcgaW4gdGhlIHRlc3Qgc3VpdGUgb25seQ';
const TARGET: PushTarget = { id: 'gpu-2', host: '10.0.0.9', port: 2222, user: 'root', path: '/workspace', knownHosts: [`[10.0.0.9]:2222 ${KEY}`] };
const config = (more: Record<string, unknown> = {}) =>
  validateSettings(agentConfigSchema, { hostId: 'cpu-1', workspace: '/srv/ws', runDir: join(dir, 'run'), proxy: { url: 'ws://127.0.0.1:1/_standby/agent', token: 'agent-token-cpu-1' }, ...more }, 'test');

describe('targetDestination', () => {
  test('the grant\'s keys only, checked strictly; the write identity; no standby options', () => {
    const d = targetDestination(config({ identityFile: '/etc/standby/id_ed25519' }), TARGET, { fresh: true });
    assert.equal(d.target, 'gpu-2');
    assert.deepEqual({ host: d.ssh.host, port: d.ssh.port, user: d.ssh.user, path: d.ssh.path, identityFile: d.ssh.identityFile, rsyncPath: d.ssh.rsyncPath }, { host: '10.0.0.9', port: 2222, user: 'root', path: '/workspace', identityFile: '/etc/standby/id_ed25519', rsyncPath: undefined });
    const file = d.ssh.sshOptions[1]!.replace('UserKnownHostsFile=', '');
    assert.deepEqual(d.ssh.sshOptions, ['-o', `UserKnownHostsFile=${file}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes']);
    assert.equal(readFileSync(file, 'utf8'), `[10.0.0.9]:2222 ${KEY}\n`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700);
  });

  test('no keys listed: the first key seen is trusted (accept-new), in a file of this target\'s own, emptied for a fresh target', () => {
    const d = targetDestination(config(), { ...TARGET, knownHosts: [] }, { fresh: true });
    assert.deepEqual(d.ssh.sshOptions.slice(4), ['-o', 'StrictHostKeyChecking=accept-new']);
    assert.equal(readFileSync(d.ssh.sshOptions[1]!.replace('UserKnownHostsFile=', ''), 'utf8'), '');
    assert.equal(d.ssh.identityFile, undefined, "no identity configured: ssh's own choice");
  });

  test('an address or user ssh would read as an option is refused', () => {
    for (const bad of [{ host: '-oProxyCommand=touch /tmp/x' }, { user: '-oProxyCommand=x' }, { host: 'a b' }, { user: 'u@h' }]) {
      assert.throws(() => targetDestination(config(), { ...TARGET, ...bad }, { fresh: true }), (err: unknown) => err instanceof StandbyError && /pushing nothing there/.test(err.message), JSON.stringify(bad));
    }
    for (const good of [{ host: '::1' }, { host: 'fe80::1%eth0' }, { host: 'gpu-2.example.com' }, { user: 'ubuntu' }, { user: 'svc_standby' }]) targetDestination(config(), { ...TARGET, ...good }, { fresh: true });
  });

  test('the identity falls back to standby.identityFile', () => {
    const d = targetDestination(config({ standby: { host: 'cpu', path: '/s', identityFile: '/k/standby' } }), TARGET, { fresh: true });
    assert.equal(d.ssh.identityFile, '/k/standby');
  });

  test('known_hosts lines: a bare key is pinned to the target\'s address; a line cannot smuggle others; comments dropped', () => {
    assert.equal(knownHostsText({ ...TARGET, knownHosts: [KEY] }), `[10.0.0.9]:2222 ${KEY}\n`);
    assert.equal(knownHostsText({ ...TARGET, port: 22, knownHosts: [KEY] }), `10.0.0.9 ${KEY}\n`);
    assert.equal(knownHostsText({ ...TARGET, knownHosts: [`# comment`, `[10.0.0.9]:2222 ${KEY}\n* ${KEY}`] }), `[10.0.0.9]:2222 ${KEY}\n* ${KEY}\n`);
  });
});

describe('the roots a destination takes', () => {
  const editorConfig = () => config({ editor: { userDataDir: '/root/.local/share/code-server', remoteUserDataDir: '/home/dev/.local/share/code-server' } });
  test('a target that names its code-server folders gets the editor\'s roots there; one that does not, where agent.json says', () => {
    const named = targetDestination(editorConfig(), { ...TARGET, editor: { userDataDir: '/hosts/gpu-2/cs', extensionsDir: '/hosts/gpu-2/ext' } }, { fresh: true });
    assert.deepEqual(syncRoots(editorConfig(), named.ssh.path, named.editor).map((r) => r.remote), ['/workspace', '/hosts/gpu-2/cs/User', '/hosts/gpu-2/ext']);
    const plain = targetDestination(editorConfig(), TARGET, { fresh: true });
    assert.deepEqual(syncRoots(editorConfig(), plain.ssh.path, plain.editor).map((r) => r.remote), ['/workspace', '/home/dev/.local/share/code-server/User', '/home/dev/.local/share/code-server/extensions']);
  });
});

describe('sameTarget', () => {
  test('by id, address, user and folder; the keys do not make another target', () => {
    assert.ok(sameTarget(TARGET, { ...TARGET, knownHosts: [] }));
    assert.ok(sameTarget(undefined, undefined));
    assert.ok(!sameTarget(TARGET, undefined));
    for (const change of [{ id: 'gpu-3' }, { host: '10.0.0.10' }, { port: 22 }, { user: 'u' }, { path: '/w2' }, { editor: { userDataDir: '/cs', extensionsDir: '/cs/extensions' } }]) assert.ok(!sameTarget(TARGET, { ...TARGET, ...change }), JSON.stringify(change));
  });

  test('the configured standby is a destination of its own (target null), or none without a standby section', () => {
    assert.equal(standbyDestination(config()), undefined);
    assert.equal(standbyDestination(config({ standby: { host: 'cpu', path: '/s' } }))?.target, null);
  });
});

describe('the public key heartbeats carry', () => {
  const key = join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'standby-agent@cpu-1', '-f', key]);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  const log = pino({ level: 'silent' });

  test('IDENTITY.pub when it is there', () => assert.equal(publicKeyOf(key, log), pub));

  const keyPart = (line: string | undefined) => line?.split(' ').slice(0, 2).join(' ');

  test('ssh-keygen -y without it (the same key; the comment as that ssh-keygen prints it)', () => {
    rmSync(`${key}.pub`);
    assert.equal(keyPart(publicKeyOf(key, log)), keyPart(pub));
  });

  test('identityFile first, then standby.identityFile; none when the key cannot be read', () => {
    assert.equal(keyPart(writePublicKey(config({ identityFile: key, standby: { host: 'cpu', path: '/s', identityFile: '/nonexistent' } }), log)), keyPart(pub));
    assert.equal(writePublicKey(config({ identityFile: join(dir, 'missing') }), log), undefined);
  });
});
