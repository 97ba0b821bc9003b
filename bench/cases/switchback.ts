// bench/switchback: the restore to a new GPU, timed. The standby's agent
// pushes its workspace (100,000 files: many small sources, a few large
// checkpoints) to an empty workspace behind a `standby receive` receiver on a
// real loopback sshd: its first full pass, then incremental passes for 500
// changes (edits, creations, renames, deletions) made on the source while the
// restore runs. The clock stops when the agent has acknowledged everything and
// a checksum comparison of both trees finds no difference. Before and after
// each agent run, through the same sshd and the same receiver: a raw
// `rsync -a --delete` of the same tree to an empty folder, the yardstick
// (target: the agent within 1.2x of the two around it), and the same plus the
// flush the agent makes so that what it acknowledges is on disk (`sync -f`),
// and the same raw rsync with ssh offering the agent's ciphers (AES-GCM first,
// agent/ssh-ciphers.ts), to show what the cipher alone is worth.
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { classifyItem, type Difference } from '../../agent/verify.ts';
import { runRsync } from '../../agent/rsync.ts';
import { cipherArgs } from '../../agent/ssh-ciphers.ts';
import { quoteWord } from '../../protocol/command-words.ts';
import { agentUnavailable, startAgent, type Agent } from '../../test/fixtures/agent-process.ts';
import { STANDBY_CLI } from '../../test/fixtures/program-paths.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { megabytes, percentile, seconds, type CaseResult } from '../report.ts';
import { removeOnInterrupt, removeScratch, scratchDir } from '../scratch.ts';
import { makeTree } from '../tree.ts';
import { settleDisk } from '../disk-settle.ts';
import { seededRandom } from '../../core/seeded-random.ts';

const FILES = Number(process.env.BENCH_FILES ?? 100_000);
const BIG_FILES = 4;
const BIG_BYTES = 32 * 1024 * 1024;
const CHANGES = 500;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** BENCH_KEEP_LOG=PREFIX keeps each agent's debug log as PREFIX-<round>.log (its passes, each rsync run and flush timed) */
const KEEP_LOG = process.env.BENCH_KEEP_LOG;
const TARGET = 1.2;
/** a round is judged when its two raw rsyncs (before and after the agent's run) are within this ratio of each other */
const STEADY = 1.25;
/** the 500 changes are spread over this share of the raw rsync's time, from the agent's spawn */
const CHANGE_WINDOW = 0.8;
const RESTORE_TIMEOUT_MS = 15 * 60_000;
/**
 * How often the run asks the agent whether its first full pass landed. Every
 * 20 ms (the fixture's default) cost this process 0.7 to 1.9 CPU-s more per
 * 50,000-file pass than every 500 ms, on the 2-core machine that also runs the
 * rsync being timed (the raw rsync runs unasked). The time ready is read from
 * the agent's log; the clock still stops within 250 ms of the last pass (the
 * incremental pass for the changes comes after the full one).
 */
const READY_POLL_MS = 250;


/** Every file under `dir`, relative to it. */
function listFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, p));
    else out.push(p);
  }
  return out;
}

/** The workspace: FILES - BIG_FILES small sources (bench/tree.ts) and BIG_FILES checkpoints of BIG_BYTES. */
function makeWorkspace(root: string): { files: number; bytes: number; ms: number } {
  const started = performance.now();
  const tree = makeTree(join(root, 'src'), FILES - BIG_FILES);
  mkdirSync(join(root, 'checkpoints'));
  const chunk = Buffer.alloc(1024 * 1024);
  const next = seededRandom(7);
  for (let i = 0; i < BIG_FILES; i++) {
    const fd = openSync(join(root, 'checkpoints', `step-${i}.pt`), 'w');
    for (let left = BIG_BYTES; left > 0; left -= chunk.length) {
      for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((next() * 2 ** 32) >>> 0, j);
      writeSync(fd, chunk, 0, Math.min(left, chunk.length));
    }
    closeSync(fd);
  }
  return { files: tree.files + BIG_FILES, bytes: tree.bytes + BIG_FILES * BIG_BYTES, ms: performance.now() - started };
}

interface ChangeCounts {
  edits: number;
  creations: number;
  renames: number;
  deletions: number;
  folderRenames: number;
}

