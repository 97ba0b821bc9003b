// A full pass's progress, read from rsync's --info=progress2 output: the
// lines as rsync 3.1.3 to 3.5.0 print them, the sum over a pass's runs, and
// real full-pass runs (StandbyPush as a pass runs it, over ssh on loopback)
// with each version on the sending end and on the receiving end: the last
// figures are the run's own --stats.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { parseProgressLine, PassProgress } from '../../agent/pass-progress.ts';
import { describeProgress } from '../../protocol/agent-status.ts';
import { fullArgs } from '../../agent/rsync-args.ts';
import { localRsyncVersion } from '../../agent/rsync-version.ts';
import { StandbyPush } from '../../agent/standby-push.ts';
import { agentConfigSchema } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { DEBIAN_12, pathWith, upstreamBuilds, type RsyncBuild } from '../fixtures/rsync-versions.ts';
import { snapshot } from '../fixtures/tree-snapshot.ts';

describe('parseProgressLine', () => {
  test('a line per file sent, to-chk once the list is whole', () => {
    assert.deepEqual(parseProgressLine('         13,860 100%   98.78kB/s    0:00:00 (xfr#3000, to-chk=0/3031)'), { bytes: 13_860, checked: 3031, total: 3031, final: true });
  });
  test('ir-chk while rsync still lists the tree (incremental recursion, over ssh)', () => {
    assert.deepEqual(parseProgressLine('    30,002,000  83%  105.46MB/s    0:00:00 (xfr#2, ir-chk=1099/1203)'), { bytes: 30_002_000, checked: 104, total: 1203, final: false });
  });
  test('the first line, before any file, has bytes only', () => {
    assert.deepEqual(parseProgressLine('              3   0%    0.00kB/s    0:00:00  '), { bytes: 3, checked: undefined, total: undefined, final: false });
  });
  test('the --stats block and messages are not progress', () => {
    for (const line of ['Number of files: 3,031 (reg: 3,000, dir: 31)', 'Total bytes sent: 184,666', 'sent 184,666 bytes  received 57,173 bytes  483,678.00 bytes/sec', 'rsync: [sender] write error: Broken pipe (32)', '']) {
      assert.equal(parseProgressLine(line), undefined, line);
    }
  });
});

describe('describeProgress (status, the periodic log)', () => {
  test('files of the total, bytes, rate, time, and the time left by files', () => {
    assert.equal(describeProgress({ files: 1000, bytes: 12_300_000, totalFiles: 4000, rateBps: 4_100_000, elapsedMs: 3000 }), '1000 of 4000 files, 12.3 MB at 4.1 MB/s, 3.0 s, about 9 s left');
    assert.equal(describeProgress({ files: 10, bytes: 0, totalFiles: null, rateBps: 0, elapsedMs: 500 }), '10 files (still counting), 0.0 MB at 0.0 MB/s, 0.5 s');
  });
});

describe('PassProgress', () => {
  test('sums the roots of a pass; a root run again adds its bytes, not its files; totals known once the root in flight is listed whole', () => {
    const p = new PassProgress();
    const first = p.run('u@h:/ws/');
    first('  100 0%  1kB/s 0:00:00 (xfr#1, ir-chk=5/10)\r');
    assert.equal(p.figures().totalFiles, null);
    assert.equal(p.figures().files, 5);
    first('  500 100%  1kB/s 0:00:00 (xfr#3, to-chk=0/12)\r  5');  // a partial line waits for its end
    assert.deepEqual({ files: p.figures().files, bytes: p.figures().bytes, totalFiles: p.figures().totalFiles }, { files: 12, bytes: 500, totalFiles: 12 });
    const again = p.run('u@h:/ws/');
    again('  20 100%  1kB/s 0:00:00 (xfr#1, to-chk=0/12)\n');
    assert.deepEqual({ files: p.figures().files, bytes: p.figures().bytes, totalFiles: p.figures().totalFiles }, { files: 12, bytes: 520, totalFiles: 12 });
    const extra = p.run('u@h:/User/');
    assert.equal(p.figures().totalFiles, null, 'the next root is not listed yet');
    extra('  7 100%  1kB/s 0:00:00 (xfr#1, to-chk=0/3)\n');
    const f = p.figures();
    assert.deepEqual({ files: f.files, bytes: f.bytes, totalFiles: f.totalFiles }, { files: 15, bytes: 527, totalFiles: 15 });
    assert.ok(f.elapsedMs >= 0 && f.rateBps >= 0);
  });
});

describe('a full pass\'s progress with every rsync version, on either end', () => {
  let top: string;
  let sshd: Sshd;
  let builds: RsyncBuild[];
  const savedPath = process.env['PATH'];

  before(async () => {
    top = mkdtempSync(join(tmpdir(), 'standby-progress-'));
    const src = join(top, 'src');
    for (let d = 0; d < 5; d++) {
      mkdirSync(join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 60; f++) writeFileSync(join(src, `d${d}/f${f}`), `${d}/${f} ${'y'.repeat(f * 10)}\n`);
    }
    writeFileSync(join(src, 'big.bin'), Buffer.alloc(1_000_000, 1));
    sshd = await startSshd();
    builds = upstreamBuilds();
  });

  after(async () => {
    process.env['PATH'] = savedPath;
    await sshd?.close();
    rmSync(top, { recursive: true, force: true });
  });

  /** One full-pass run as the engine makes it: `sender`'s rsync here (PATH), `receiver`'s on the other end (--rsync-path). */
  async function fullRun(sender: RsyncBuild, receiver: RsyncBuild, n: number): Promise<void> {
    const dest = join(top, `dest-${n}`);
    const config = validateSettings(agentConfigSchema, { hostId: 'cpu-1', workspace: join(top, 'src'), standby: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, sshOptions: sshd.sshOptions, path: dest }, runDir: join(top, 'run') }, 'test');
    const push = new StandbyPush(config, { target: null, ssh: { ...config.standby!, rsyncPath: join(receiver.dir, 'rsync') }, label: 'the test receiver' }, pino({ level: 'silent' }), () => undefined);
    process.env['PATH'] = pathWith(sender);
    try {
      assert.equal((await localRsyncVersion()).version, sender.name.replace(/-.*/, ''), 'the sender is the version asked for');
      const progress = new PassProgress();
      push.fullPassProgress = progress;
      const result = push.check(await push.rsync(fullArgs(push.settings({}), push.ends({ local: join(top, 'src'), remote: dest }))), 'full pass');
      const f = progress.figures();
      const why = `${sender.name} -> ${receiver.name}: ${JSON.stringify(f)} vs ${JSON.stringify(result.stats)}`;
      assert.ok(result.stats.files > 300, why);
      assert.equal(f.files, result.stats.files, why);
      assert.equal(f.totalFiles, result.stats.files, why);
      assert.ok(f.bytes >= 1_000_000, why);
      assert.deepEqual(snapshot(dest), snapshot(join(top, 'src')), why);
    } finally {
      process.env['PATH'] = savedPath;
      await push.close();
    }
  }

  test('each version sending to Debian 12\'s, and Debian 12\'s sending to each', async () => {
    let n = 0;
    for (const b of [...builds, DEBIAN_12]) await fullRun(b, DEBIAN_12, n++);
    for (const b of builds) await fullRun(DEBIAN_12, b, n++);
  });
});
