// The sync contract with every rsync users' hosts run, on either end: upstream
// 3.1.3 (Ubuntu 20.04) to 3.5.0 and Debian 12's 3.2.7-1+deb12u6 (the
// standby's image, whose hardened receiver refuses --delete-missing-args).
// Each version goes on the sender (a GPU host syncing to a Debian 12
// standby), on the receiver (the standby's rsync restoring towards a host with
// that version) and on both. Every run is real: the agent as users run it,
// with the version first on its PATH; sshd on loopback whose sessions get the
// receiver's version first on theirs; the standby's receiver as the forced
// command. Versions run side by side; the last test prints the table.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { startAgent, type Agent } from '../fixtures/agent-process.ts';
import { run } from '../fixtures/cli-run.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { DEBIAN_12, pathWith, upstreamBuilds, type RsyncBuild } from '../fixtures/rsync-versions.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { snapshot } from '../fixtures/tree-snapshot.ts';
import { waitFor } from '../fixtures/wait-for.ts';

/** Names rsync, a shell or a filter rule could misread; each is created, edited, renamed and deleted. */
const ODD = ['with space.txt', 'new\nline.txt', "quote'\"$(x).txt", '-dash-first.txt', 'st*r.txt', 'q?.txt', '[br]acket.txt', 'back\\slash.txt', '+ plus.txt', '- minus.txt', '#hash.txt', '!', 'ünïcødé-名前.txt', ' lead and trail '];
/** the folder moved out of the workspace: more than half of the tree, so the deletion guard holds it */
const BIG = 70;

