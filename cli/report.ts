// `standby report`: the failover report of the last N days, from the proxy's
// admin API (GET /_standby/api/v1/failover/report): counts, MTTR, each
// phase's mean and p95, causes, the RPO at each failover, recovery's counts
// and the standby's monthly cost. --json prints the API's answer as it is.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { StandbyError } from '../core/errors.ts';
import type { FailoverReport, FailoverView, TimeStat } from '../protocol/admin-api.ts';
import { callProxy, problemOf, proxyEndpoint, proxyOptions, type ProxyArgs } from './support/proxy-endpoint.ts';
import { runCommand } from './support/run-command.ts';

interface Args extends ProxyArgs {
  days?: number;
  json?: boolean;
}

export const reportCommand: CommandModule<object, Args> = {
  command: 'report',
  describe: 'the failover report: failovers, MTTR, phases (mean, p95), causes, RPO at each failover',
  builder: (y: Argv) =>
    proxyOptions(y)
      .option('days', { type: 'number', default: 30, describe: 'the failovers that began in the last N days (1 to 3650)' })
      .option('json', { type: 'boolean', describe: "print the proxy's answer as JSON, for machines" }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      // the proxy checks the number (one rule for the API and the CLI); yargs gives NaN for a word
      const days = String(argv.days ?? 30);
      const r = await callProxy(proxyEndpoint(argv), `failover/report?days=${encodeURIComponent(days)}`);
      if (r.status === 400) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', problemOf(r.body, r.status));
      if (r.status !== 200) throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `the proxy answered ${r.status}: ${problemOf(r.body, r.status, JSON.stringify(r.body))}`);
      const report = r.body as FailoverReport;
      process.stdout.write(argv.json ? JSON.stringify(report, null, 2) + '\n' : humanReport(report));
      return 0;
    }),
};

/** A duration for people: "0.21 ms", "340 ms", "1.52 s", "2.5 min"; "-" for none. */
export function duration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms === 0) return '0';
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1_000).toFixed(2)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

function stat(s: TimeStat): string {
  if (s.measured === 0) return s.unknown > 0 ? `unknown (${s.unknown} not recorded)` : '-';
  return `mean ${duration(s.meanMs)}, p95 ${duration(s.p95Ms)} (${s.measured} measured${s.unknown > 0 ? `, ${s.unknown} not recorded` : ''})`;
}

