// `standby demo`: the whole story on this one machine, with real processes
// (cli/support/local-world.ts): the proxy, a GPU and a CPU standby made by the
// `local` provider (sshd on loopback, the receiver, the workspace server), the
// agents; a writer imitating a developer and a training job through the
// proxy's one URL (cli/support/demo-writer.ts), which never pauses; a SIGKILL
// of the GPU; failover, recovery to a new GPU, the switch back; a live
// timeline; and at the end the report and the ledger's verdict on the new GPU
// (cli/support/demo-ledger.ts): acknowledged writes lost must be 0, else the
// demo exits 1 and says what was lost. --keep leaves it running; --json
// prints the report for machines.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { FailoverReport, RecoveryStatus } from '../protocol/admin-api.ts';
import type { ProxyEvent } from '../proxy/state.ts';
import { checkWorkspace } from './support/demo-ledger.ts';
import { Writer, type WriteRecord } from './support/demo-writer.ts';
import { startLocalWorld, tail, type LocalWorld } from './support/local-world.ts';
import { runCommand } from './support/run-command.ts';
import { join } from 'node:path';

interface Args {
  keep?: boolean;
  json?: boolean;
}

/** How long the GPU serves (and the writer writes to it) before the kill, ms. */
const BEFORE_KILL_MS = 6_000;
/** The whole demo's bound, ms: it fails rather than hangs. */
const DEMO_BOUND_MS = 85_000;
/** Slack for the RPO cutoff: a write acknowledged this close to the last heartbeat's oldest unsynced change counts as above the watermark. */
const CUTOFF_SLACK_MS = 50;

