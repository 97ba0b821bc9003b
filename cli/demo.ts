// `standby demo`: the whole story on this one machine, with real processes
// (cli/support/local-world.ts): the proxy, a GPU and a CPU standby made by the
// `local` provider (sshd on loopback, the receiver, the workspace server), the
// agents; a writer imitating a developer and a training job through the
// proxy's one URL (cli/support/demo-writer.ts), which never pauses; a SIGKILL
// of the GPU; failover, recovery to a new GPU, the switch back; a live
// timeline; and at the end the report and the ledger's verdict on the new GPU
// (cli/support/demo-ledger.ts): acknowledged writes lost must be 0, else the
// demo exits 1 and says what was lost. --keep leaves it running; --json
// prints the report for machines. --server code-server puts a real
// code-server on every host (installed into its cache on first use,
// installer/code-server.ts), fronted by the workspace server, whose file API
// the writer keeps using: what a browser opens at the URL is code-server.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
import { CODE_SERVER_VERSION, codeServerCacheDir, ensureCodeServer } from '../installer/code-server.ts';

interface Args {
  keep?: boolean;
  json?: boolean;
  server: 'workspace' | 'code-server';
}

/** The writer's pace: about 20 writes a second, a busy developer and a training job together. */
const WRITE_EVERY_MS = 50;
/** How long the GPU serves (and the writer writes to it) before the kill, ms. */
const BEFORE_KILL_MS = 6_000;
/** The whole demo's bound, ms: it fails rather than hangs. */
const DEMO_BOUND_MS = 85_000;
/** With a code-server on every host (its install not counted): three more processes to start, and heavier ones. */
const CODE_SERVER_DEMO_BOUND_MS = 150_000;
/** Slack for the RPO cutoff: a write acknowledged this close to the last heartbeat's oldest unsynced change counts as above the watermark. */
const CUTOFF_SLACK_MS = 50;