/** The RPO of one failover, in one cell. */
function rpo(f: FailoverView): string {
  if (f.rpo === null) return 'unknown (no heartbeat)';
  const age = f.rpo.rpoMs === null ? '?' : duration(f.rpo.rpoMs);
  const changes = f.rpo.unsyncedChanges === null ? '' : `, ${f.rpo.unsyncedChanges} unsynced`;
  return `${age}${changes}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

/** A failover's recovery in one cell: its outcome, tries, new GPU, and why its last try failed. */
function recoveryCell(v: FailoverView): string {
  const r = v.recovery;
  if (r === null) return '-';
  const tries = `${r.attempts} ${r.attempts === 1 ? 'try' : 'tries'}`;
  if (r.outcome === 'done') return `done (${tries}, ${r.newGpu ?? '?'})`;
  return `${r.outcome} (${tries}${r.error ? `: ${r.error}` : ''})`;
}

/** The resume command on the new GPU in one cell: "-" when none was reported. */
function resumeCell(v: FailoverView): string {
  const r = v.resume;
  if (r === null) return '-';
  if (!r.exited) return r.started ? 'running' : '?';
  const how = r.signal ? `killed (${r.signal})` : r.exitCode === null ? 'ended' : `exit ${r.exitCode}`;
  if (!r.started) return `did not start${r.error ? ` (${r.error})` : ''}`;
  return `${how}${r.error ? `: ${r.error}` : ''}`;
}

export function humanReport(r: FailoverReport): string {
  const f = r.failovers;
  const rate = f.successRate === null ? 'no success rate (none ended)' : `success rate ${(f.successRate * 100).toFixed(1)} %`;
  const lines = [
    `failovers    ${f.total} in the last ${r.window.days} days: ${f.succeeded} succeeded, ${f.failed} failed${f.inProgress > 0 ? `, ${f.inProgress} in progress` : ''}${f.drills > 0 ? ` (${f.drills} drills)` : ''}; ${rate}`,
    `MTTR         to the standby: ${stat(r.mttr.toStandby)}`,
    `             to a new GPU: ${r.mttr.toNewGpu.note ? '- (recovery not configured)' : stat(r.mttr.toNewGpu)}`,
    `recovery     GPUs provisioned ${r.recovery.gpusProvisioned.done}/${r.recovery.gpusProvisioned.of}, data restored ${r.recovery.dataRestored.done}/${r.recovery.dataRestored.of}${r.recovery.note ? ` (${r.recovery.note})` : ''}`,
    `RPO          ${stat(r.rpo)}`,
    `causes       ${r.causes.length === 0 ? '-' : r.causes.map((c) => `${c.count} x ${c.label}`).join('; ')}`,
    `switch backs ${r.switchBacks.total} (${r.switchBacks.done} done, ${r.switchBacks.aborted} aborted)`,
    `standby cost ${r.standbyCost.known ? r.standbyCost.summary : r.standbyCost.reason}`,
    `standby down ${r.standbyOutages.count === 0 ? 'never (or not watched: recovery.standby.id)' : `${r.standbyOutages.count} times (${r.standbyOutages.recreated} made anew); no standby copy reachable: ${stat(r.standbyOutages.window)}`}`,
    '',
    ...table([
      ['phase', 'mean', 'p95', 'max', 'measured', 'not recorded'],
      ...r.phases.map((p) => [p.name, duration(p.meanMs), duration(p.p95Ms), duration(p.maxMs), String(p.measured), String(p.unknown)]),
    ]),
  ];
  if (r.list.length > 0) {
    const phase = (v: FailoverView, name: string) => {
      const p = v.phases.find((x) => x.name === name);
      return p === undefined ? '-' : p.ms === null ? '?' : duration(p.ms);
    };
    lines.push(
      '',
      ...table([
        ['epoch', 'began (UTC)', 'cause', 'outcome', 'detection', 'final pass', 'fence', 'route', 'to standby', 'RPO', 'recovery', 'to new GPU', 'resume'],
        ...r.list.map((v) => [
          String(v.epoch),
          v.at.slice(0, 19).replace('T', ' '),
          v.cause.label + (v.cause.inferred ? ' (from the log text)' : ''),
          v.outcome === 'failed' ? `failed: ${v.failure ?? '?'}` : v.outcome,
          phase(v, 'detection'),
          phase(v, 'final-pass'),
          phase(v, 'fence'),
          phase(v, 'route'),
          v.outcome !== 'succeeded' ? '-' : v.toStandbyMs === null ? '?' : duration(v.toStandbyMs),
          rpo(v),
          recoveryCell(v),
          v.toNewGpuMs === null ? '-' : duration(v.toNewGpuMs),
          resumeCell(v),
        ]),
      ]),
      '',
      '?: not recorded (a log written before it was, or a switch a restarted proxy resumed); -: does not apply',
    );
    // a GPU that was left with changes the standby never got: where they are, so nobody loses them unseen
    const conflicts = r.list.filter((v) => v.recovery?.conflicts && v.recovery.conflicts.files + v.recovery.conflicts.deletions > 0);
    if (conflicts.length > 0) lines.push('', 'unsent changes of the GPUs that were left (copied beside the standby\'s workspace, never into it):');
    for (const v of conflicts) {
      const c = v.recovery!.conflicts!;
      lines.push(`  epoch ${v.epoch}: ${c.files} files (${c.bytes} bytes) in ${c.folder}, ${c.deletions} deletions listed${c.error ? `; the copy failed part way: ${c.error}` : ''}${c.complete ? '' : '; not all: its agent had restarted since its last pass'}${c.paths.length ? ` (${c.paths.slice(0, 5).join(', ')}${c.paths.length > 5 ? ', ...' : ''})` : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}
