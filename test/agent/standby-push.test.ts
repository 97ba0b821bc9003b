// The receiver's refusals told apart from other failures on the standby: read
// from stderr as the receiver prints them (`[STANDBY_ERR_<CODE>]`), and the
// error a refused pass fails with, on which the engine stops pushing; and the
// check before a full reconcile, against a real sshd.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { StandbyError } from '../../core/errors.ts';
import { agentConfigSchema, syncRoots } from '../../config/agent.ts';
import { isRefusal, refusalOf, refusedError, StandbyPush, type Refusal } from '../../agent/standby-push.ts';
import { standbyDestination } from '../../agent/push-destination.ts';
import { startSshd } from '../../proxy/provision/loopback-sshd.ts';
import { waitFor } from '../fixtures/wait-for.ts';

describe('refusalOf', () => {
  const cases: { name: string; stderr: string; want: Refusal | undefined }[] = [
    { name: 'a stale epoch', stderr: 'standby receive: epoch 3 is older than the standby\'s epoch 4 [STANDBY_ERR_EPOCH_STALE]', want: 'EPOCH_STALE' },
    { name: 'a revoked host', stderr: 'standby receive: host gpu-1 was revoked at 2026-01-01T00:00:00Z (epoch 4) [STANDBY_ERR_HOST_REVOKED]', want: 'HOST_REVOKED' },
    { name: 'among rsync\'s own lines', stderr: 'rsync: connection unexpectedly closed (0 bytes received so far) [sender]\nx [STANDBY_ERR_EPOCH_STALE]\nrsync error: error in rsync protocol data stream (code 12)', want: 'EPOCH_STALE' },
    { name: 'both named: revoked wins (the key is gone for good)', stderr: '[STANDBY_ERR_EPOCH_STALE] [STANDBY_ERR_HOST_REVOKED]', want: 'HOST_REVOKED' },
    { name: 'nothing', stderr: '', want: undefined },
    { name: 'an ordinary failure', stderr: 'rsync: write failed on "/srv/x": No space left on device (28)', want: undefined },
    { name: 'another receiver refusal (not a fence)', stderr: 'standby receive: the path is outside every sync root [STANDBY_ERR_COMMAND_REFUSED]', want: undefined },
    { name: 'the code without its brackets is not the receiver speaking', stderr: 'a file named STANDBY_ERR_EPOCH_STALE vanished', want: undefined },
  ];
  for (const c of cases) test(c.name, () => assert.equal(refusalOf(c.stderr), c.want));
});

describe('refusedError', () => {
  test('a stale epoch names the epoch and why', () => {
    const err = refusedError('EPOCH_STALE', 6);
    assert.ok(err instanceof StandbyError);
    assert.equal(err.code, 'STANDBY_ERR_EPOCH_STALE');
    assert.match(err.message, /refused this agent's epoch 6: it was fenced under a newer one/);
    assert.ok(isRefusal(err));
  });
  test('a revoked key is a refusal too, and says so', () => {
    const err = refusedError('HOST_REVOKED', undefined);
    assert.match(err.message, /epoch 0: this host's key was revoked/);
    assert.ok(isRefusal(err));
  });
  test('other failures are not refusals', () => {
    assert.ok(!isRefusal(new StandbyError('STANDBY_ERR_RSYNC_FAILED', 'x', {})));
    assert.ok(!isRefusal(new Error('[STANDBY_ERR_EPOCH_STALE]')));
  });
});

describe('prepare, before a full reconcile (real sshd)', () => {
  // A restore to a new GPU starts with this check: each of its sessions is a login and a receiver
  // start on the far end, so the rsync check and the folders must not wait for each other.
  test('asks for the standby\'s rsync and makes the folders at the same time', async (t) => {
    const top = mkdtempSync(join(tmpdir(), 'standby-prepare-'));
    t.after(() => rmSync(top, { recursive: true, force: true }));
    const bin = join(top, 'bin');
    const marks = join(top, 'marks');
    mkdirSync(bin);
    mkdirSync(marks);
    // on the standby's PATH: each says it started, then waits (at most 10 s) for the other to have started too
    const waiter = (me: string, other: string, real: string): string =>
      `#!/bin/sh\n[ "$1" = --version ] || [ ${me} = mkdir ] || exec ${real} "$@"\n: > ${marks}/${me}\n` +
      `i=0; while [ ! -e ${marks}/${other} ]; do i=$((i+1)); [ $i -gt 200 ] && { echo "${me}: ${other} never ran beside it" >&2; exit 1; }; sleep 0.05; done\nexec ${real} "$@"\n`;
    writeFileSync(join(bin, 'rsync'), waiter('rsync', 'mkdir', execFileSync('sh', ['-c', 'command -v rsync'], { encoding: 'utf8' }).trim()), { mode: 0o755 });
    writeFileSync(join(bin, 'mkdir'), waiter('mkdir', 'rsync', '/bin/mkdir'), { mode: 0o755 });
    const sshd = await startSshd({ path: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` });
    t.after(() => sshd.close());
    const cpu = join(top, 'cpu', 'deep', 'workspace');
    const config = agentConfigSchema.parse({
      hostId: 'gpu-prepare',
      workspace: join(top, 'gpu'),
      standby: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, path: cpu, sshOptions: sshd.sshOptions },
      runDir: join(top, 'run'),
    });
    const push = new StandbyPush(config, standbyDestination(config)!, pino({ level: 'silent' }), () => undefined);
    t.after(() => push.close());
    await push.prepare(syncRoots(config));
    assert.ok(existsSync(cpu), 'the standby\'s folder was made');
    assert.ok(push.rsyncVersions.standby, 'the standby\'s rsync was checked');
  });

  // The first pass to a new GPU starts its master and checks at once: sessions that do not wait for the
  // master each log in on their own (3 connections where 1 does, 0.5 s more apiece on the bench machine).
  test('waits for the ssh master just started, so its sessions and the flush after share its one connection', async (t) => {
    const top = mkdtempSync(join(tmpdir(), 'standby-prepare-master-'));
    t.after(() => rmSync(top, { recursive: true, force: true }));
    const sshd = await startSshd();
    t.after(() => sshd.close());
    const config = agentConfigSchema.parse({
      hostId: 'gpu-prepare-master',
      workspace: join(top, 'gpu'),
      standby: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, path: join(top, 'cpu'), sshOptions: sshd.sshOptions },
      runDir: join(top, 'run'),
    });
    const push = new StandbyPush(config, standbyDestination(config)!, pino({ level: 'silent' }), () => undefined);
    t.after(() => push.close());
    // the fixture's check that sshd listens is a connection too: counted once its log line is in
    await waitFor('the readiness check\'s connection logged', () => sshd.connections() >= 1, { timeoutMs: 10_000 });
    const before = sshd.connections();
    push.ensureLink();
    const roots = syncRoots(config);
    await push.prepare(roots);
    await push.flush(roots[0]!);
    assert.ok(existsSync(join(top, 'cpu')), 'the standby\'s folder was made');
    assert.equal(sshd.connections() - before, 1, 'one connection: the master\'s');
  });
});
