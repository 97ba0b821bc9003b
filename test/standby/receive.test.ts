// The standby's receiver (`standby receive`, an authorized_keys forced
// command, standby/receive.ts) with a real sshd, real rsync and real
// processes: what writers may not do (and that a refusal changes nothing),
// the epoch check, the lock held by the writer's rsync, and the agent's own
// passes through it. The request grammar is in receive-request.test.ts, the
// fence in fence.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { liveReceivers } from '../../standby/receiver-registry.ts';
import { runRemote } from '../../agent/ssh.ts';
import type { StandbyTarget } from '../../config/agent.ts';
import { emptyFoldersIn, FLUSH_VAR, FLUSHED_LINE, hasLine, RECEIVER_FLUSHES, refusalIn } from '../../protocol/receiver.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import type { Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { startStandbyReceiver, type StandbyReceiver } from '../fixtures/standby-receiver.ts';
import { snapshot } from '../fixtures/tree-snapshot.ts';
import { startPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { run, type Run } from '../fixtures/cli-run.ts';

describe('the receiver as the forced command of a real sshd', () => {
  let w: StandbyReceiver;
  let root = '';
  let state = '';
  let outside = '';
  let src = '';
  let sshd: Sshd;
  before(async () => {
    w = await startStandbyReceiver();
    ({ root, state, outside, src, sshd } = w);
  });
  after(() => w?.close());

  const dest = (path: string): string => w.dest(path);
  const rsyncTo: StandbyReceiver['rsyncTo'] = (...args) => w.rsyncTo(...args);
  const fence: StandbyReceiver['fence'] = (...args) => w.fence(...args);
  const storedEpoch = (): number => w.storedEpoch();
  const lockFree = (): boolean => w.lockFree();
  const startReceiver: StandbyReceiver['startReceiver'] = (...args) => w.startReceiver(...args);
  const exited: StandbyReceiver['exited'] = (child) => w.exited(child);
  const ssh: StandbyReceiver['ssh'] = (command) => w.ssh(command);

  test('refused commands say why on stderr, exit non-zero and change nothing', async () => {
    const before = { root: snapshot(root), outside: snapshot(outside) };
    const cases: { name: string; go: () => Promise<Run>; reason: RegExp; code?: number }[] = [
      { name: 'cat /etc/shadow', go: () => ssh(['cat /etc/shadow']), reason: /"cat" is not a command this key may run/, code: 77 },
      { name: 'sh -c', go: () => ssh([`sh -c 'touch ${root}/MARK'`]), reason: /"sh" is not a command/, code: 77 },
      { name: 'a command list', go: () => ssh([`STANDBY_EPOCH=0 sync -f ${root}; touch ${root}/MARK`]), reason: /";" means something to a shell/, code: 77 },
      { name: 'a login', go: () => ssh([]), reason: /no command/, code: 77 },
      { name: 'a fence with the writer key', go: () => ssh(['standby', 'receive', '--fence', '999']), reason: /fencing is not allowed with this key/, code: 77 },
      { name: 'rsync into a folder outside the roots', go: () => rsyncTo(0, ['-a', `${src}/`, dest(`${outside}/`)]), reason: /outside the sync roots/ },
      { name: 'rsync escaping with ..', go: () => rsyncTo(0, ['-a', `${src}/`, dest(`${root}/../outside/`)]), reason: /outside the sync roots/ },
      { name: 'rsync reading from the standby', go: () => rsyncTo(0, ['-a', dest(`${root}/`), `${outside}/`]), reason: /--sender/ },
      { name: 'rsync with secluded args', go: () => rsyncTo(0, ['-a', '-s', `${src}/`, dest(`${root}/`)]), reason: /secluded/ },
      { name: 'rsync writing in place', go: () => rsyncTo(0, ['-a', '--inplace', `${src}/`, dest(`${root}/`)]), reason: /in place/ },
    ];
    const runs = await Promise.all(cases.map((c) => c.go()));
    for (const [i, c] of cases.entries()) {
      const r = runs[i]!;
      assert.notEqual(r.code, 0, `${c.name}: exit 0`);
      if (c.code !== undefined) assert.equal(r.code, c.code, `${c.name}: exit code`);
      assert.match(r.stderr, c.reason, c.name);
      assert.match(r.stderr, /\[STANDBY_ERR_COMMAND_REFUSED\]/, c.name);
    }
    assert.deepEqual({ root: snapshot(root), outside: snapshot(outside) }, before, 'nothing changed on the standby');
    assert.equal(storedEpoch(), 0, 'the writer key could not fence');
  });


  test('after a fence, the old epoch is refused and writes nothing; the new one (and a newer one) writes', async () => {
    const old = storedEpoch();
    const epoch = old + 1;
    assert.equal((await fence(epoch)).code, 0);
    writeFileSync(join(src, 'a.txt'), 'written by the old primary\n');
    const before = snapshot(root);

    const stale = await rsyncTo(old, ['-a', '--delay-updates', `${src}/`, dest(`${root}/`)]);
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, new RegExp(`this writer's epoch ${old} is older than the standby's epoch ${epoch}.*Nothing was written.*\\[STANDBY_ERR_EPOCH_STALE\\]`));
    const noEpoch = await rsyncTo(undefined, ['-a', `${src}/`, dest(`${root}/`)]);
    assert.match(noEpoch.stderr, /epoch 0 is older/, 'a writer without an epoch is epoch 0');
    const flush = await ssh([`STANDBY_EPOCH=${old}`, 'sync', '-f', root]);
    assert.equal(flush.code, 79, 'the flush of the old epoch is refused with the stale-epoch exit code');
    const made = await ssh([`STANDBY_EPOCH=${old}`, 'mkdir', '-p', `${root}/made/by/old`]);
    assert.equal(made.code, 79, "the old epoch's mkdir is refused too");
    assert.deepEqual(snapshot(root), before, 'nothing changed on the standby');

    const fresh = await rsyncTo(epoch, ['-a', '--delay-updates', `${src}/`, dest(`${root}/new/`)]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(readFileSync(join(root, 'new/a.txt'), 'utf8'), 'written by the old primary\n');
    const newer = await rsyncTo(epoch + 5, ['-a', `${src}/`, dest(`${root}/newer/`)]);
    assert.equal(newer.code, 0, newer.stderr);
    assert.equal(storedEpoch(), epoch, 'a writer never moves the epoch');
    const target: StandbyTarget = { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, path: root, sshOptions: sshd.sshOptions };
    const agentFlush = await runRemote(target, undefined, [`STANDBY_EPOCH=${epoch}`, 'sync', '-f', root], 10_000);
    assert.equal(agentFlush.code, 0, `the agent's own flush (runRemote's quoting): ${agentFlush.stderr}`);
    const agentMkdir = await runRemote(target, undefined, ['mkdir', '-p', `${root}/made/by new`, `${root}/made/too`], 10_000, { STANDBY_EPOCH: String(epoch) });
    assert.equal(agentMkdir.code, 0, agentMkdir.stderr);
    assert.ok(statSync(join(root, 'made/by new')).isDirectory() && statSync(join(root, 'made/too')).isDirectory(), 'mkdir -p made every folder asked for');
    const version = await runRemote(target, undefined, ['rsync', '--version'], 10_000);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^rsync\s+version \S+\s+protocol version \d+/, 'the receiver answers with the rsync writers get');
  });


  test("a writer reads the receiver's refusals through rsync and ssh with the protocol's refusalIn: the code, and the standby's epoch", async () => {
    const epoch = storedEpoch() + 1;
    assert.equal((await fence(epoch)).code, 0);
    const stale = await rsyncTo(epoch - 1, ['-a', `${src}/`, dest(`${root}/`)]);
    const refusal = refusalIn(stale.stderr);
    assert.equal(refusal?.code, 'STANDBY_ERR_EPOCH_STALE', stale.stderr);
    assert.equal(refusal.epoch, epoch, "the standby's epoch, read from the line");
    const flush = await ssh([`STANDBY_EPOCH=${epoch - 1}`, 'sync', '-f', root]);
    assert.equal(refusalIn(flush.stderr)?.epoch, epoch, flush.stderr);
    const refused = await ssh(['cat /etc/shadow']);
    assert.equal(refusalIn(refused.stderr)?.code, 'STANDBY_ERR_COMMAND_REFUSED', refused.stderr);
    const fresh = await rsyncTo(epoch, ['-a', `${src}/`, dest(`${root}/fresh/`)]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(refusalIn(fresh.stderr), undefined, 'no refusal in a transfer that went through');
  });

  test(`a transfer that asks (${FLUSH_VAR}=1) is flushed before its session ends, and the receiver says so; one that does not ask is not; rsync --version says the receiver takes it`, async () => {
    const epoch = storedEpoch();
    const version = await ssh([`STANDBY_EPOCH=${epoch}`, 'rsync', '--version']);
    assert.equal(version.code, 0, version.stderr);
    assert.ok(hasLine(version.stderr, RECEIVER_FLUSHES), `the receiver names ${FLUSH_VAR} after rsync --version: ${version.stderr}`);
    writeFileSync(join(src, 'flushed.txt'), 'flushed with the transfer\n');
    const asked = await run('rsync', ['-e', sshd.rsyncShell(), `--rsync-path=STANDBY_EPOCH=${epoch} ${FLUSH_VAR}=1 rsync`, '-a', `${src}/`, dest(`${root}/flushed/`)], { LC_ALL: 'C' }, 20_000, '');
    assert.equal(asked.code, 0, asked.stderr);
    assert.ok(hasLine(asked.stderr, FLUSHED_LINE), `the flush done line on stderr: ${asked.stderr}`);
    assert.equal(readFileSync(join(root, 'flushed/flushed.txt'), 'utf8'), 'flushed with the transfer\n');
    const plain = await rsyncTo(epoch, ['-a', `${src}/`, dest(`${root}/plain/`)]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(hasLine(plain.stderr, FLUSHED_LINE), false, 'no flush asked, none reported');
    const cases: { words: string[]; reason: RegExp }[] = [
      { words: [`${FLUSH_VAR}=1`, 'sync', '-f', root], reason: /STANDBY_FLUSH=1 goes with rsync --server only/ },
      { words: [`${FLUSH_VAR}=1`, 'mkdir', '-p', `${root}/m`], reason: /STANDBY_FLUSH=1 goes with rsync --server only/ },
      { words: [`${FLUSH_VAR}=1`, 'rsync', '--version'], reason: /STANDBY_FLUSH=1 goes with rsync --server only/ },
      { words: [`${FLUSH_VAR}=yes`, 'rsync', '--server', '-logDtpre.iLsfxCIvu', '.', `${root}/`], reason: /STANDBY_FLUSH="yes": expected 1/ },
      { words: [`${FLUSH_VAR}=1`, `${FLUSH_VAR}=1`, 'rsync', '--server', '-logDtpre.iLsfxCIvu', '.', `${root}/`], reason: /STANDBY_FLUSH is set twice/ },
    ];
    for (const c of cases) {
      const r = await ssh([c.words.join(' ')]);
      assert.equal(r.code, 77, `${c.words.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, c.reason);
    }
  });

  test('mkdir -p names the folders that hold nothing once it is done: new ones and empty ones (a link names the folder it leads to), not one with a file', async () => {
    const epoch = storedEpoch();
    mkdirSync(join(root, 'holds/files'), { recursive: true });
    writeFileSync(join(root, 'holds/files/kept.txt'), 'kept\n');
    mkdirSync(join(root, 'holds/nothing'), { recursive: true });
    symlinkSync(join(root, 'holds/nothing'), join(root, 'holds/link'));
    const folders = [`${root}/holds/new/deep`, `${root}/holds/files`, `${root}/holds/nothing`, `${root}/holds/link`];
    const r = await ssh([`STANDBY_EPOCH=${epoch}`, 'mkdir', '-p', ...folders.map((f) => `'${f}'`)]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...emptyFoldersIn(r.stderr, folders.length)].sort(), [0, 2, 3], r.stderr);
    assert.equal(readFileSync(join(root, 'holds/files/kept.txt'), 'utf8'), 'kept\n', 'mkdir -p left the folder that held a file as it was');
    const none = await ssh([`STANDBY_EPOCH=${epoch}`, 'mkdir', '-p', `'${root}/holds/files'`]);
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stderr.includes('empty folders'), false, `no line when no folder is empty: ${none.stderr}`);
  });

  test('rsync --inplace runs only into a folder that holds nothing (or none yet); into one that holds files it is refused and changes nothing', async () => {
    const epoch = storedEpoch();
    mkdirSync(join(root, 'in-place/empty'), { recursive: true });
    for (const folder of ['in-place/empty', 'in-place/missing']) {
      const r = await rsyncTo(epoch, ['-a', '--inplace', `${src}/`, dest(`${root}/${folder}/`)]);
      assert.equal(r.code, 0, `${folder}: ${r.stderr}`);
      assert.equal(readFileSync(join(root, folder, 'a.txt'), 'utf8'), readFileSync(join(src, 'a.txt'), 'utf8'), `${folder}: written`);
    }
    mkdirSync(join(root, 'in-place/held'), { recursive: true });
    writeFileSync(join(root, 'in-place/held/a.txt'), 'the standby held this\n');
    const held = await rsyncTo(epoch, ['-a', '--inplace', `${src}/`, dest(`${root}/in-place/held/`)]);
    assert.notEqual(held.code, 0, held.stderr);
    assert.equal(refusalIn(held.stderr)?.code, 'STANDBY_ERR_COMMAND_REFUSED', held.stderr);
    assert.match(held.stderr, /refused --inplace into .*in-place\/held\/: it holds files/);
    assert.equal(readFileSync(join(root, 'in-place/held/a.txt'), 'utf8'), 'the standby held this\n', 'nothing written');
    const whole = await rsyncTo(epoch, ['-a', `${src}/`, dest(`${root}/in-place/held/`)]);
    assert.equal(whole.code, 0, `without --inplace it goes: ${whole.stderr}`);
  });

  test('a flush that cannot run (no sync on the standby) is not reported: the transfer stands, the writer flushes in a session of its own', async () => {
    // sshd's sessions get its own PATH: the receiver runs here as sshd would run it, through rsync's -e, with a PATH of rsync and flock only
    const bin = join(root, '..', 'bin-without-sync');
    mkdirSync(bin, { recursive: true });
    for (const name of ['rsync', 'flock']) {
      const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
      symlinkSync(found, join(bin, name));
    }
    const shell = join(root, '..', 'as-sshd.sh');
    writeFileSync(shell, `#!/bin/sh\nshift\nSSH_ORIGINAL_COMMAND="$*" PATH=${bin} exec ${process.execPath} ${join(STANDBY_CLI, '../../cli/receive.ts')} --root ${root} --state-dir ${state}\n`, { mode: 0o755 });
    const epoch = storedEpoch();
    const r = await run('rsync', ['-e', shell, `--rsync-path=STANDBY_EPOCH=${epoch} ${FLUSH_VAR}=1 rsync`, '-a', `${src}/`, `standby:${root}/no-sync/`], { LC_ALL: 'C' }, 20_000, '');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(root, 'no-sync/a.txt'), 'utf8').length > 0, true, 'the transfer landed');
    assert.equal(hasLine(r.stderr, FLUSHED_LINE), false, r.stderr);
    assert.match(r.stderr, /the flush after rsync could not start/);
  });

  test('a SIGKILLed receiver: its rsync keeps the lock until it ends, then the lock is free', async () => {
    const epoch = storedEpoch();
    assert.ok(lockFree());
    const { child, end } = startReceiver(epoch, `${root}/held/`);
    const record = await waitFor('the receiver running rsync', () => liveReceivers(state).find((r) => r.pid === child.pid && r.child));
    assert.equal(lockFree(), false, 'the running receiver holds the lock (shared)');
    child.kill('SIGKILL');
    await exited(child);
    // the writer is rsync, and it still runs: a crashed receiver must not let it write unlocked
    assert.equal(lockFree(), false, 'the rsync of a killed receiver still holds the lock');
    end(); // the connection goes: rsync reads end of file and exits
    await waitFor('the lock free', () => lockFree(), { timeoutMs: 10_000 });
    await waitFor('the record gone', () => !liveReceivers(state).some((r) => r.pid === record.pid), { timeoutMs: 5_000 });
  });

});

describe("the agent's own passes through the receiver", () => {
  /** an agent whose standby `cpu` is behind the real receiver (state in `state`), its GPU laid out by `before` */
  const startReceiverPair = (cpu: string, state: string, before: (gpu: string) => void): ReturnType<typeof startPair> => startPair({
    cpu,
    sshd: { keyOptions: `command="${STANDBY_CLI} receive --root ${cpu} --state-dir ${state}",restrict` },
    settings: { standby: { rsyncPath: 'STANDBY_EPOCH=0 rsync' } },
    before,
  });

  test('a full pass into a standby folder that holds files never writes in place: a file the standby held is replaced whole, so a cut pass cannot tear it', async () => {
    const top = mkdtempSync(join(tmpdir(), 'standby-receive-inplace-'));
    const cpu = join(top, 'standby');
    const state = join(top, 'state');
    mkdirSync(join(cpu, 'src'), { recursive: true });
    // the standby's copy of an acknowledged version, with a second name outside the root: rewritten in place, both names would change
    writeFileSync(join(cpu, 'src/model.py'), 'acknowledged version\n');
    linkSync(join(cpu, 'src/model.py'), join(top, 'second-name'));
    const pair = await startReceiverPair(cpu, state, (gpu) => {
      mkdirSync(join(gpu, 'src'), { recursive: true });
      writeFileSync(join(gpu, 'src/model.py'), 'the version on the GPU, longer than the one before\n');
    });
    try {
      assert.equal(readFileSync(join(cpu, 'src/model.py'), 'utf8'), 'the version on the GPU, longer than the one before\n', 'the full reconcile went through');
      assert.equal(readFileSync(join(top, 'second-name'), 'utf8'), 'acknowledged version\n', 'the old file was replaced by a new one, not written over');
      assert.deepEqual(pair.logs.filter((l) => l.msg === 'rsync run done').map((l) => l.inplace === true), [false]);
    } finally {
      await pair.close();
      rmSync(top, { recursive: true, force: true });
    }
  });

  test("full and incremental passes (the agent's exact options), verify, then a fence: the agent's next writes are refused and change nothing", async () => {
    const top = mkdtempSync(join(tmpdir(), 'standby-receive-agent-'));
    const cpu = join(top, 'standby');
    const state = join(top, 'state');
    mkdirSync(cpu);
    const pair = await startReceiverPair(cpu, state, (gpu) => {
      mkdirSync(join(gpu, 'src/deep'), { recursive: true });
      writeFileSync(join(gpu, 'src/deep/a.py'), 'a = 1\n');
      writeFileSync(join(gpu, "odd 'name' $x.txt"), 'odd\n');
    });
    try {
      const g = (p: string) => join(pair.gpu, p);
      assert.equal(readFileSync(join(cpu, 'src/deep/a.py'), 'utf8'), 'a = 1\n', 'the full reconcile went through the receiver');
      writeFileSync(g('src/deep/a.py'), 'a = 2\n');
      writeFileSync(g('new file.txt'), 'new\n');
      mkdirSync(g('made/inner'), { recursive: true });
      writeFileSync(g('made/inner/b.txt'), 'b\n');
      rmSync(g("odd 'name' $x.txt"));
      await pair.synced();
      assert.deepEqual(await pair.verify(), [], 'verify (a checksum dry run through the receiver) finds the copies equal');
      assert.equal(readFileSync(join(cpu, 'made/inner/b.txt'), 'utf8'), 'b\n');
      assert.equal(existsSync(join(cpu, "odd 'name' $x.txt")), false, 'the deletion arrived');
      // the receiver flushed each pass's last run in its session: no flush took a session of its own
      assert.ok(pair.logs.filter((l) => l.msg === 'rsync run done' && l.flushed === true).length >= 2, 'the full and the incremental pass were flushed by the receiver');
      assert.equal(pair.logs.filter((l) => l.msg === 'flush done').length, 0, 'no separate flush session');
      // the standby's folder held nothing: the receiver said so after mkdir -p, and the full pass wrote in place
      const inplace = pair.logs.filter((l) => l.msg === 'rsync run done').map((l) => l.inplace === true);
      assert.equal(inplace[0], true, 'the full pass wrote in place');
      assert.ok(inplace.length > 1 && inplace.slice(1).every((x) => !x), `the incremental passes did not: ${inplace.join(', ')}`);

      const f = await run(STANDBY_CLI, ['receive', '--fence', '1', '--state-dir', state], {}, 20_000, '');
      assert.equal(f.code, 0, f.stderr);
      const before = snapshot(cpu);
      const failed = pair.engine.status().failedPasses;
      writeFileSync(g('after-fence.txt'), 'must not arrive\n');
      rmSync(g('new file.txt'));
      await waitFor('a refused pass', () => pair.engine.status().failedPasses > failed, { timeoutMs: 10_000 });
      assert.match(pair.engine.status().lastError?.message ?? '', /STANDBY_ERR_EPOCH_STALE/);
      assert.equal(pair.engine.pushing, false, 'refused by the standby: the agent stops pushing, no retries');
      const refused = pair.engine.status().failedPasses;
      writeFileSync(g('later.txt'), 'must not be tried\n');
      await new Promise((r) => setTimeout(r, 800)); // longer than a batch delay plus a retry
      assert.equal(pair.engine.status().failedPasses, refused, 'no pass tried after the refusal');
      assert.deepEqual(snapshot(cpu), before, 'nothing changed on the standby');
    } finally {
      await pair.close();
      rmSync(top, { recursive: true, force: true });
    }
  });
});