interface StatusView {
  phase: string;
  active: string;
  epoch: number;
  recovery: RecoveryStatus;
  agents: { hostId: string; connected: boolean; sync: { watermark: number; lastSeq: number; oldestPendingAgeMs: number | null; lastPassAgeMs: number | null } | null }[];
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function bar(done: number, total: number | null, width = 24): string {
  if (total === null || total === 0) return `[${'.'.repeat(width)}] ${done} files`;
  const n = Math.min(width, Math.round((done / total) * width));
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${done}/${total} files`;
}

export const demoCommand: CommandModule<object, Args> = {
  command: 'demo',
  describe: 'the whole story on this machine: a GPU killed, failover, a new GPU recovered and switched back to, with a writer whose acknowledged writes must all survive',
  builder: (y: Argv) =>
    y
      .option('keep', { type: 'boolean', describe: 'leave it running at the end and print the URL and the admin token' })
      .option('json', { type: 'boolean', describe: 'print the report as JSON (lostFiles, verifiedFiles, rpoMs, phases...)' }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const t0 = performance.now();
      const say = (line: string) => {
        if (!argv.json) process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
      };
      let logText = '';
      const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { logText = (logText + c.toString()).slice(-200_000); cb(); } }));
      say('starting: a proxy, a CPU standby and a GPU on this machine (the local provider: sshd on loopback, the receiver, a workspace server each)');
      const w = await startLocalWorld({ log, keep: argv.keep === true });
      let writer: Writer | undefined;
      try {
        return await story(w, say, argv, t0, (x) => (writer = x));
      } catch (err) {
        process.stderr.write(`\nstandby demo failed: ${(err as Error).message}\nproxy log (last lines):\n${logText.trim().split('\n').slice(-15).join('\n')}\nstandby agent log:\n${tail(join(w.dir, 'standby-agent.log'), 10)}\n`);
        return 1;
      } finally {
        await writer?.stop();
        if (argv.keep) {
          process.stdout.write(`\n--keep: running. URL ${w.proxy.url}  admin token ${w.adminToken}\n  standby status --proxy ${w.proxy.url} --token ${w.adminToken}\n  hosts under ${w.dir}\nCtrl-C stops.\n`);
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
        }
        await w.close();
      }
    }),
};

async function story(w: LocalWorld, say: (l: string) => void, argv: Args, t0: number, own: (w: Writer) => void): Promise<number> {
  const status = async (): Promise<StatusView> => (await (await w.api('status')).json()) as StatusView;
  const deadline = t0 + DEMO_BOUND_MS;
  const until = async (what: string, test: (s: StatusView) => boolean, onTick?: (s: StatusView) => void): Promise<StatusView> => {
    for (;;) {
      const s = await status();
      onTick?.(s);
      if (test(s)) return s;
      if (performance.now() > deadline) throw new Error(`${what}: not within the demo's ${DEMO_BOUND_MS / 1000} s (phase ${s.phase}, recovery ${s.recovery.configured ? s.recovery.step : '-'})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  say(`proxy      ${w.proxy.url} (the developer's one URL)`);
  say(`standby    cpu-1: ${w.standby.url}, ssh 127.0.0.1:${w.standby.sshPort}, its agent fenced`);
  say(`GPU        gpu-1: ${w.gpu.url}, ssh 127.0.0.1:${w.gpu.sshPort}; its agent installed by the real installer with a one-time invitation`);
  await until('the GPU serving with its agent heartbeating', (s) => s.phase === 'normal');
  say('normal     the GPU serves; its agent pushes every change to the standby (inotify, then rsync over ssh)');

  const writer = new Writer({ baseUrl: w.proxy.url, headers: { 'x-standby-files-token': w.gpu.filesToken }, seed: 7 });
  own(writer);
  writer.start();
  say('writer     started: small edits, renames, deletes and a growing checkpoint, through the proxy URL; it never pauses');
  const killAt = performance.now() + BEFORE_KILL_MS;
  let lastLag = '';
  await until('the writing phase', () => performance.now() >= killAt, (s) => {
    const gpu = s.agents.find((a) => a.hostId === 'gpu-1');
    lastLag = gpu?.sync ? `watermark ${gpu.sync.watermark}/${gpu.sync.lastSeq}, oldest unsynced ${gpu.sync.oldestPendingAgeMs ?? 0} ms` : '';
  });
  const c = writer.counts();
  say(`writing    ${c.acknowledged} writes acknowledged so far; sync ${lastLag}`);

  say('KILL       SIGKILL of the GPU: its sshd, its workspace server and its agent, mid-write');
  const killed = performance.now();
  w.killGpu();
  await until('the failover', (s) => s.active === 'standby');
  say(`failover   the standby serves (${seconds(performance.now() - killed)} after the kill); the writer goes on, on the standby`);

  let step = '';
  let shownBar = '';
  await until('the recovery and the switch back', (s) => s.active === 'primary' && s.recovery.configured && (s.recovery.step === 'done' || s.recovery.step === 'old-gpu'), (s) => {
    const r = s.recovery;
    if (!r.configured) return;
    if (r.step === 'gave-up') throw new Error(`the recovery gave up: ${r.error ?? '?'}`);
    if (r.step !== null && r.step !== step) {
      step = r.step;
      const words: Record<string, string> = {
        started: 'recovery   begun: a new GPU from the local provider',
        search: 'recovery   offer found',
        intent: 'recovery   creating the new GPU (its intent logged first: a restart would adopt it, not make a second)',
        created: `recovery   ${r.newGpu?.id ?? 'the new GPU'} runs; its onstart installs the agent and the receiver`,
        'ssh-ready': "recovery   its receiver answers over SSH, fenced at this epoch",
        'agent-ready': 'recovery   its agent enrolled and heartbeats (fenced)',
        restore: "restore    the standby's agent pushes the workspace straight to the new GPU",
        restored: 'restore    the new GPU holds the standby\'s copy; switching back: freeze, final pass, fence, route',
        done: `switched   the new GPU ${r.newGpu?.id ?? ''} serves`,
        'old-gpu': 'retired    the old GPU',
        failed: `recovery   a try failed: ${r.error ?? '?'}; rolled back, trying again`,
      };
      say(words[r.step] ?? `recovery   ${r.step}`);
    }
    if (r.restore) {
      const line = bar(r.restore.files, r.restore.totalFiles) + `, ${(r.restore.bytes / 1e6).toFixed(1)} MB`;
      if (line !== shownBar) say(`restore    ${line}`);
      shownBar = line;
    }
  });
  // a few writes on the new GPU, then the writer stops: what it had acknowledged is checked there
  const back = performance.now();
  await new Promise((r) => setTimeout(r, 1_500));
  await writer.stop();
  say(`writer     stopped, ${seconds(performance.now() - back)} after the switch back`);

  const records = writer.records();
  const events = ((await (await w.api('events')).json()) as { events: ProxyEvent[] }).events;
  const epochEvent = events.find((e): e is Extract<ProxyEvent, { type: 'epoch' }> => e.type === 'epoch');
  if (!epochEvent) throw new Error('no failover in the log');
  // writes above the watermark at failover (the RPO, reported, not hidden): acknowledged by the GPU after the
  // oldest change its last heartbeat said the standby lacked, or after that heartbeat
  const heartbeatAt = Date.parse(epochEvent.at) - (epochEvent.heartbeatAgeMs ?? 0);
  const cutoff = heartbeatAt - (epochEvent.oldestPendingAgeMs ?? 0) - CUTOFF_SLACK_MS;
  const onOldGpu = (r: WriteRecord) => r.servedBy === w.gpu.id; // the workspace server answers with its host's id
  const aboveWatermark = records.filter((r) => r.ok && onOldGpu(r) && r.ackedAt >= cutoff);
  const acknowledged = (r: WriteRecord) => !(onOldGpu(r) && r.ackedAt >= cutoff);
  const rec = (await status()).recovery;
  if (!rec.configured || !rec.newGpu) throw new Error('no new GPU in the recovery status');
  const newGpu = w.proxy.recovery?.local?.details(rec.newGpu.providerId);
  if (!newGpu) throw new Error(`the new GPU ${rec.newGpu.providerId} is not a local host`);
  const check = checkWorkspace(newGpu.workspace, records, acknowledged);
  const report = (await (await w.api('failover/report')).json()) as FailoverReport;
  const f = report.list[report.list.length - 1];
  const phases = (f?.phases ?? []).map((p) => ({ name: p.name, ms: p.ms }));
  const counts = writer.counts();
  const out = {
    lostFiles: check.lost.length,
    lost: check.lost,
    verifiedFiles: check.verifiedFiles,
    verifiedBytes: check.verifiedBytes,
    uncertainFiles: check.uncertain,
    rpoMs: f?.rpo?.rpoMs ?? null,
    unsyncedChangesAtFailover: f?.rpo?.unsyncedChanges ?? null,
    writesAboveWatermark: aboveWatermark.length,
    writes: { sent: counts.sent, acknowledged: counts.acknowledged, refused: counts.failed },
    phases,
    toStandbyMs: f?.toStandbyMs ?? null,
    toNewGpuMs: f?.toNewGpuMs ?? null,
    newGpu: rec.newGpu.id,
    totalMs: Math.round(performance.now() - t0),
  };
  if (argv.json) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  else {
    const lines = [
      '',
      'report',
      ...phases.map((p) => `  ${p.name.padEnd(14)} ${p.ms === null ? '?' : seconds(p.ms)}`),
      `  to the standby ${out.toStandbyMs === null ? '?' : seconds(out.toStandbyMs)} from the last heartbeat; to the new GPU ${out.toNewGpuMs === null ? '?' : seconds(out.toNewGpuMs)}`,
      `  RPO at failover: ${out.rpoMs === null ? '?' : `${out.rpoMs} ms`} (${out.unsyncedChangesAtFailover ?? '?'} changes above the watermark; ${out.writesAboveWatermark} acknowledged writes in that window, reported, not counted)`,
      `  writes: ${counts.acknowledged} acknowledged, ${counts.failed} refused while switching (the writer went on)`,
      `  checked on the new GPU: ${check.verifiedFiles} files, ${(check.verifiedBytes / 1e6).toFixed(1)} MB; ${check.uncertain} paths uncertain (touched by an unacknowledged write)`,
      `  acknowledged writes lost: ${check.lost.length}`,
      ...check.lost.slice(0, 20).map((l) => `    LOST #${l.seq} ${l.path}: want ${l.want?.slice(0, 12) ?? 'absent'}, got ${l.got?.slice(0, 12) ?? 'absent'}`),
      `  demo: ${seconds(out.totalMs)}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  return check.lost.length === 0 ? 0 : 1;
}