/**
 * CHANGES changes on the source, one every `everyMs` (the pace of a developer
 * and a training job, not imitated work): edits of small files (half of them
 * the same size, so only a content comparison sees them) and one rewrite of a
 * checkpoint, new files (some in new folders), renames (a few of whole
 * folders), deletions, among `files` (the sources under root, listed before
 * the agent starts: the listing is the bench's work, not the agent's). Resolves
 * when the last one is made.
 */
async function makeChanges(root: string, files: string[], everyMs: number, seed: number): Promise<ChangeCounts> {
  const next = seededRandom(seed);
  const pick = (): string => {
    for (;;) {
      const i = Math.floor(next() * files.length);
      const p = files[i]!;
      if (p !== '') {
        files[i] = '';
        return p;
      }
    }
  };
  const counts: ChangeCounts = { edits: 0, creations: 0, renames: 0, deletions: 0, folderRenames: 0 };
  const started = performance.now();
  for (let i = 0; i < CHANGES; i++) {
    const wait = started + i * everyMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const roll = i % 10;
    if (i === CHANGES / 2) {
      // the training job writes a new version of a checkpoint: temp name, then renamed over the old one
      const tmp = join(root, 'checkpoints', '.step-0.pt.tmp');
      const data = readFileSync(join(root, 'checkpoints', 'step-1.pt'));
      data.writeUInt32LE(seed, 0);
      writeFileSync(tmp, data);
      renameSync(tmp, join(root, 'checkpoints', 'step-0.pt'));
      counts.edits++;
    } else if (roll < 4) {
      const p = pick();
      const old = readFileSync(join(root, p));
      const fresh = Buffer.from(old);
      fresh.write(`edit ${seed}-${i} `.padEnd(24, '.'), 0); // same size, same second: only the content says it changed
      writeFileSync(join(root, p), roll < 2 ? fresh : Buffer.concat([fresh, Buffer.from(`// more ${i}\n`)]));
      counts.edits++;
    } else if (roll < 7) {
      const dir = roll === 6 && i % 20 === 6 ? join(root, 'src', `new-${seed}-${i}`) : join(root, 'src', `added-${seed}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `file-${i}.ts`), `export const created = ${i}; // ${seed}\n`.repeat(1 + (i % 40)));
      counts.creations++;
    } else if (roll < 9) {
      if (i % 100 === 7) {
        // a folder renamed (a refactoring): its deletion and a new folder
        const leaf = pick();
        const dir = leaf.slice(0, leaf.lastIndexOf('/'));
        if (!dir.includes('-moved-')) {
          renameSync(join(root, dir), join(root, `${dir}-moved-${seed}-${i}`));
          for (let j = 0; j < files.length; j++) if (files[j]!.startsWith(`${dir}/`)) files[j] = '';
          counts.folderRenames++;
          continue;
        }
      }
      const p = pick();
      renameSync(join(root, p), join(root, `${p}.renamed`));
      counts.renames++;
    } else {
      rmSync(join(root, pick()));
      counts.deletions++;
    }
  }
  return counts;
}

/** Differences between two local trees, by checksum (what `standby verify` compares), or by size and mtime. */
async function differences(from: string, to: string, { checksum = true } = {}): Promise<Difference[]> {
  const r = await runRsync(['-a', '--dry-run', ...(checksum ? ['--checksum'] : []), '--delete', '--itemize-changes', `${from}/`, `${to}/`], { itemize: true }).result;
  if (r.code !== 0) throw new Error(`comparing ${from} with ${to} failed (${r.code}): ${r.stderr}`);
  return r.items.map((line) => classifyItem(line, to)).filter((d): d is Difference => d !== undefined);
}


interface RawRun {
  ms: number;
  flushMs: number;
}

/** `ciphers`: ssh offers the agent's cipher order (agent/ssh-ciphers.ts) instead of its own */
async function rawRun(sshd: Sshd, src: string, dst: string, { ciphers = false } = {}): Promise<RawRun> {
  const shell = [sshd.rsyncShell(), ...(ciphers ? cipherArgs().map(quoteWord) : [])].join(' ');
  const r = await runRsync(['-a', '--delete', '-e', shell, `${src}/`, `${sshd.user}@${sshd.host}:${dst}/`]).result;
  if (r.code !== 0) throw new Error(`raw rsync failed (${r.code}): ${r.stderr}`);
  // the flush the agent makes after each pass, through the same receiver, as a separate figure
  const t0 = performance.now();
  execFileSync('ssh', [...sshd.clientArgs(), `${sshd.user}@${sshd.host}`, `sync -f ${dst}`]);
  const flushMs = performance.now() - t0;
  const diff = await differences(src, dst, { checksum: false }); // the yardstick: a sanity check is enough
  if (diff.length > 0) throw new Error(`raw rsync left ${diff.length} differences, e.g. ${JSON.stringify(diff[0])}`);
  return { ms: r.durationMs, flushMs };
}

interface AgentRun {
  /** spawn to the moment the agent had acknowledged every change and the trees compared equal */
  ms: number;
  /** spawn to ready (watches set, first full pass on disk) */
  readyMs: number;
  /** the first full pass itself, as the agent timed it */
  fullPassMs: number | undefined;
  /** spawn to "watching" (process start, config, every folder watched) */
  watchingMs: number | undefined;
  passes: number;
  changesMs: number;
  comparisons: number;
  counts: ChangeCounts;
}

interface LogLine {
  time: number;
  msg: string;
  durationMs?: number;
}

function readLog(file: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // a line cut by the stop: not needed
    }
  }
  return out;
}