/** The tree the GPU has when the agent starts: the first full reconcile brings it. */
function seed(gpu: string): void {
  mkdirSync(join(gpu, 'src/pkg'), { recursive: true });
  writeFileSync(join(gpu, 'src/pkg/mod.py'), 'x = 1\n');
  for (const name of ODD) writeFileSync(join(gpu, 'src', name), `content of ${name}\n`);
  mkdirSync(join(gpu, 'empty/inner'), { recursive: true });
  symlinkSync('pkg/mod.py', join(gpu, 'src/link-to-mod'));
  symlinkSync('/nonexistent/target', join(gpu, 'src/dangling'));
  writeFileSync(join(gpu, 'run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(gpu, 'run.sh'), 0o750);
  writeFileSync(join(gpu, 'secret.txt'), 'private\n');
  chmodSync(join(gpu, 'secret.txt'), 0o600);
  mkdirSync(join(gpu, 'old/deep/er'), { recursive: true });
  writeFileSync(join(gpu, 'old/deep/er/f.txt'), 'old\n');
  mkdirSync(join(gpu, 'big'));
  for (let i = 0; i < BIG; i++) writeFileSync(join(gpu, 'big', `f${i}.bin`), `big ${i}\n`);
}

/** What a developer does next: each kind of change the watcher reports, on odd names too. */
function edit(gpu: string): void {
  const g = (p: string) => join(gpu, p);
  writeFileSync(g('src/pkg/mod.py'), 'x = 2  # edited\n');
  renameSync(g('src/pkg'), g('src/package')); // a folder renamed
  renameSync(g('run.sh'), g('start.sh')); // a file renamed
  chmodSync(g('secret.txt'), 0o640); // a mode
  rmSync(g('old'), { recursive: true }); // a folder tree deleted
  rmSync(g('src/dangling'));
  symlinkSync('package/mod.py', g('src/dangling')); // a link retargeted
  rmSync(g('empty/inner'), { recursive: true }); // an empty folder deleted
  mkdirSync(g('fresh/empty'), { recursive: true }); // a new folder, an empty one in it
  writeFileSync(g('fresh/new.txt'), 'new\n');
  for (const [i, name] of ODD.entries()) {
    const file = g(`src/${name}`);
    if (i % 3 === 0) writeFileSync(file, `edited ${name}\n`);
    else if (i % 3 === 1) renameSync(file, g(`src/renamed ${name}`));
    else rmSync(file);
  }
}

interface Outcome {
  ok: boolean;
  ms: number;
  error?: string;
}

/** One run of the contract: `sender`'s rsync on the GPU, `receiver`'s behind the standby's sshd. */
async function contract(sender: RsyncBuild, receiver: RsyncBuild): Promise<void> {
  const top = mkdtempSync(join(tmpdir(), 'standby-matrix-'));
  const gpu = join(top, 'gpu');
  const cpu = join(top, 'standby/workspace'); // under a folder that does not exist yet: the agent makes it (no --mkpath before 3.2.3)
  const state = join(top, 'state');
  mkdirSync(gpu);
  mkdirSync(join(top, 'agent'));
  seed(gpu);
  let sshd: Sshd | undefined;
  let agent: Agent | undefined;
  try {
    sshd = await startSshd({
      keyOptions: `command="${STANDBY_CLI} receive --root ${cpu} --state-dir ${state}",restrict`,
      path: pathWith(receiver),
    });
    agent = await startAgent({
      src: gpu,
      dst: cpu,
      dir: join(top, 'agent'),
      target: sshd,
      settings: { hostId: 'gpu-matrix', logLevel: 'debug', sync: { delayMs: 100, maxDelayMs: 500, retryMinMs: 50, retryMaxMs: 500, exclude: [] } },
      env: { PATH: pathWith(sender) },
    });
    const a = agent;
    await a.ready(60_000);
    const versions = (await a.status())['rsync'] as { here: string; standby: string };
    assert.deepEqual(versions, { here: sender.name.replace(/-.*/, ''), standby: receiver.name.replace(/-.*/, '') }, 'the agent checked both ends');
    assert.deepEqual(snapshot(cpu, { modes: true }), snapshot(gpu, { modes: true }), 'the first full reconcile');

    edit(gpu);
    await a.settled(60_000, { quietMs: 300 }); // the watcher quiet too: the step's changes all seen
    assert.deepEqual(snapshot(cpu, { modes: true }), snapshot(gpu, { modes: true }), 'creates, edits, renames, deletes, modes, links, empty folders, odd names');
    // each pass's flush was the receiver's, after rsync ended in the same session (STANDBY_FLUSH=1): none took a session of its own
    const logged = (): { msg: string; flushed?: boolean }[] =>
      readFileSync(a.logFile, 'utf8').split('\n').slice(0, -1).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; flushed?: boolean }); // the last, maybe cut, line left out
    // the log reaches its file through a pipe: wait for the lines, not for more passes
    await waitFor('the full and the incremental passes flushed by the receiver', () => logged().filter((l) => l.msg === 'rsync run done' && l.flushed === true).length >= 2, { timeoutMs: 10_000 });
    assert.equal(logged().filter((l) => l.msg === 'flush done').length, 0, 'no flush in a session of its own');
    // the standby's folder was made by the first pass: it held nothing, so that pass wrote in place (and only that one)
    const runs = logged().filter((l) => l.msg === 'rsync run done').map((l) => (l as { inplace?: boolean }).inplace === true);
    assert.equal(runs[0], true, 'the first full pass wrote in place');
    assert.ok(runs.slice(1).every((x) => !x), `no later run wrote in place: ${runs.join(', ')}`);

    // a folder moved out of the workspace: the guard counts what it held (rsync's dry run of the deletions) and holds it
    renameSync(join(gpu, 'big'), join(top, 'big-moved-out'));
    const held = await waitFor('the guard to hold the deletions', async () => ((await a.status())['held'] as { deletions: number } | null) ?? undefined, { timeoutMs: 60_000 });
    assert.ok(held.deletions >= BIG, `the guard counted the folder's files: ${JSON.stringify(held)}`);
    assert.ok(existsSync(join(cpu, 'big/f0.bin')), 'nothing deleted while held');
    const confirmed = await fetch(`${a.url}/confirm-deletes`, { method: 'POST', signal: AbortSignal.timeout(5_000) });
    assert.equal(confirmed.status, 200);
    await waitFor('the confirmed deletions applied', async () => !existsSync(join(cpu, 'big')) && ((await a.status())['held'] === null), { timeoutMs: 60_000 });
    await a.settled(60_000, { quietMs: 300 }); // the watcher quiet too: the step's changes all seen
    assert.deepEqual(snapshot(cpu, { modes: true }), snapshot(gpu, { modes: true }), 'after the confirmed deletions');

    // verify, with the sender's rsync: a match, then a difference made on the standby
    const verify = (): ReturnType<typeof run> => run(STANDBY_CLI, ['verify', '--config', join(top, 'agent/agent.json')], { PATH: pathWith(sender) }, 30_000, '');
    const same = await verify();
    assert.equal(same.code, 0, `verify: ${same.stdout}${same.stderr}`);
    assert.match(same.stdout, /no differences/);
    writeFileSync(join(cpu, 'fresh/new.txt'), 'changed on the standby\n');
    const differs = await verify();
    assert.equal(differs.code, 1, `verify: ${differs.stdout}${differs.stderr}`);
    assert.match(differs.stdout, /content differs\s+\S*\/fresh\/new\.txt/);

    // fenced: the standby moves to epoch 1; this writer (epoch 0) is refused and changes nothing
    const fence = await run(STANDBY_CLI, ['receive', '--fence', '1', '--state-dir', state], { PATH: pathWith(receiver) }, 20_000, '');
    assert.equal(fence.code, 0, fence.stderr);
    const standbyBefore = snapshot(cpu);
    writeFileSync(join(gpu, 'after-fence.txt'), 'must not arrive\n');
    writeFileSync(join(gpu, 'fresh/new.txt'), 'must not overwrite the standby\n');
    await waitFor('the agent refused by the fence', async () => /refused this agent's epoch/.test(((await a.status())['lastError'] as { message: string } | null)?.message ?? ''), { timeoutMs: 60_000 });
    assert.deepEqual(snapshot(cpu), standbyBefore, 'a fenced writer changes nothing on the standby');
  } catch (err) {
    throw new Error(`${(err as Error).message}\nagent log tail:\n${agent?.logTail() ?? '(not started)'}`, { cause: err });
  } finally {
    await agent?.stop();
    await sshd?.close();
    rmSync(top, { recursive: true, force: true });
  }
}

type Side = 'sender' | 'receiver' | 'both';
const SIDES: { side: Side; label: string; pair: (v: RsyncBuild) => [RsyncBuild, RsyncBuild] }[] = [
  { side: 'sender', label: 'GPU sync: VERSION -> Debian 12 standby', pair: (v) => [v, DEBIAN_12] },
  { side: 'receiver', label: 'restore: Debian 12 standby -> VERSION', pair: (v) => [DEBIAN_12, v] },
  { side: 'both', label: 'VERSION on both ends', pair: (v) => [v, v] },
];

describe('rsync versions on either end of a transfer', { concurrency: 3 }, () => {
  const outcomes = new Map<string, Outcome>();
  // one test per pairing; Debian 12's with itself is one run that fills its three cells
  const versions = [...upstreamBuilds(), DEBIAN_12];
  for (const v of versions) {
    for (const s of SIDES) {
      const [sender, receiver] = s.pair(v);
      if (v === DEBIAN_12 && s.side !== 'both') continue;
      test(`${sender.name} -> ${receiver.name} (${s.label.replace('VERSION', v.name)})`, async () => {
        const started = performance.now();
        try {
          await contract(sender, receiver);
          outcomes.set(`${v.name}/${s.side}`, { ok: true, ms: performance.now() - started });
        } catch (err) {
          outcomes.set(`${v.name}/${s.side}`, { ok: false, ms: performance.now() - started, error: (err as Error).message.split('\n')[0] });
          throw err;
        }
      });
    }
  }

  after(() => {
    const cell = (v: RsyncBuild, side: Side): string => {
      const o = outcomes.get(`${v.name}/${v === DEBIAN_12 ? 'both' : side}`);
      return o === undefined ? 'not run' : `${o.ok ? 'pass' : 'FAIL'} ${(o.ms / 1000).toFixed(1)} s`;
    };
    const rows = versions.map((v) => `| ${v === DEBIAN_12 ? `Debian 12 ${v.name}` : v.name} | ${SIDES.map((s) => cell(v, s.side)).join(' | ')} |`);
    const table = [
      '',
      'rsync version matrix (sync contract: creates, edits, deletes, renames, empty folders, symlinks, modes, odd names, guard count, verify, fenced writer)',
      '| rsync | on the sender (GPU -> Debian 12 standby) | on the receiver (restore: Debian 12 -> host) | on both |',
      '| --- | --- | --- | --- |',
      ...rows,
      '',
    ].join('\n');
    process.stdout.write(table + '\n');
  });
});
