// The standby's receiver (`standby receive`, an authorized_keys forced
// command) and its fence (`standby receive --fence`), with a real sshd, real
// rsync and real processes: what writers may do, what they may not (and that
// a refusal changes nothing), the epoch check, the lock, and the fence waiting
// for or killing an in-flight writer of the old epoch.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { splitCommand } from '../../agent/command-words.ts';
import { parseRequest, type RequestPolicy } from '../../agent/receive-request.ts';
import { liveReceivers } from '../../agent/receiver-registry.ts';
import { runRemote } from '../../agent/ssh.ts';
import type { StandbyTarget } from '../../agent/config.ts';
import { StandbyError } from '../../errors.ts';
import { run, type Run } from '../fixtures/cli-run.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { startSshd, type Sshd } from '../fixtures/sshd.ts';
import { snapshot } from '../fixtures/tree-snapshot.ts';
import { startPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';


/** rsync is writing `name` into `dir`: its temporary file (.name.XXXXXX) or, whole, in --delay-updates' holding folder, and not yet in place */
function inFlight(dir: string, name: string): boolean {
  if (!existsSync(dir) || existsSync(join(dir, name))) return false;
  return existsSync(join(dir, '.~tmp~', name)) || readdirSync(dir).some((f) => f.startsWith(`.${name}.`));
}

function sha(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

describe('splitting SSH_ORIGINAL_COMMAND like a shell, without one', () => {
  // the shapes rsync 3.x and the agent were seen to send (captured from real runs)
  const cases: { name: string; command: string; words?: string[]; error?: RegExp }[] = [
    { name: 'an incremental pass with an epoch', command: 'STANDBY_EPOCH=5 rsync --server -logDtprIRe.iLsfxCIvu --timeout=30 --delete --force --stats --delay-updates . /ws/', words: ['STANDBY_EPOCH=5', 'rsync', '--server', '-logDtprIRe.iLsfxCIvu', '--timeout=30', '--delete', '--force', '--stats', '--delay-updates', '.', '/ws/'] },
    { name: "rsync's backslash escapes", command: "rsync --server -logDtpre.iLsfxCIvu . /tmp/d\\'q\\\"\\$x\\\\y\\ z/", words: ['rsync', '--server', '-logDtpre.iLsfxCIvu', '.', '/tmp/d\'q"$x\\y z/'] },
    { name: 'an escaped tab', command: 'rsync . /a\\\tb/', words: ['rsync', '.', '/a\tb/'] },
    { name: 'escaped shell characters', command: 'rsync . /a\\;b\\|c\\&d\\(e\\)\\<f\\>\\`g\\`\\#h\\!\\{\\}/', words: ['rsync', '.', '/a;b|c&d(e)<f>`g`#h!{}/'] },
    { name: "the agent's single-quoted flush", command: "STANDBY_EPOCH=5 sync -f '/tmp/dst dir'", words: ['STANDBY_EPOCH=5', 'sync', '-f', '/tmp/dst dir'] },
    { name: "a single quote inside single quotes, the agent's way", command: "sync -f '/a'\\''b'", words: ['sync', '-f', "/a'b"] },
    { name: 'double quotes', command: 'sync -f "/a b\\"c"', words: ['sync', '-f', '/a b"c'] },
    { name: 'globs and = stay literal', command: 'rsync . /x/st*r/[a]=,%^/', words: ['rsync', '.', '/x/st*r/[a]=,%^/'] },
    { name: 'a command list', command: 'rsync --server . /ws/; rm -rf /', error: /";" means something to a shell/ },
    { name: 'a pipe', command: 'cat /etc/shadow | nc x 1', error: /"\|"/ },
    { name: 'a variable', command: 'rsync . $HOME/x', error: /"\$"/ },
    { name: 'a command substitution in double quotes', command: 'rsync . "/ws/$(id)"', error: /would be expanded/ },
    { name: 'a backquote', command: 'rsync . `id`', error: /"`"/ },
    { name: 'a comment', command: 'rsync . /ws/ #x', error: /comment/ },
    { name: 'a line break', command: 'rsync . /ws/\ntouch /x', error: /line break/ },
    { name: 'an open quote', command: "sync -f '/ws", error: /not closed/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      if (c.error) assert.throws(() => splitCommand(c.command), c.error);
      else assert.deepEqual(splitCommand(c.command).map((w) => w.text), c.words);
    });
  }
});

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
    { name: "the agent's flush", command: (t) => `STANDBY_EPOCH=7 sync -f '${t}/ws'`, kind: 'sync', epoch: 7, target: (t) => `${t}/ws` },
    { name: "the agent's folders (rsync before 3.2.3 has no --mkpath)", command: (t) => `STANDBY_EPOCH=7 mkdir -p '${t}/ws/new/deep' '${t}/extra'`, kind: 'mkdir', epoch: 7, target: (t) => `${t}/ws/new/deep ${t}/extra` },
  ];
  for (const c of ok) {
    test(`accepted: ${c.name}`, () => {
      const r = parseRequest(c.command(top), { ...policy, cwd: join(top, 'ws') });
      assert.equal(r.kind, c.kind);
      assert.ok(r.kind === 'rsync' || r.kind === 'sync' || r.kind === 'mkdir');
      assert.equal(r.epoch, c.epoch);
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
    { name: '--inplace', command: (t) => `rsync --server ${R} --inplace . ${t}/ws/`, reason: /in place/ },
    { name: '--partial', command: (t) => `rsync --server ${R} --partial . ${t}/ws/`, reason: /in place/ },
    { name: '--temp-dir outside', command: (t) => `rsync --server ${R} --temp-dir /tmp . ${t}/ws/`, reason: /--temp-dir is not accepted/ },
    { name: '--backup-dir', command: (t) => `rsync --server ${R} --backup-dir /tmp/bk . ${t}/ws/`, reason: /--backup-dir is not accepted/ },
    { name: '--log-file', command: (t) => `rsync --server ${R} --log-file=/etc/x . ${t}/ws/`, reason: /--log-file=\/etc\/x is not accepted/ },
    { name: '-K (follows symlinked folders)', command: (t) => `rsync --server -Klogtpre.iLsfxCIvu . ${t}/ws/`, reason: /-K is not accepted/ },
    { name: 'another variable', command: (t) => `LD_PRELOAD=/tmp/x.so rsync --server ${R} . ${t}/ws/`, reason: /only STANDBY_EPOCH/ },
    { name: 'a bad epoch', command: (t) => `STANDBY_EPOCH=-1 rsync --server ${R} . ${t}/ws/`, reason: /whole number/ },
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

describe('the receiver as the forced command of a real sshd', () => {
  let top = '';
  let root = '';
  let state = '';
  let outside = '';
  let src = '';
  let sshd: Sshd;
  const children: ChildProcess[] = [];

  before(async () => {
    top = mkdtempSync(join(tmpdir(), 'standby-receive-'));
    root = join(top, 'standby');
    state = join(top, 'state');
    outside = join(top, 'outside');
    src = join(top, 'src');
    for (const d of [root, outside, src]) mkdirSync(d);
    writeFileSync(join(root, 'kept.txt'), 'on the standby before any test\n');
    writeFileSync(join(src, 'a.txt'), 'a\n');
    sshd = await startSshd({ keyOptions: `command="${STANDBY_CLI} receive --root ${root} --state-dir ${state}",restrict` });
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await sshd?.close();
    rmSync(top, { recursive: true, force: true });
  });

  const dest = (path: string): string => `${sshd.user}@${sshd.host}:${path}`;
  /** rsync from this host into the standby, as the agent runs it: the epoch travels in --rsync-path */
  const rsyncTo = (epoch: number | undefined, args: string[], input?: string): Promise<Run> =>
    run('rsync', ['-e', sshd.rsyncShell(), ...(epoch === undefined ? [] : [`--rsync-path=STANDBY_EPOCH=${epoch} rsync`]), ...args], { LC_ALL: 'C' }, 20_000, input ?? '');
  const ssh = (command: string[]): Promise<Run> => run('ssh', [...sshd.clientArgs(), `${sshd.user}@${sshd.host}`, ...command], {}, 20_000, '');
  const fence = async (epoch: number, waitMs = 10_000): Promise<Run & { result?: Record<string, unknown> }> => {
    const r = await run(STANDBY_CLI, ['receive', '--fence', String(epoch), '--wait-ms', String(waitMs), '--state-dir', state], {}, 20_000, '');
    return { ...r, result: r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
  };
  const storedEpoch = (): number => (existsSync(join(state, 'epoch')) ? Number(readFileSync(join(state, 'epoch'), 'utf8')) : 0);
  const lockFree = (): boolean => spawnSync('flock', ['-x', '-n', join(state, 'lock'), 'true']).status === 0;
  /**
   * A receiver started as sshd starts it, with a connection that stays open: its stdin is a pipe from a
   * process of its own (as sshd's channel is), so killing the receiver alone does not end its rsync's
   * input (a child's stdin pipe from this process would be closed by Node when the child exits).
   * rsync --server waits for the protocol: the lock stays held until end() closes the connection.
   */
  const startReceiver = (epoch: number, path: string): { child: ChildProcess; end: () => void } => {
    const connection = spawn('cat', [], { stdio: ['pipe', 'pipe', 'ignore'] });
    const child = spawn(STANDBY_CLI, ['receive', '--root', root, '--state-dir', state], {
      env: { ...process.env, SSH_ORIGINAL_COMMAND: `STANDBY_EPOCH=${epoch} rsync --server -logDtpre.iLsfxCIvu --delay-updates . ${path}` },
      stdio: [connection.stdout, 'ignore', 'ignore'],
    });
    children.push(child, connection);
    return { child, end: () => connection.stdin.end() };
  };
  const exited = (child: ChildProcess): Promise<number | null> =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));

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

  test('fence: writes the epoch, is idempotent, refuses a lower one', async () => {
    const base = storedEpoch();
    const first = await fence(base + 2);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(first.result, { epoch: base + 2, previousEpoch: base, waitedMs: first.result!['waitedMs'], killed: 0, signalled: [], locked: true, revoked: [] });
    const again = await fence(base + 2);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.result!['previousEpoch'], base + 2, 'the same epoch again is fine');
    const lower = await fence(base + 1);
    assert.equal(lower.code, 79);
    assert.match(lower.stderr, /already fenced at epoch \d+, newer than the requested \d+.*\[STANDBY_ERR_EPOCH_STALE\]/);
    assert.equal(storedEpoch(), base + 2);
    assert.equal(readFileSync(join(state, 'epoch'), 'utf8'), `${base + 2}\n`);
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

  test('the fence waits for an in-flight transfer of the old epoch, which lands whole before it returns', async () => {
    const epoch = storedEpoch();
    const big = join(src, 'slow/big.bin');
    mkdirSync(dirname(big), { recursive: true });
    writeFileSync(big, randomBytes(1 << 20));
    const transfer = rsyncTo(epoch, ['-a', '--delay-updates', '--bwlimit=1000', `${src}/slow/`, dest(`${root}/slow/`)]);
    await waitFor('the transfer in flight', () => inFlight(join(root, 'slow'), 'big.bin'), { timeoutMs: 10_000, everyMs: 5 });
    const f = await fence(epoch + 1);
    assert.equal(f.code, 0, f.stderr);
    // the fence returned: the old writer is done, its file complete and in place
    assert.equal(sha(join(root, 'slow/big.bin')), sha(big), 'the whole file landed before the fence returned');
    assert.equal(f.result!['killed'], 0);
    assert.ok((f.result!['waitedMs'] as number) > 0);
    const r = await transfer;
    assert.equal(r.code, 0, r.stderr);
  });

  test('past its wait, the fence kills the old transfer, which leaves no partial file in place; then only the new epoch writes', async () => {
    const epoch = storedEpoch();
    const big = join(src, 'slower/big.bin');
    mkdirSync(dirname(big), { recursive: true });
    writeFileSync(big, randomBytes(2 << 20));
    const transfer = rsyncTo(epoch, ['-a', '--delay-updates', '--bwlimit=200', `${src}/slower/`, dest(`${root}/slower/`)]);
    await waitFor('the transfer in flight', () => inFlight(join(root, 'slower'), 'big.bin'), { timeoutMs: 10_000, everyMs: 5 });
    const started = performance.now();
    const f = await fence(epoch + 1, 300);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.result!['killed'], 1, JSON.stringify(f.result));
    assert.ok(performance.now() - started < 5_000, 'killed at once after the wait, not after the transfer');
    const r = await transfer;
    assert.notEqual(r.code, 0, 'the old transfer was cut');
    assert.equal(existsSync(join(root, 'slower/big.bin')), false, 'no partial file in place');
    assert.deepEqual(liveReceivers(state), [], 'no receiver left');

    const stale = await rsyncTo(epoch, ['-a', '--delay-updates', `${src}/slower/`, dest(`${root}/slower/`)]);
    assert.match(stale.stderr, /STANDBY_ERR_EPOCH_STALE/);
    assert.equal(existsSync(join(root, 'slower/big.bin')), false);
    const fresh = await rsyncTo(epoch + 1, ['-a', '--delay-updates', `${src}/slower/`, dest(`${root}/slower/`)]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(sha(join(root, 'slower/big.bin')), sha(big));
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

  test('the fence kills the orphaned rsync of a killed receiver of the old epoch', async () => {
    const epoch = storedEpoch();
    const { child, end } = startReceiver(epoch, `${root}/orphan/`);
    const record = await waitFor('the receiver running rsync', () => liveReceivers(state).find((r) => r.pid === child.pid && r.child));
    child.kill('SIGKILL');
    await exited(child);
    const f = await fence(epoch + 1, 200);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.result!['killed'], 1);
    assert.deepEqual((f.result!['signalled'] as { pid: number }[]).map((s) => s.pid), [record.pid]);
    assert.ok(lockFree(), 'the lock is free after the fence');
    assert.equal(existsSync(join(root, 'orphan')), false);
    end();
  });

  test('a fence run again at the current epoch (a restarted proxy) leaves writers of that epoch alone', async () => {
    const epoch = storedEpoch();
    const { child, end } = startReceiver(epoch, `${root}/current/`);
    try {
      await waitFor('the receiver running rsync', () => liveReceivers(state).find((r) => r.pid === child.pid && r.child));
      const started = performance.now();
      const f = await fence(epoch, 200);
      assert.equal(f.code, 0, f.stderr);
      assert.deepEqual({ ...f.result, waitedMs: 0 }, { epoch, previousEpoch: epoch, waitedMs: 0, killed: 0, signalled: [], locked: false, revoked: [] });
      assert.ok(performance.now() - started < 2_000, 'no kill rounds for writers of the current epoch');
      assert.equal(child.exitCode, null, 'the current writer still runs');
    } finally {
      end();
    }
    assert.notEqual(await exited(child), 0, "the receiver ends with its rsync, cut by the closed connection (rsync's exit code)");
  });

  test('a writer of the new epoch is not held up by a fence waiting for an old one', async () => {
    const epoch = storedEpoch();
    // an old-epoch receiver holds the lock, so the fence waits; a writer of the new epoch passes meanwhile
    const { child: old, end } = startReceiver(epoch, `${root}/queued-old/`);
    await waitFor('the old receiver running rsync', () => liveReceivers(state).find((r) => r.pid === old.pid && r.child));
    const fencing = fence(epoch + 1, 300);
    await waitFor('the epoch written', () => storedEpoch() === epoch + 1);
    const fresh = await rsyncTo(epoch + 1, ['-a', `${src}/`, dest(`${root}/queued-new/`)]);
    assert.equal(fresh.code, 0, fresh.stderr);
    const f = await fencing;
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.result!['killed'], 1, JSON.stringify(f.result));
    assert.notEqual(await exited(old), 0, 'the old receiver ends with its killed rsync');
    end();
    assert.ok(existsSync(join(root, 'queued-new/a.txt')));
  });
});

describe("the agent's own passes through the receiver", () => {
  test("full and incremental passes (the agent's exact options), verify, then a fence: the agent's next writes are refused and change nothing", async () => {
    const top = mkdtempSync(join(tmpdir(), 'standby-receive-agent-'));
    const cpu = join(top, 'standby');
    const state = join(top, 'state');
    mkdirSync(cpu);
    const pair = await startPair({
      cpu,
      sshd: { keyOptions: `command="${STANDBY_CLI} receive --root ${cpu} --state-dir ${state}",restrict` },
      settings: { standby: { rsyncPath: 'STANDBY_EPOCH=0 rsync' } },
      before: (gpu) => {
        mkdirSync(join(gpu, 'src/deep'), { recursive: true });
        writeFileSync(join(gpu, 'src/deep/a.py'), 'a = 1\n');
        writeFileSync(join(gpu, "odd 'name' $x.txt"), 'odd\n');
      },
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