async function agentRun(sshd: Sshd, src: string, dst: string, dir: string, everyMs: number, seed: number): Promise<AgentRun> {
  mkdirSync(dir, { recursive: true });
  const files = listFiles(src).filter((p) => p.startsWith('src/'));
  const spawnedAt = Date.now();
  const started = performance.now();
  const agent: Agent = await startAgent({
    src,
    dst,
    dir,
    target: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, sshOptions: sshd.sshOptions },
    settings: { hostId: 'bench-switchback', logLevel: 'debug' },
  });
  try {
    const changing = makeChanges(src, files, everyMs, seed).then((counts) => ({ counts, ms: performance.now() - started }));
    const polledReadyMs = await agent.ready(RESTORE_TIMEOUT_MS, { everyMs: READY_POLL_MS });
    const changed = await changing;
    // acknowledged by the agent, then checked: a comparison that finds a difference waits for the next pass
    let comparisons = 0;
    let passesChecked = -1;
    const deadline = performance.now() + RESTORE_TIMEOUT_MS;
    for (;;) {
      if (performance.now() > deadline) throw new Error(`the agent did not make ${dst} equal to ${src} within ${RESTORE_TIMEOUT_MS} ms: ${agent.logTail()}`);
      const s = await agent.status();
      if (s.ready && s.pending === 0 && s.watermark >= s.lastSeq && s.passes > passesChecked) {
        const at = performance.now();
        comparisons++;
        passesChecked = s.passes;
        const diff = await differences(src, dst);
        if (diff.length === 0) {
          const log = readLog(agent.logFile);
          const watching = log.find((l) => l.msg.startsWith('watching'));
          const ready = log.find((l) => l.msg.startsWith('first full reconcile done'));
          return {
            ms: at - started,
            readyMs: ready ? ready.time - spawnedAt : polledReadyMs,
            fullPassMs: ready?.durationMs,
            watchingMs: watching ? watching.time - spawnedAt : undefined,
            passes: s.passes,
            changesMs: changed.ms,
            comparisons,
            counts: changed.counts,
          };
        }
        process.stderr.write(`  not equal yet after pass ${s.passes}: ${diff.length} differences, e.g. ${JSON.stringify(diff[0])}\n`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await agent.stop();
    if (KEEP_LOG) copyFileSync(agent.logFile, `${KEEP_LOG}-${seed}.log`);
  }
}

export async function run(): Promise<CaseResult> {
  const unavailable = agentUnavailable();
  if (unavailable) throw new Error(unavailable);
  const tmp = scratchDir('standby-bench-switchback-');
  const standby = join(tmp, 'standby-workspace');
  const gpu = join(tmp, 'new-gpu');
  mkdirSync(gpu);
  // the new GPU's sshd, with the receiver laid down as the installer does: writes go only into its workspace
  const sshd = await startSshd({ keyOptions: `command="${STANDBY_CLI} receive --root ${gpu} --state-dir ${join(tmp, 'receiver-state')}",restrict` });
  removeOnInterrupt(sshd.dir);
  const made = makeWorkspace(standby);
  process.stderr.write(`  made the ${made.files}-file workspace (${megabytes(made.bytes)}) in ${seconds(made.ms)}\n`);
  const raws: RawRun[] = [];
  const rawsAes: RawRun[] = [];
  const agents: AgentRun[] = [];
  let floorMs = Infinity;
  const rawStep = async (label: string, dst: string, { ciphers = false } = {}): Promise<RawRun> => {
    const settledMs = await settleDisk(tmp);
    mkdirSync(dst);
    const r = await rawRun(sshd, standby, dst, { ciphers });
    if (!ciphers) floorMs = Math.min(floorMs, r.ms);
    process.stderr.write(`  ${label}: disk quiet after ${seconds(settledMs)}; raw rsync${ciphers ? ' (the agent\'s ciphers)' : ''} ${seconds(r.ms)} (flush ${seconds(r.flushMs)})\n`);
    return r;
  };
  // each raw rsync twice: with ssh's own cipher order (what a user's rsync gets) and with the agent's (AES-GCM first)
  const rawSteps = async (label: string, dst: string): Promise<void> => {
    raws.push(await rawStep(label, dst));
    rawsAes.push(await rawStep(label, `${dst}-aes`, { ciphers: true }));
  };
  try {
    // a warm-up raw rsync, not counted: the first copy after the tree was made once took 23 s where the
    // next took 4.5 s (a VM that had just booted), and the changes' pace is set from the raw rsync's time
    await rawStep('warm-up, not counted', join(gpu, 'warm-up'));
    // raw, agent, raw, agent, ..., raw: each agent run is judged against the raw rsyncs just before and after
    // it. This VM's speed changes by 2 to 4 times within minutes (the same raw rsync: 17.9, 21.2, 20.6, then
    // 5.9 and 5.5 s); a round whose two raw runs differ by more than STEADY is reported, not judged.
    await rawSteps('raw 1', join(gpu, 'raw-0'));
    for (let round = 0; round < ROUNDS; round++) {
      const settledMs = await settleDisk(tmp);
      // the changes' pace from the fastest raw rsync so far: one slow raw run must not spread them past the agent's full pass
      const a = await agentRun(sshd, standby, join(gpu, `agent-${round}`), join(tmp, `agent-${round}`), (CHANGE_WINDOW * floorMs) / CHANGES, round + 1);
      agents.push(a);
      process.stderr.write(`  agent ${round + 1}: disk quiet after ${seconds(settledMs)}; ${seconds(a.ms)} (ready ${seconds(a.readyMs)}, full pass ${seconds(a.fullPassMs)}, ${a.passes} passes)\n`);
      await rawSteps(`raw ${round + 2}`, join(gpu, `raw-${round + 1}`));
      // every copy stays until the case ends: deleting 100,000 files keeps this ext4 (mounted with
      // discard) busy well into the next run, which then measured anything from 7.6 s to 42 s
    }
  } finally {
    await sshd.close();
    removeScratch(tmp);
  }
  const med = (xs: (number | undefined)[]): number | undefined => percentile(xs.filter((x): x is number => x !== undefined), 50);
  const list = (xs: (number | undefined)[]): string => xs.map((x) => seconds(x)).join(', ');
  const raw = med(raws.map((r) => r.ms));
  const rawFlush = med(raws.map((r) => r.ms + r.flushMs));
  const agent = med(agents.map((a) => a.ms));
  const ratio = agent !== undefined && raw !== undefined ? agent / raw : undefined;
  const fromPass = agents.map((a) => (a.watchingMs === undefined ? undefined : a.ms - a.watchingMs));
  const agentFromPass = med(fromPass);
  const ratioFromPass = agentFromPass !== undefined && raw !== undefined ? agentFromPass / raw : undefined;
  // each agent run against the raw rsyncs on either side of it (their mean), when those two agree
  const steady = agents.map((_, i) => {
    const [before, after] = [raws[i]!.ms, raws[i + 1]!.ms];
    return Math.max(before, after) / Math.min(before, after) <= STEADY;
  });
  const around = (i: number, flush: boolean, rs: RawRun[]): number => {
    const [b, a] = [rs[i]!, rs[i + 1]!];
    return (b.ms + a.ms + (flush ? b.flushMs + a.flushMs : 0)) / 2;
  };
  const paired = (ms: (number | undefined)[], flush = false, rs = raws): (number | undefined)[] => ms.map((x, i) => (x === undefined ? undefined : x / around(i, flush, rs)));
  const judged = (xs: (number | undefined)[]): (number | undefined)[] => xs.map((x, i) => (steady[i] ? x : undefined));
  const pairedAll = paired(agents.map((a) => a.ms));
  const pairedFromPass = paired(fromPass);
  // the same against the raw rsync with the flush the agent makes (what it acknowledges is on disk; the raw rsync's copy is not)
  const durableAll = paired(agents.map((a) => a.ms), true);
  const durableFromPass = paired(fromPass, true);
  // and against the raw rsync whose ssh offers the agent's ciphers: what is left once the cipher is the same
  const sameCipherAll = paired(agents.map((a) => a.ms), false, rawsAes);
  const sameCipherFromPass = paired(fromPass, false, rawsAes);
  const rawAes = med(rawsAes.map((r) => r.ms));
  const ratios = (xs: (number | undefined)[], marked = true): string => xs.map((x, i) => (x === undefined ? '-' : `${x.toFixed(2)}x${marked && steady[i] === false ? ' (unsteady)' : ''}`)).join(', ');
  // the median over the steady rounds, with the rounds beside it
  const judgedCell = (xs: (number | undefined)[]): string => `${med(judged(xs))?.toFixed(2) ?? '-'}x; ${ratios(xs)}`;
  const verdict = (r: number | undefined): string => (r === undefined ? 'no steady round' : r <= TARGET ? 'met' : 'MISSED');
  const counts = agents[0]?.counts;
  return {
    tables: [
      {
        title: `Restore of a ${FILES.toLocaleString('en')}-file workspace to an empty new GPU, ${ROUNDS} agent runs, each between two raw rsyncs`,
        columns: ['system', 'restore (median)', 'rounds', 'vs raw rsync (medians)', 'vs the raw rsyncs before and after it (median of steady rounds; rounds)', 'target', 'verdict', 'the same, against raw rsync + sync -f', 'the same, against raw rsync with the agent\'s ssh ciphers'],
        rows: [
          ['raw rsync -a --delete through the receiver (no changes during it)', seconds(raw), list(raws.map((r) => r.ms)), '1.00x', '1.00x', '', '', '-', '-'],
          ['raw rsync -a --delete, then sync -f through the receiver', seconds(rawFlush), list(raws.map((r) => r.ms + r.flushMs)), raw && rawFlush ? `${(rawFlush / raw).toFixed(2)}x` : '-', (() => { const xs = raws.map((r) => (r.ms + r.flushMs) / r.ms); return `${med(xs)!.toFixed(2)}x; ${ratios(xs, false)}`; })(), '', '', '1.00x', '-'],
          [
            `raw rsync -a --delete, ssh offering the agent's ciphers (${cipherArgs().length > 0 ? 'AES-GCM first' : 'none here: ssh\'s own order'})`,
            seconds(rawAes),
            list(rawsAes.map((r) => r.ms)),
            raw && rawAes ? `${(rawAes / raw).toFixed(2)}x` : '-',
            (() => { const xs = rawsAes.map((r, i) => r.ms / raws[i]!.ms); return `${med(xs)!.toFixed(2)}x; ${ratios(xs, false)}`; })(),
            '',
            '',
            '-',
            '1.00x',
          ],
          [
            `standby agent: spawn, first full pass, incremental passes for ${CHANGES} changes made during it, until equal (checked)`,
            seconds(agent),
            list(agents.map((a) => a.ms)),
            ratio === undefined ? '-' : `${ratio.toFixed(2)}x`,
            judgedCell(pairedAll),
            `<= ${TARGET.toFixed(1)}x raw rsync`,
            verdict(med(judged(pairedAll))),
            judgedCell(durableAll),
            judgedCell(sameCipherAll),
          ],
          [
            'the same, from the start of its first full pass (an agent already running, as the standby\'s is when the new GPU is granted)',
            seconds(agentFromPass),
            list(fromPass),
            ratioFromPass === undefined ? '-' : `${ratioFromPass.toFixed(2)}x`,
            judgedCell(pairedFromPass),
            `<= ${TARGET.toFixed(1)}x raw rsync`,
            verdict(med(judged(pairedFromPass))),
            judgedCell(durableFromPass),
            judgedCell(sameCipherFromPass),
          ],
        ],
      },
      {
        title: 'The agent\'s restore, step by step (medians)',
        columns: ['step', 'median', 'rounds'],
        rows: [
          ['spawn -> watching (process start, config, a watch on every folder)', seconds(med(agents.map((a) => a.watchingMs))), list(agents.map((a) => a.watchingMs))],
          ['first full pass (rsync version checks, folders, rsync, flush), as the agent timed it', seconds(med(agents.map((a) => a.fullPassMs))), list(agents.map((a) => a.fullPassMs))],
          ['spawn -> ready (first full pass on disk)', seconds(med(agents.map((a) => a.readyMs))), list(agents.map((a) => a.readyMs))],
          ['spawn -> last change made', seconds(med(agents.map((a) => a.changesMs))), list(agents.map((a) => a.changesMs))],
          ['spawn -> every change acknowledged and the trees equal', seconds(agent), list(agents.map((a) => a.ms))],
          ['passes (full + incremental)', String(med(agents.map((a) => a.passes)) ?? '-'), agents.map((a) => String(a.passes)).join(', ')],
        ],
      },
    ],
    notes: [
      `Workspace: ${made.files.toLocaleString('en')} files, ${megabytes(made.bytes)}: ${(FILES - BIG_FILES).toLocaleString('en')} small sources (200 B to 8 KiB, 100 per folder, 3 levels of folders, bench/tree.ts) and ${BIG_FILES} checkpoints of ${megabytes(BIG_BYTES)} (random bytes).`,
      `Changes during the agent's restore: ${CHANGES}, one every ${(CHANGE_WINDOW * 100).toFixed(0)} % of the fastest raw rsync's time so far / ${CHANGES} from the agent's spawn (a warm-up raw rsync runs first, not counted)${counts ? ` (${counts.edits} edits, one a checkpoint rewritten through a temp name, half of the others the same size; ${counts.creations} new files, some in new folders; ${counts.renames} file renames and ${counts.folderRenames} folder renames; ${counts.deletions} deletions)` : ''}. The raw rsync gets no changes: it is the floor.`,
      'Both go through the same sshd on loopback and the same forced command (`standby receive --root`, as the installer lays it down), each to an empty folder of its own, kept until the case ends (a delete of the last copy kept the disk busy into the next run: the same raw rsync then took 7.6 s to 42 s). The agent is `bin/standby agent` at its defaults (delayMs 250), started for the run: its time includes its start-up, which a standby\'s agent already running does not pay.',
      'Equal: the agent reports nothing pending and its watermark at the last change, then `rsync -a --dry-run --checksum --delete --itemize-changes` between the two folders lists no difference (the time stops before the comparison; a comparison that finds one waits for the next pass). The raw rsync\'s copy is compared by size and mtime.',
      'The agent\'s passes end with `sync -f` on the target (what it acknowledges is on disk); the raw rsync does not flush: the second row shows it with the same flush.',
      `The agent's ssh offers AES-GCM first where the CPU has AES instructions (agent/ssh-ciphers.ts: ${cipherArgs().join(' ') || 'not on this machine'}); a user's plain rsync gets ssh's own order, chacha20-poly1305 first. Each raw rsync runs both ways, one after the other; the last column judges the agent against the raw rsync with its own ciphers (the target is judged against the plain one, as a user would run it).`,
      `Verdict: each agent run divided by the mean of the raw rsyncs just before and after it; the median over the steady rounds (those two raw rsyncs within ${STEADY}x of each other: this VM's speed changed 2 to 4 times within minutes, and a round across such a change says nothing) against the target. Unsteady rounds are listed, marked, and not judged. The medians of each, divided, are shown beside it. A warm-up raw rsync runs first and is not counted. Before each run the disk is flushed and waited on until idle for 1 s (/proc/diskstats, bench/disk-settle.ts): back to back, the same raw rsync measured 16 s to 23 s without it.`,
      'Partial run: BENCH_ROUNDS=n (default 5), BENCH_FILES=n (default 100000); BENCH_KEEP_LOG=PREFIX keeps each agent\'s debug log (every rsync run and flush timed).',
    ],
  };
}