interface StatusView {
  phase: string;
  active: string;
  epoch: number;
  recovery: RecoveryStatus;
  agents: { hostId: string; connected: boolean; sync: { watermark: number; lastSeq: number; oldestPendingAgeMs: number | null; lastPassAgeMs: number | null; ready: boolean } | null }[];
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
      .option('json', { type: 'boolean', describe: 'print the report as JSON (lostFiles, verifiedFiles, rpoMs, phases...)' })
      .option('server', { choices: ['workspace', 'code-server'] as const, default: 'workspace' as const, describe: `what each host serves: the small built-in workspace server, or a real code-server ${CODE_SERVER_VERSION} behind it (installed into ${codeServerCacheDir()} on first use: about 100 s and 600 MB; sh scripts/ensure-deps.sh code-server installs what its build needs)` }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      let t0 = performance.now();
      const say = (line: string) => {
        if (!argv.json) process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
      };
      let logText = '';
      const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { logText = (logText + c.toString()).slice(-200_000); cb(); } }));
      let codeServer: { entry: string } | undefined;
      if (argv.server === 'code-server') {
        const found = await ensureCodeServer({
          // npm's fetch lines are many and say little: its other lines, and a line every 15 s, show it moves
          onProgress: ({ line, elapsedMs }) => {
            if (!line.startsWith('npm http ')) process.stderr.write(`[code-server install ${(elapsedMs / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
          },
        });
        codeServer = { entry: found.entry };
        t0 = performance.now(); // the demo's clock starts once code-server is there
      }
      say(`starting: a proxy, a CPU standby and a GPU on this machine (the local provider: sshd on loopback, the receiver, ${codeServer ? `a real code-server ${CODE_SERVER_VERSION} behind a workspace server` : 'a workspace server'} each)`);
      const w = await startLocalWorld({ log, keep: argv.keep === true, ...(codeServer ? { codeServer } : {}) });
      let writer: Writer | undefined;
      try {
        return await story(w, say, argv, t0, (x) => (writer = x));
      } catch (err) {
        process.stderr.write(`\nstandby demo failed: ${(err as Error).message}\nproxy log (last lines):\n${logText.trim().split('\n').slice(-15).join('\n')}\nstandby agent log:\n${tail(join(w.dir, 'standby-agent.log'), 10)}\n`);
        return 1;
      } finally {
        await writer?.stop();
        if (argv.keep) {
          process.stdout.write(`\n--keep: running. URL ${w.proxy.url}${codeServer ? ' (open it in a browser: code-server, served by whichever host is active)' : ''}  admin token ${w.adminToken}\n  standby status --proxy ${w.proxy.url} --token ${w.adminToken}\n  hosts under ${w.dir}\nCtrl-C stops.\n`);
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
  // a switch closes the client sockets that carried traffic to the side it leaves; a request on one of them
  // fails, as a browser's would, and is sent again (the writer's are not: it records them as refused)
  const apiJson = async <T>(path: string): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await (await w.api(path)).json()) as T;
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  };
  const status = (): Promise<StatusView> => apiJson<StatusView>('status');
  const bound = argv.server === 'code-server' ? CODE_SERVER_DEMO_BOUND_MS : DEMO_BOUND_MS;
  const deadline = t0 + bound;
  const until = async (what: string, test: (s: StatusView) => boolean, onTick?: (s: StatusView) => void, alsoTick?: () => Promise<void>): Promise<StatusView> => {
    for (;;) {
      await alsoTick?.();
      const s = await status();
      onTick?.(s);
      if (test(s)) return s;
      if (performance.now() > deadline) throw new Error(`${what}: not within the demo's ${bound / 1000} s (phase ${s.phase}, recovery ${s.recovery.configured ? s.recovery.step : '-'})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  say(`proxy      ${w.proxy.url} (the developer's one URL)`);
  say(`standby    cpu-1: ${w.standby.url}, ssh 127.0.0.1:${w.standby.sshPort}, its agent fenced`);
  say(`GPU        gpu-1: ${w.gpu.url}, ssh 127.0.0.1:${w.gpu.sshPort}; its agent installed by the real installer with a one-time invitation`);
  await until('the GPU serving, its agent heartbeating and its first full pass done', (s) => s.phase === 'normal' && s.agents.some((a) => a.hostId === 'gpu-1' && a.sync?.ready === true));
  say('normal     the GPU serves; its agent pushes every change to the standby (inotify, then rsync over ssh)');

  const writer = new Writer({ baseUrl: w.proxy.url, headers: { 'x-standby-files-token': w.gpu.filesToken }, seed: 7, everyMs: WRITE_EVERY_MS });
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

  // the timeline: each durable event as the proxy logged it, with the time it measured for its step
  let shown = '';
  let shownAt = 0;
  /** the switch back began: a fence now is the switch back's */
  let switching = false;
  const tell = (e: ProxyEvent): string | undefined => {
    const ms = (v: number | null | undefined) => (v === null || v === undefined ? '' : ` (${seconds(v)})`);
    switch (e.type) {
      case 'epoch':
        return `epoch ${e.epoch}    failover begun: ${e.reason}; detection${ms(e.heartbeatAgeMs)}`;
      case 'fenced':
        return `fenced     ${switching ? "the standby's and the new GPU's receivers" : 'the standby'} at epoch ${e.epoch}${ms(e.ms)}`;
      case 'routed':
        return `routed     to the ${e.side === 'standby' ? 'standby' : 'new GPU'}${e.totalMs !== undefined ? `, ${seconds(e.totalMs)} after ${e.side === 'standby' ? 'the last heartbeat' : 'the freeze'}` : ''}`;
      case 'switch-back':
        switching = true;
        return `switch     ${e.reason}`;
      case 'recovery': {
        const words: Partial<Record<string, string>> = {
          started: `recovery   try ${e.attempt}: a new GPU from the ${e.provider} provider`,
          search: e.error ? `search     no GPU: ${e.error}` : `search     offer ${e.offer?.id ?? '?'}: ${e.offer?.gpuName ?? ''}`,
          intent: 'intent     logged before the create: a restarted proxy adopts this GPU, never makes a second',
          created: `created    ${e.host?.id ?? ''} runs; its first boot installs the agent and the receiver`,
          'ssh-ready': 'ssh ready  its receiver answers over SSH, fenced at this epoch',
          'agent-ready': 'agent      its agent enrolled with a one-time invitation and heartbeats (fenced)',
          restore: "restore    the standby's agent pushes the workspace straight to the new GPU",
          restored: 'restored   the new GPU is level with the standby; switching back: freeze, final pass, fence, route',
          done: `done       ${e.host?.id ?? 'the new GPU'} serves; it pushes to the standby again`,
          'old-gpu': `retired    ${e.reason}`,
          failed: `failed     ${e.error ?? ''}: rolled back, trying again`,
          'gave-up': `gave up    ${e.error ?? ''}`,
        };
        const w = words[e.step];
        return w === undefined ? undefined : w + ms(e.ms);
      }
      default:
        return undefined;
    }
  };
  const startSeq = ((await apiJson<{ events: ProxyEvent[] }>('events')).events.at(-1)?.seq ?? 0);
  let printed = startSeq;
  const timeline = async () => {
    const events = (await apiJson<{ events: ProxyEvent[] }>('events')).events;
    for (const e of events) {
      if (e.seq <= printed) continue;
      printed = e.seq;
      const line = tell(e);
      if (line) say(line);
    }
  };
  say(`KILL       SIGKILL of the GPU: its sshd, its workspace server${argv.server === 'code-server' ? ', its code-server' : ''} and its agent, mid-write`);
  const killed = performance.now();
  w.killGpu();
  await until('the failover', (s) => s.active === 'standby', undefined, timeline);
  say(`failover   the standby serves (${seconds(performance.now() - killed)} after the kill); the writer goes on, on the standby`);
  // the developer changes a setting in the standby's editor: it must follow to the new GPU (each host keeps code-server's folders in its own place)
  const setting = w.standby.editor ? `{ "standby.demo": "changed on the standby at ${new Date().toISOString()}" }\n` : undefined;
  if (w.standby.editor && setting !== undefined) {
    const user = join(w.standby.editor.userDataDir, 'User');
    mkdirSync(user, { recursive: true });
    writeFileSync(join(user, 'settings.json'), setting);
    say("editor     a setting changed in the standby's code-server (User/settings.json): it follows to the new GPU");
  }

  await until('the recovery and the switch back', (s) => s.active === 'primary' && s.recovery.configured && s.recovery.step === 'old-gpu', (s) => {
    const r = s.recovery;
    if (r.configured && r.step === 'gave-up') throw new Error(`the recovery gave up: ${r.error ?? '?'}`);
    if (r.configured && r.restore) {
      const p = r.restore;
      // the full pass's bar while it runs; then, once a second, how far the new GPU is behind the developer
      const line = p.ready ? `kept current: ${p.pending} changes behind` : bar(p.files, p.totalFiles);
      const now = performance.now();
      if (line !== shown && (!p.ready || now - shownAt >= 1_000)) {
        say(`restore    ${line}${p.ready ? '' : `, ${(p.bytes / 1e6).toFixed(1)} MB at ${(p.rateBps / 1e6).toFixed(1)} MB/s`}`);
        shown = line;
        shownAt = now;
      }
    }
  }, timeline);
  await timeline();
  // a few writes on the new GPU, then the writer stops: what it had acknowledged is checked there
  const back = performance.now();
  await new Promise((r) => setTimeout(r, 1_500));
  await writer.stop();
  say(`writer     stopped, ${seconds(performance.now() - back)} after the switch back`);

  const records = writer.records();
  const events = (await apiJson<{ events: ProxyEvent[] }>('events')).events;
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
  const report = await apiJson<FailoverReport>('failover/report');
  const f = report.list[report.list.length - 1];
  // the report's phases, and 'failover' (from the last heartbeat to the standby serving) after the route
  const phases = (f?.phases ?? []).flatMap((p) => (p.name === 'route' ? [{ name: p.name, ms: p.ms }, { name: 'failover', ms: f?.toStandbyMs ?? null }] : [{ name: p.name, ms: p.ms }]));
  const counts = writer.counts();
  // what a browser opening the URL gets now, from the new GPU: code-server sends it to the folder it opens
  let front: Response | undefined;
  for (let attempt = 1; !front; attempt++) {
    try {
      front = await fetch(`${w.proxy.url}/`, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
      await front.arrayBuffer();
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
  const backend = { server: argv.server, status: front.status, location: front.headers.get('location') };
  // the standby's setting in the new GPU's own code-server folder (null: the hosts have none)
  const editorSettings = setting === undefined || !newGpu.editor ? null : readIfThere(join(newGpu.editor.userDataDir, 'User', 'settings.json')) === setting ? 'followed' : 'missing';
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
    newGpuWorkspace: newGpu.workspace,
    backend,
    editorSettings,
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
      ...(argv.server === 'code-server' ? [`  the URL now: code-server on the new GPU (HTTP ${backend.status}${backend.location ? `, to ${backend.location}` : ''})`] : []),
      ...(editorSettings === null ? [] : [`  the editor's setting changed on the standby: ${editorSettings === 'followed' ? "in the new GPU's code-server" : "MISSING on the new GPU"}`]),
      ...check.lost.slice(0, 20).map((l) => `    LOST #${l.seq} ${l.path}: want ${l.want?.slice(0, 12) ?? 'absent'}, got ${l.got?.slice(0, 12) ?? 'absent'}`),
      `  demo: ${seconds(out.totalMs)}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  return check.lost.length === 0 && editorSettings !== 'missing' ? 0 : 1;
}

function readIfThere(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
