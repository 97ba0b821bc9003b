// bench/pass-cost: what one incremental pass costs through the standby's
// receiver (the forced command `standby receive`, as a real standby runs it),
// by what the pass carries: one written file, one renamed file (a deletion and
// a new name), one deleted file. Beside it, in the same run, one plain rsync of
// one file through the same receiver (the floor: one SSH session, one receiver
// start, one rsync). A pass is its rsync run(s) and the flush (`sync -f`), which
// the receiver makes in the last run's session (STANDBY_FLUSH=1), so about one
// floor less the connection's handshake; a pass that deletes must not cost more.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runRsync } from '../../agent/rsync.ts';
import { startAgent } from '../../test/fixtures/agent-process.ts';
import { STANDBY_CLI } from '../../test/fixtures/program-paths.ts';
import { startSshd } from '../../proxy/provision/loopback-sshd.ts';
import { waitFor } from '../../test/fixtures/wait-for.ts';
import { percentile, seconds, type CaseResult } from '../report.ts';
import { removeOnInterrupt, removeScratch, scratchDir } from '../scratch.ts';

const ROUNDS = 30;

type Change = 'write' | 'rename' | 'delete';
const CHANGES: { change: Change; label: string }[] = [
  { change: 'write', label: 'one file written' },
  { change: 'rename', label: 'one file renamed (a deletion and a new name)' },
  { change: 'delete', label: 'one file deleted' },
];

export async function run(): Promise<CaseResult> {
  const tmp = scratchDir('standby-bench-pass-');
  const gpu = join(tmp, 'gpu');
  const cpu = join(tmp, 'cpu');
  mkdirSync(gpu);
  mkdirSync(cpu);
  const sshd = await startSshd({ keyOptions: `command="${STANDBY_CLI} receive --root ${cpu} --state-dir ${join(tmp, 'state')}",restrict` });
  removeOnInterrupt(sshd.dir);
  const rows: string[][] = [];
  try {
    // the floor: one plain rsync of one small file through the receiver, a fresh connection each time as the agent's is not
    const floor: number[] = [];
    writeFileSync(join(tmp, 'one.txt'), 'one\n');
    for (let i = 0; i < ROUNDS; i++) {
      const r = await runRsync(['-a', '--delay-updates', '-e', sshd.rsyncShell(), join(tmp, 'one.txt'), `${sshd.user}@${sshd.host}:${cpu}/floor-${i}.txt`]).result;
      if (r.code !== 0) throw new Error(`plain rsync through the receiver failed (${r.code}): ${r.stderr}`);
      floor.push(r.durationMs);
    }
    rows.push(['plain rsync of one file through the receiver (new connection)', String(ROUNDS), seconds(percentile(floor, 50)), seconds(percentile(floor, 90))]);

    mkdirSync(join(tmp, 'agent'));
    const agent = await startAgent({ src: gpu, dst: cpu, dir: join(tmp, 'agent'), target: sshd, delayMs: 50, maxDelayMs: 100, settings: { hostId: 'bench-pass' } });
    try {
      await agent.ready(60_000);
      for (const { change, label } of CHANGES) {
        const dir = join(gpu, change);
        mkdirSync(dir);
        for (let i = 0; i < ROUNDS; i++) writeFileSync(join(dir, `f${i}.txt`), `${i}\n`);
        await agent.settled(60_000);
        const durations: number[] = [];
        for (let i = 0; i < ROUNDS; i++) {
          const before = (await agent.status()).passes;
          const f = join(dir, `f${i}.txt`);
          if (change === 'write') writeFileSync(f, `${i} again\n`);
          else if (change === 'rename') renameSync(f, `${f}.renamed`);
          else rmSync(f);
          const s = await waitFor(`the pass of ${label}`, async () => {
            const now = await agent.status();
            return now.passes > before && now.pending === 0 && now.watermark >= now.lastSeq ? now : undefined;
          }, { timeoutMs: 30_000, everyMs: 5 });
          durations.push((s['passDurationMs'] as { last: number }).last);
        }
        rows.push([`agent pass: ${label}`, String(ROUNDS), seconds(percentile(durations, 50)), seconds(percentile(durations, 90))]);
      }
    } finally {
      await agent.stop();
    }
  } finally {
    await sshd.close();
    removeScratch(tmp);
  }
  return {
    tables: [{ title: 'One pass through the standby\'s receiver, by what it carries', columns: ['what', 'rounds', 'p50', 'p90'], rows }],
    notes: [
      'A pass: its rsync run(s) over the agent\'s ControlMaster connection, each a receiver start on the standby; the receiver flushes (`sync -f`) after the last one, in its session (STANDBY_FLUSH=1; before that change a session of its own: 0.20 s at p50 for each kind of pass, 0.13 s with it, one run each on 2026-12-06). Timed by the agent (monotonic clock), one change per pass, the next change once the pass is acknowledged.',
      'A pass that deletes runs one rsync with filter rules for the deletion and the new name together (docs/architecture.md, "A pass"): it should cost what a pass that writes costs.',
    ],
  };
}
