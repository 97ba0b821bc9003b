// What a writer may ask the standby's receiver for (standby/receive-request.ts):
// the commands rsync and the agent send, accepted with their epoch and checked
// targets; everything else refused with the reason; the proxy's key's fence,
// revoke and authorize requests.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseRequest, type RequestPolicy } from '../../standby/receive-request.ts';
import { StandbyError } from '../../core/errors.ts';

describe('what a writer may ask the receiver for', () => {
  let top = '';
  let policy: RequestPolicy;
  before(() => {
    top = mkdtempSync(join(tmpdir(), 'standby-request-'));
    mkdirSync(join(top, 'ws/sub'), { recursive: true });
    mkdirSync(join(top, 'other'));
    // a symlink inside the root that leads out of it
    spawnSync('ln', ['-s', join(top, 'other'), join(top, 'ws/escape')]);
    policy = { roots: [join(top, 'ws'), join(top, 'extra')], cwd: top, home: join(top, 'ws'), allowFence: false, stateDir: join(top, 'state') };
  });
  after(() => rmSync(top, { recursive: true, force: true }));

  const R = '-logDtpre.iLsfxCIvu';
  const ok: { name: string; command: (t: string) => string; kind: string; epoch: number; target: (t: string) => string }[] = [
    // the shapes the agent's passes send (captured from rsync 3.1.3, Debian 12's 3.2.7 and 3.5.0: 3.1.3 sends fewer capability letters)
    { name: 'a full pass, no epoch (epoch 0)', command: (t) => `rsync --server ${R} --timeout=30 --max-delete=-1 --delete-delay --stats --delay-updates . ${t}/ws/`, kind: 'rsync', epoch: 0, target: (t) => `${t}/ws/` },
    { name: 'an incremental transfer with an epoch', command: (t) => `STANDBY_EPOCH=5 rsync --server -logDtprIRe.iLsfxCIvu --timeout=30 --delete --force --stats --delay-updates . ${t}/ws/`, kind: 'rsync', epoch: 5, target: (t) => `${t}/ws/` },
    { name: 'the deletions of a pass (filter rules travel in the protocol)', command: (t) => `STANDBY_EPOCH=5 rsync --server -logDtprIe.iLsfxC --timeout=30 --delete --force --stats --delay-updates . ${t}/ws/`, kind: 'rsync', epoch: 5, target: (t) => `${t}/ws/` },
    { name: 'the deletion count dry run', command: (t) => `STANDBY_EPOCH=5 rsync --server -nlogDtprIe.iLsfxCIvu --timeout=30 --delete --force --stats --delay-updates . ${t}/ws/`, kind: 'rsync', epoch: 5, target: (t) => `${t}/ws/` },
    { name: "verify's checksum dry run", command: (t) => `STANDBY_EPOCH=5 rsync --server -nlogDtprce.iLsfxCIvu --log-format=%i --delete . ${t}/ws/`, kind: 'rsync', epoch: 5, target: (t) => `${t}/ws/` },
    { name: 'a subfolder, rsync-escaped', command: (t) => `STANDBY_EPOCH=2 /usr/bin/rsync --server ${R} --bwlimit=100 . ${t}/ws/sub/new\\ dir/`, kind: 'rsync', epoch: 2, target: (t) => `${t}/ws/sub/new dir/` },
    { name: 'a second root, .. inside it', command: (t) => `rsync --server ${R} . ${t}/extra/a/../b`, kind: 'rsync', epoch: 0, target: (t) => `${t}/extra/b` },
    { name: 'a path relative to the home folder', command: () => `rsync --server ${R} . sub/`, kind: 'rsync', epoch: 0, target: (t) => `${t}/ws/sub/` },
    { name: 'a ~ path', command: () => `rsync --server ${R} . ~/sub`, kind: 'rsync', epoch: 0, target: (t) => `${t}/ws/sub` },
    { name: 'a transfer flushed in its session (STANDBY_FLUSH=1, either side of the epoch)', command: (t) => `STANDBY_FLUSH=1 STANDBY_EPOCH=5 rsync --server ${R} --delete --delay-updates . ${t}/ws/`, kind: 'rsync', epoch: 5, target: (t) => `${t}/ws/` },
    { name: 'a full pass written in place (the receiver checks the folder holds nothing before rsync runs)', command: (t) => `STANDBY_FLUSH=1 STANDBY_EPOCH=5 rsync --server ${R} --delete-delay --inplace . ${t}/ws/`, kind: 'rsync', epoch: 5, target: (t) => `${t}/ws/` },
    { name: "the agent's flush", command: (t) => `STANDBY_EPOCH=7 sync -f '${t}/ws'`, kind: 'sync', epoch: 7, target: (t) => `${t}/ws` },
    { name: "the agent's folders (rsync before 3.2.3 has no --mkpath)", command: (t) => `STANDBY_EPOCH=7 mkdir -p '${t}/ws/new/deep' '${t}/extra'`, kind: 'mkdir', epoch: 7, target: (t) => `${t}/ws/new/deep ${t}/extra` },
  ];
  for (const c of ok) {
    test(`accepted: ${c.name}`, () => {
      const r = parseRequest(c.command(top), { ...policy, cwd: join(top, 'ws') });
      assert.equal(r.kind, c.kind);
      assert.ok(r.kind === 'rsync' || r.kind === 'sync' || r.kind === 'mkdir');
      assert.equal(r.epoch, c.epoch);
      if (r.kind === 'rsync') assert.equal(r.flush, c.command(top).includes('STANDBY_FLUSH=1'), 'a flush only when asked for');
      if (r.kind === 'rsync') assert.equal(r.inplace, c.command(top).includes('--inplace'), 'the empty-folder check only for --inplace');
      assert.equal(r.target, c.target(top));
      const given = r.kind === 'mkdir' ? r.args.slice(r.args.indexOf('--') + 1).join(' ') : r.args[r.args.length - 1];
      assert.equal(given, c.target(top), 'the checked paths are the ones the program gets');
    });
  }

  const refused: { name: string; command: (t: string) => string | undefined; reason: RegExp }[] = [
    { name: 'no command (a login)', command: () => undefined, reason: /no command/ },
    { name: 'cat /etc/shadow', command: () => 'cat /etc/shadow', reason: /"cat" is not a command this key may run/ },
    { name: 'sh -c', command: (t) => `sh -c 'touch ${t}/ws/x'`, reason: /"sh" is not a command/ },
    { name: 'rsync as a sender', command: (t) => `STANDBY_EPOCH=9 rsync --server --sender ${R} . ${t}/ws/`, reason: /--sender/ },
    { name: 'rsync without --server', command: (t) => `rsync -a /etc/ ${t}/ws/`, reason: /only rsync --server/ },
    { name: 'a path outside the roots', command: (t) => `rsync --server ${R} . ${t}/other/`, reason: /outside the sync roots/ },
    { name: 'a .. escape', command: (t) => `rsync --server ${R} . ${t}/ws/../other/`, reason: /outside the sync roots/ },
    { name: 'a symlink out of the root', command: (t) => `rsync --server ${R} . ${t}/ws/escape/x/`, reason: /outside the sync roots/ },
    { name: 'a prefix of a root', command: (t) => `rsync --server ${R} . ${t}/wsx/`, reason: /outside the sync roots/ },
    { name: 'a relative path outside', command: () => `rsync --server ${R} . ../other/`, reason: /outside the sync roots/ },
    { name: 'two destinations (rsync --old-args with a space)', command: (t) => `rsync --server ${R} . ${t}/ws/a b/`, reason: /one destination/ },
    { name: 'secluded args', command: () => 'rsync --server -slogDtpre.iLsfxCIvu', reason: /secluded/ },
    { name: '--partial', command: (t) => `rsync --server ${R} --partial . ${t}/ws/`, reason: /in place/ },
    { name: '--temp-dir outside', command: (t) => `rsync --server ${R} --temp-dir /tmp . ${t}/ws/`, reason: /--temp-dir is not accepted/ },
    { name: '--backup-dir', command: (t) => `rsync --server ${R} --backup-dir /tmp/bk . ${t}/ws/`, reason: /--backup-dir is not accepted/ },
    { name: '--log-file', command: (t) => `rsync --server ${R} --log-file=/etc/x . ${t}/ws/`, reason: /--log-file=\/etc\/x is not accepted/ },
    { name: '-K (follows symlinked folders)', command: (t) => `rsync --server -Klogtpre.iLsfxCIvu . ${t}/ws/`, reason: /-K is not accepted/ },
    { name: 'another variable', command: (t) => `LD_PRELOAD=/tmp/x.so rsync --server ${R} . ${t}/ws/`, reason: /only STANDBY_EPOCH/ },
    { name: 'a bad epoch', command: (t) => `STANDBY_EPOCH=-1 rsync --server ${R} . ${t}/ws/`, reason: /whole number/ },
    { name: 'STANDBY_FLUSH with another value', command: (t) => `STANDBY_FLUSH=0 rsync --server ${R} . ${t}/ws/`, reason: /STANDBY_FLUSH="0": expected 1/ },
    { name: 'STANDBY_FLUSH twice', command: (t) => `STANDBY_FLUSH=1 STANDBY_EPOCH=1 STANDBY_FLUSH=1 rsync --server ${R} . ${t}/ws/`, reason: /STANDBY_FLUSH is set twice/ },
    { name: 'STANDBY_FLUSH on a flush', command: (t) => `STANDBY_FLUSH=1 sync -f ${t}/ws`, reason: /goes with rsync --server only/ },
    { name: 'STANDBY_FLUSH on mkdir', command: (t) => `STANDBY_FLUSH=1 mkdir -p ${t}/ws/x`, reason: /goes with rsync --server only/ },
    { name: 'STANDBY_FLUSH on rsync --version', command: () => 'STANDBY_FLUSH=1 rsync --version', reason: /goes with rsync --server only/ },
    { name: 'sync outside the roots', command: () => 'sync -f /', reason: /outside the sync roots/ },
    { name: 'sync of everything', command: () => 'sync', reason: /only "sync -f/ },
    { name: 'mkdir outside the roots', command: (t) => `mkdir -p ${t}/ws/ok ${t}/other/x`, reason: /outside the sync roots/ },
    { name: 'mkdir through a symlink out of the root', command: (t) => `mkdir -p ${t}/ws/escape/x`, reason: /outside the sync roots/ },
    { name: 'mkdir without -p', command: (t) => `mkdir ${t}/ws/x`, reason: /only "mkdir -p/ },
    { name: 'mkdir with another option', command: (t) => `mkdir -p -m 777 ${t}/ws/x`, reason: /not options/ },
    { name: 'rsync --version with more', command: () => 'rsync --version --help', reason: /only rsync --server/ },
    { name: 'mkdir -p outside with the right epoch', command: (t) => `STANDBY_EPOCH=3 mkdir -p ${t}/other`, reason: /outside the sync roots/ },
    { name: 'rsync --delete-missing-args (hardened receivers reject its entries; the agent no longer sends it)', command: (t) => `rsync --server ${R} --delete-missing-args . ${t}/ws/`, reason: /--delete-missing-args is not accepted/ },
    { name: 'a fence with a writer key', command: () => 'standby receive --fence 99', reason: /fencing is not allowed with this key/ },
    { name: 'a shell command list', command: (t) => `rsync --server ${R} . ${t}/ws/; touch /x`, reason: /";"/ },
  ];
  for (const c of refused) {
    test(`refused: ${c.name}`, () => {
      assert.throws(() => parseRequest(c.command(top), { ...policy, cwd: join(top, 'ws') }), (err: unknown) => {
        assert.ok(err instanceof StandbyError);
        assert.equal(err.code, 'STANDBY_ERR_COMMAND_REFUSED');
        assert.equal(err.exitCode, 77);
        assert.match(err.message, c.reason);
        return true;
      });
    });
  }

  test('rsync --version is a request of its own: it names no target and needs no epoch', () => {
    assert.deepEqual(parseRequest('rsync --version', policy), { kind: 'version' });
    assert.deepEqual(parseRequest('STANDBY_EPOCH=4 /usr/bin/rsync --version', policy), { kind: 'version' });
  });

  test('a fence request is read only with --allow-fence, and only for its own state folder', () => {
    const p = { ...policy, allowFence: true };
    assert.deepEqual(parseRequest('standby receive --fence 7 --wait-ms 500', p), { kind: 'fence', epoch: 7, waitMs: 500, revoke: [] });
    assert.deepEqual(parseRequest(`/usr/local/bin/standby receive --fence=8 --state-dir '${policy.stateDir}'`, p), { kind: 'fence', epoch: 8, waitMs: undefined, revoke: [] });
    assert.throws(() => parseRequest('standby receive --fence 7 --state-dir /tmp/elsewhere', p), /fences .* only/);
    assert.throws(() => parseRequest('standby receive --fence 7 --root /', p), /not accepted in a fence request/);
  });

  test("the proxy's key may revoke hosts (with a fence or alone) and authorize a host's key; a writer key may not", () => {
    const p = { ...policy, allowFence: true };
    assert.deepEqual(parseRequest('standby receive --fence 9 --revoke gpu-1 --revoke gpu-2', p), { kind: 'fence', epoch: 9, waitMs: undefined, revoke: ['gpu-1', 'gpu-2'] });
    assert.deepEqual(parseRequest('standby receive --revoke gpu-1', p), { kind: 'revoke', waitMs: undefined, revoke: ['gpu-1'] });
    assert.deepEqual(parseRequest("standby receive --authorize gpu-3 --key 'ssh-ed25519 AAAAC3Nz x'", p), { kind: 'authorize', host: 'gpu-3', key: 'ssh-ed25519 AAAAC3Nz x' });
    assert.throws(() => parseRequest('standby receive --revoke ../etc', p), /expected a host id/);
    assert.throws(() => parseRequest('standby receive --authorize gpu-3', p), /needs --key/);
    assert.throws(() => parseRequest("standby receive --authorize gpu-3 --key 'k' --fence 2", p), /a request of its own/);
    assert.throws(() => parseRequest("standby receive --key 'k'", p), /goes with --authorize/);
    assert.throws(() => parseRequest('standby receive --revoke gpu-1', policy), /not allowed with this key/);
    assert.throws(() => parseRequest("standby receive --authorize gpu-3 --key 'ssh-ed25519 AAAA'", policy), /not allowed with this key/);
  });
});
