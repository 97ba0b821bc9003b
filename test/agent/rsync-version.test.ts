// Which rsync runs on each end, and the refusal when sync cannot work with it:
// at once, naming the version, the host and what to install, with no pass run
// and none retried at the failure pace.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { checkRsyncVersion, parseRsyncVersion } from '../../agent/rsync-version.ts';
import { verify } from '../../agent/verify.ts';
import { StandbyError } from '../../core/errors.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { DEBIAN_12, upstreamBuilds } from '../fixtures/rsync-versions.ts';
import { startPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';

describe('reading rsync --version', () => {
  test('every version users run is read and accepted, from the real binaries', () => {
    for (const build of [...upstreamBuilds(), DEBIAN_12]) {
      const out = execFileSync(join(build.dir, 'rsync'), ['--version'], { encoding: 'utf8' });
      const v = checkRsyncVersion(out, 'this host');
      assert.equal(v.version, build.name.replace(/-.*/, ''), build.name);
      assert.ok(v.protocol === 31 || v.protocol === 32, `${build.name}: protocol ${v.protocol}`);
    }
  });

  const refused: { name: string; output: string; message: RegExp }[] = [
    { name: 'rsync 3.0.9 (CentOS 6): no deletion counts before protocol 31', output: 'rsync  version 3.0.9  protocol version 30\nCopyright (C) 1996-2011 by Andrew Tridgell', message: /rsync 3\.0\.9 \(protocol 30\) on the standby root@cpu:22 is too old: Standby needs rsync 3\.1\.0 or newer on both ends .*apt-get install rsync/ },
    { name: "macOS's rsync 2.6.9", output: 'rsync  version 2.6.9  protocol version 29', message: /rsync 2\.6\.9 \(protocol 29\) on the standby root@cpu:22 is too old/ },
    { name: 'openrsync or another program answering', output: 'openrsync: protocol version 29', message: /could not tell which rsync runs on the standby root@cpu:22: "rsync --version" printed "openrsync: protocol version 29"\. Install rsync 3\.1\.0 or newer there/ },
    { name: 'nothing at all', output: '', message: /could not tell which rsync runs on the standby root@cpu:22/ },
  ];
  for (const c of refused) {
    test(`refused: ${c.name}`, () => {
      assert.throws(() => checkRsyncVersion(c.output, 'the standby root@cpu:22'), (err: unknown) => {
        assert.ok(err instanceof StandbyError);
        assert.equal(err.code, 'STANDBY_ERR_RSYNC_UNSUPPORTED');
        assert.equal(err.exitCode, 69);
        assert.match(err.message, c.message);
        return true;
      });
    });
  }

  test('two-part and suffixed versions are read', () => {
    assert.deepEqual(parseRsyncVersion('rsync  version 3.4  protocol version 32')?.parts, [3, 4, 0]);
    assert.deepEqual(parseRsyncVersion('rsync  version v3.2.7pre1  protocol version 31'), { version: '3.2.7pre1', parts: [3, 2, 7], protocol: 31 });
  });
});

describe('a standby without rsync', () => {
  // sshd sessions get a PATH of one folder that starts empty: no rsync, sync or mkdir; the receiver's
  // start script gets what it runs with (sh, dirname, readlink)
  const cases: { name: string; receiver: boolean }[] = [
    { name: 'a plain sshd (the shell answers 127)', receiver: false },
    { name: "the standby's receiver (it names the missing program)", receiver: true },
  ];
  for (const c of cases) {
    test(`${c.name}: the agent names the host and what to install, runs no pass, checks again at the slow pace, and syncs once rsync is there`, async () => {
      const top = mkdtempSync(join(tmpdir(), 'standby-norsync-'));
      const bin = join(top, 'bin');
      const cpu = join(top, 'cpu');
      mkdirSync(bin);
      if (c.receiver) for (const p of ['sh', 'dirname', 'readlink', 'flock']) symlinkSync(execFileSync('sh', ['-c', `command -v ${p}`], { encoding: 'utf8' }).trim(), join(bin, p));
      const retryMaxMs = 2_000;
      const pair = await startPair({
        cpu,
        noStart: true,
        settings: { sync: { retryMinMs: 50, retryMaxMs } },
        sshd: { path: bin, ...(c.receiver ? { keyOptions: `command="${STANDBY_CLI} receive --root ${cpu} --state-dir ${join(top, 'state')}",restrict` } : {}) },
        before: (gpu) => writeFileSync(join(gpu, 'work.txt'), 'work\n'),
      });
      try {
        await pair.engine.start();
        const where = `the standby ${pair.sshd.user}@${pair.sshd.host}:${pair.sshd.port}`;
        const failed = await waitFor('the refusal', () => pair.engine.status().lastError?.message, { timeoutMs: 20_000 });
        assert.equal(failed, `rsync is not installed on ${where}: install it (Debian/Ubuntu: apt-get install rsync)`);
        const refusedAt = performance.now();
        assert.ok(pair.logs.some((l) => l['level'] === 60 && String(l['msg']).includes(`sync cannot run: rsync is not installed on ${where}`)), 'logged once, as fatal');
        await assert.rejects(verify(pair.config), (err: unknown) => err instanceof StandbyError && err.code === 'STANDBY_ERR_MISSING_BINARY' && err.message.includes(where), 'standby verify says the same');

        // a failing pass would retry at 50, 100, 200, 400, 800 ms...: this check waits retryMaxMs every time
        await new Promise((r) => setTimeout(r, 1_500));
        const s = pair.engine.status();
        assert.equal(s.passes, 0, 'no pass ran');
        assert.ok(s.failedPasses <= 2, `checked ${s.failedPasses} times in ${Math.round(performance.now() - refusedAt)} ms`);
        assert.deepEqual(readdirSync(cpu), [], 'nothing reached the standby');
        assert.equal(s.rsync.standby, null);

        // rsync installed on the standby: the next check finds it and the first full reconcile lands, no restart
        for (const p of ['rsync', 'sync', 'mkdir']) symlinkSync(execFileSync('sh', ['-c', `command -v ${p}`], { encoding: 'utf8' }).trim(), join(bin, p));
        await waitFor('the first full reconcile', () => pair.engine.status().ready, { timeoutMs: 20_000 }).catch((err: unknown) => {
          throw new Error(`${(err as Error).message}: ${JSON.stringify(pair.engine.status().lastError)}`);
        });
        assert.deepEqual(readdirSync(cpu), ['work.txt']);
        assert.match(pair.engine.status().rsync.standby ?? '', /^3\./);
      } finally {
        await pair.close();
        rmSync(top, { recursive: true, force: true });
      }
    });
  }
});
