// Per-host writer keys on the standby, managed by the proxy's key through the
// receiver (`standby receive --authorize ID --key ...`, `--revoke ID`, and a
// fence that revokes), over a real sshd with real rsync: an authorized host
// writes into the roots and nothing else; a revoked host cannot log in, and
// even with its line put back (or a newer epoch claimed) the receiver refuses
// it; enrolling again lifts the revocation.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { authorizeConflictsOnStandby, authorizeOnStandby, fenceStandby, revokeOnStandby } from '../../proxy/fence.ts';
import type { FenceTarget } from '../../proxy/standby-ssh.ts';
import { startManagedStandby, type HostKey, type ManagedStandby } from '../fixtures/managed-standby.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import type { Sshd } from '../../proxy/provision/loopback-sshd.ts';

describe("per-host writer keys, managed through the proxy's key", () => {
  let m: ManagedStandby;
  let sshd: Sshd;
  let root = '';
  let state = '';
  let src = '';
  let top = '';
  let target: FenceTarget;
  const keys: Record<string, HostKey> = {};

  const newKey = (name: string): HostKey => m.newKey(name);
  const rsyncAs = (key: string, epoch: number, dest: string) => m.rsyncAs(key, epoch, dest);
  const sshAs = (key: string, command: string) => m.sshAs(key, command);
  const authorizedLines = (): string[] => readFileSync(sshd.authorizedKeysFile, 'utf8').split('\n').filter(Boolean);

  before(async () => {
    m = await startManagedStandby('writer-keys');
    ({ sshd, root, state, src, top, target } = m);
    writeFileSync(join(src, 'a.txt'), 'from the GPU\n');
  });
  after(async () => {
    await m?.close();
  });

  test('an authorized host writes into the roots; its key runs only the receiver, pinned to its host id', async () => {
    keys['gpu-1'] = newKey('gpu-1');
    const r = await authorizeOnStandby(target, 'gpu-1', keys['gpu-1'].pub);
    assert.deepEqual(r, { authorized: 'gpu-1', replaced: 0, lifted: false, roots: [root] });
    const line = authorizedLines().find((l) => l.endsWith('standby-host:gpu-1'));
    assert.ok(line, 'the host has its line');
    assert.match(line, new RegExp(`^command="${STANDBY_CLI} receive --root ${root} --state-dir ${state} --host gpu-1",restrict ssh-ed25519 \\S+ standby-host:gpu-1$`));
    assert.equal((await rsyncAs(keys['gpu-1'].file, 0, root)).code, 0);
    assert.equal(readFileSync(join(root, 'a.txt'), 'utf8'), 'from the GPU\n');
    const shell = await sshAs(keys['gpu-1'].file, 'cat /etc/hostname');
    assert.match(shell.stderr, /not a command this key may run/);
    const fence = await sshAs(keys['gpu-1'].file, 'standby receive --revoke gpu-2');
    assert.match(fence.stderr, /not allowed with this key/, "a writer cannot revoke (or authorize) anyone");
    const byProxy = await rsyncAs(sshd.keys.proxy!, 0, root);
    assert.match(byProxy.stderr, /only fences and authorizes or revokes writers: it does not write/, "the proxy's own key cannot write into the workspace");
    const outside = await rsyncAs(keys['gpu-1'].file, 0, top);
    assert.notEqual(outside.code, 0);
    assert.match(outside.stderr, /outside the sync roots/);
  });

  test("a host enrolled again: its new key replaces the old, which can no longer log in", async () => {
    const old = keys['gpu-1']!;
    keys['gpu-1'] = newKey('gpu-1');
    const r = await authorizeOnStandby(target, 'gpu-1', keys['gpu-1'].pub);
    assert.equal(r.replaced, 1);
    assert.equal(authorizedLines().filter((l) => l.endsWith('standby-host:gpu-1')).length, 1);
    const refused = await rsyncAs(old.file, 0, root);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Permission denied/);
    assert.equal((await rsyncAs(keys['gpu-1'].file, 0, root)).code, 0);
  });

  test('revoked: the line goes and the login fails; put back by hand, or with a newer epoch claimed, the receiver still refuses it', async () => {
    const before = authorizedLines().length;
    const r = await revokeOnStandby(target, ['gpu-1'], { waitMs: 2_000 });
    assert.deepEqual(r.revoked, ['gpu-1']);
    assert.equal(r.keysRemoved, 1);
    assert.equal(authorizedLines().length, before - 1, 'only the host line went');
    const denied = await rsyncAs(keys['gpu-1']!.file, 0, root);
    assert.match(denied.stderr, /Permission denied/);
    // as if the line had survived (a file restored from a backup): the receiver's list holds
    const line = `command="${STANDBY_CLI} receive --root ${root} --state-dir ${state} --host gpu-1",restrict ${keys['gpu-1']!.pub.split(' ').slice(0, 2).join(' ')} standby-host:gpu-1`;
    writeFileSync(sshd.authorizedKeysFile, authorizedLines().concat(line).join('\n') + '\n');
    writeFileSync(join(src, 'late.txt'), 'must not land\n');
    const refused = await rsyncAs(keys['gpu-1']!.file, 999, root);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /host gpu-1 was revoked .*Nothing was written.*\[STANDBY_ERR_HOST_REVOKED\]/);
    assert.ok(!existsSync(join(root, 'late.txt')), 'nothing landed');
    rmSync(join(src, 'late.txt'));
  });

  test('a fence that revokes the GPU: its writes stop at once, whatever epoch it claims; another host is untouched', async () => {
    keys['gpu-2'] = newKey('gpu-2');
    keys['gpu-3'] = newKey('gpu-3');
    await authorizeOnStandby(target, 'gpu-2', keys['gpu-2'].pub);
    await authorizeOnStandby(target, 'gpu-3', keys['gpu-3'].pub);
    const f = await fenceStandby(target, 5, { waitMs: 2_000, revoke: ['gpu-2'] });
    assert.equal(f.epoch, 5);
    assert.deepEqual(f.revoked, ['gpu-2']);
    assert.equal(f.keysRemoved, 1);
    assert.match((await rsyncAs(keys['gpu-2'].file, 5, root)).stderr, /Permission denied/);
    assert.equal((await rsyncAs(keys['gpu-3'].file, 5, root)).code, 0, 'the other host writes at the new epoch');
    const revoked = JSON.parse(readFileSync(join(state, 'revoked-hosts.json'), 'utf8')) as Record<string, { epoch: number }>;
    assert.deepEqual(Object.keys(revoked).sort(), ['gpu-1', 'gpu-2']);
    assert.equal(revoked['gpu-2']!.epoch, 5);
  });

  test("a revoked host's conflicts folder: it writes there only, at any epoch, deleting nothing; the workspace still refuses it; --revoke takes the line back", async () => {
    // gpu-2 was revoked by the fence above (epoch 5); its agent holds changes the standby never got
    writeFileSync(join(src, 'unsent.txt'), 'written after the fence\n');
    const folder = await authorizeConflictsOnStandby(target, 'gpu-2', keys['gpu-2']!.pub, '2026-12-05T0900Z-gpu-2');
    assert.equal(folder, `${root}.conflicts/2026-12-05T0900Z-gpu-2`, 'beside the workspace, never in it');
    const line = authorizedLines().find((l) => l.endsWith('standby-host:gpu-2'));
    assert.match(line ?? '', new RegExp(`^command="${STANDBY_CLI} receive --root ${folder} --state-dir ${state} --host gpu-2 --conflicts-only",restrict `));
    const sent = await rsyncAs(keys['gpu-2']!.file, 1, folder);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(readFileSync(join(folder, 'unsent.txt'), 'utf8'), 'written after the fence\n');
    assert.ok(!existsSync(join(root, 'unsent.txt')), 'nothing in the workspace');
    const intoWorkspace = await rsyncAs(keys['gpu-2']!.file, 99, root);
    assert.match(intoWorkspace.stderr, /outside the sync roots/, 'the workspace is not its root');
    const deleting = await m.sshAs(keys['gpu-2']!.file, `rsync --server -logDtpre.iLsfxCIvu --delete-during . ${folder}/`);
    assert.match(deleting.stderr, /--delete-during: this key only adds to a conflicts folder, it deletes nothing/);
    const inPlace = await m.sshAs(keys['gpu-2']!.file, `rsync --server -logDtpre.iLsfxCIvu --inplace . ${folder}/new-folder/`);
    assert.match(inPlace.stderr, /--inplace: this key adds whole files to a conflicts folder only/);
    await assert.rejects(authorizeConflictsOnStandby(target, 'gpu-2', keys['gpu-2']!.pub, '../escape'), /expected a folder name/);
    await assert.rejects(authorizeConflictsOnStandby(target, 'gpu-2', keys['gpu-2']!.pub, '.hidden'), /expected a folder name/);
    const r = await revokeOnStandby(target, ['gpu-2'], { waitMs: 2_000 });
    assert.equal(r.keysRemoved, 1);
    assert.match((await rsyncAs(keys['gpu-2']!.file, 5, folder)).stderr, /Permission denied/);
    assert.deepEqual(readdirSync(`${root}.conflicts`), ['2026-12-05T0900Z-gpu-2']);
    rmSync(join(src, 'unsent.txt'));
  });

  test('enrolling a revoked host again lifts its revocation, for its new key only', async () => {
    const old = keys['gpu-1']!;
    keys['gpu-1'] = newKey('gpu-1');
    const r = await authorizeOnStandby(target, 'gpu-1', keys['gpu-1'].pub);
    assert.equal(r.lifted, true);
    assert.equal(r.replaced, 1, 'the line put back by hand went');
    assert.equal((await rsyncAs(keys['gpu-1'].file, 5, root)).code, 0);
    assert.match((await rsyncAs(old.file, 5, root)).stderr, /Permission denied/);
  });

  test('a malformed key or host id is refused and changes nothing', async () => {
    const before = readFileSync(sshd.authorizedKeysFile, 'utf8');
    await assert.rejects(authorizeOnStandby(target, 'gpu-4', 'ssh-ed25519 not*base64'), /refused the key for host gpu-4/);
    await assert.rejects(authorizeOnStandby(target, 'gpu 4', keys['gpu-3']!.pub), /expected a host id/);
    await assert.rejects(authorizeOnStandby(target, 'gpu-4', `${keys['gpu-3']!.pub}\nssh-ed25519 AAAA injected`), /line break/);
    assert.equal(readFileSync(sshd.authorizedKeysFile, 'utf8'), before);
  });
});
