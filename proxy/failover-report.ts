// The failover report: what the durable event log (state.ts) says about the
// failovers of the last N days, as a pure function of the events, the time
// and the standby's config. Durations are the ones the events carry, measured
// on the proxy's monotonic clock where they happened (failover.ts); the
// events' wall-clock `at` only says which failovers fall in the window. A
// figure an older log did not record is counted as unknown, never as zero.
// Recovery's steps (proxy/recovery.ts: GPU search, provisioning, SSH ready,
// agent ready, restore) are phases of the failover they recover from; without
// a recovery section its counts are 0 of 0, said so.
import type { GcpStandbyConfig } from '../config/gcp-standby.ts';
import { StandbyError } from '../core/errors.ts';
import type { FailoverReport, FailoverView, ReportCauseKind, ReportPhase, StandbyCostView, TimeStat } from '../protocol/admin-api.ts';
import { standbyMonthlyCost } from './provision/gcp-cost.ts';
import type { ProxyEvent } from './state.ts';

/** The phases this proxy logs today, in order (ReportPhase lists recovery's too). */
const PHASES: readonly ReportPhase[] = ['detection', 'final-pass', 'fence', 'route', 'switch-back'];
/** ...and with a recovery section, recovery's too */
const RECOVERY_RUN_PHASES: readonly ReportPhase[] = ['detection', 'final-pass', 'fence', 'route', 'gpu-search', 'provisioning', 'ssh-ready', 'agent-ready', 'restore', 'switch-back'];

/** The recovery steps that are report phases, with the phase each one times. */
const RECOVERY_PHASES: Partial<Record<string, ReportPhase>> = { search: 'gpu-search', created: 'provisioning', 'ssh-ready': 'ssh-ready', 'agent-ready': 'agent-ready', restored: 'restore' };

export const REPORT_DEFAULT_DAYS = 30;
export const REPORT_MAX_DAYS = 3650;

const RECOVERY_NOTE = 'recovery not configured: the proxy provisions no GPU and restores none (proxy.json has no recovery section)';

export interface ReportOptions {
  /** the end of the window */
  now: Date;
  days: number;
  /** the gcp standby's settings, when the proxy provisions its standby there: the monthly cost estimate */
  gcpStandby?: GcpStandbyConfig;
  /** proxy.json has a recovery section */
  recoveryConfigured?: boolean;
}

/** `?days=` of the report's request: a whole number of days, 1 to 3650 (default 30). */
export function reportDays(raw: string | null): number {
  if (raw === null) return REPORT_DEFAULT_DAYS;
  const days = /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(days >= 1 && days <= REPORT_MAX_DAYS)) {
    throw new StandbyError('STANDBY_ERR_BAD_REQUEST', `days: expected a whole number of days from 1 to ${REPORT_MAX_DAYS}, got ${JSON.stringify(raw.slice(0, 40))}`, { days: raw.slice(0, 40) });
  }
  return days;
}

const CAUSE_LABELS: Record<ReportCauseKind, string> = {
  silence: 'unplanned: heartbeats stopped, code-server down',
  'connection-lost': "unplanned: the agent's connection lost, code-server down",
  preemption: 'preemption notice',
  manual: 'manual (an admin asked)',
  drill: 'drill',
  unknown: 'unknown (an older log)',
};

type Cause = FailoverView['cause'];
type EpochEvent = Extract<ProxyEvent, { type: 'epoch' }>;

function causeLabel(c: Omit<Cause, 'label'>, detail: boolean): string {
  if (c.kind === 'preemption') return `preemption notice (${c.source ?? 'unknown source'}${c.by === 'agent' ? ", the agent's, corroborated" : c.by === 'proxy' ? ", the proxy's own watcher" : ''})`;
  return CAUSE_LABELS[c.kind] + (detail && c.probeError ? ` (probe: ${c.probeError})` : '');
}

/** The cause an epoch event records, or (a log written before causes were) what its reason text says. */
function causeOf(e: EpochEvent): Cause {
  let c: Omit<Cause, 'label'>;
  if (e.cause) {
    const x = e.cause;
    c = {
      kind: x.kind,
      source: x.kind === 'preemption' ? x.source : null,
      by: x.kind === 'preemption' ? x.by : null,
      probeError: x.kind === 'silence' || x.kind === 'connection-lost' ? x.probeError : null,
      inferred: false,
    };
  } else {
    // the reasons failover.ts and detector.ts wrote before the cause was a field
    const probe = /code-server probe failing \(([^)]*)\)/.exec(e.reason)?.[1];
    const notice = /^preemption notice \(([^)]+)\)(, corroborated)?/.exec(e.reason);
    const kind: ReportCauseKind = !e.planned
      ? e.reason.startsWith('agent connection lost') ? 'connection-lost' : e.reason.startsWith('no heartbeat for') ? 'silence' : 'unknown'
      : notice ? 'preemption' : /manual/i.test(e.reason) ? 'manual' : 'unknown';
    c = {
      kind,
      source: notice?.[1] ?? null,
      by: notice ? (notice[2] ? 'agent' : 'proxy') : null,
      probeError: probe === undefined || probe === 'no answer' ? null : probe,
      inferred: true,
    };
  }
  return { ...c, label: causeLabel(c, true) };
}

interface SwitchBack {
  epoch: number;
  at: number;
  outcome: 'done' | 'aborted' | 'in-progress';
  ms: number | null;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Mean, p95 (nearest rank) and max of the known values; null values count as unknown. */
export function timeStat(values: readonly (number | null)[]): TimeStat {
  const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  const n = known.length;
  return {
    measured: n,
    unknown: values.length - n,
    meanMs: n === 0 ? null : round(known.reduce((a, b) => a + b, 0) / n),
    p95Ms: n === 0 ? null : round(known[Math.ceil(0.95 * n) - 1]!),
    maxMs: n === 0 ? null : round(known[n - 1]!),
  };
}

function standbyCost(gcp: GcpStandbyConfig | undefined): StandbyCostView {
  if (!gcp) return { known: false, reason: 'no estimate: the proxy does not provision the standby on GCP (proxy.json has no recovery section naming a gcp standby)' };
  return standbyMonthlyCost({ machineType: gcp.machineType, diskGb: gcp.diskGb, diskType: gcp.diskType, spot: gcp.spot }, gcp.prices);
}

/** The report over `events` (the whole log, oldest first) for the failovers that began in the `days` before `now`. */
export function failoverReport(events: readonly ProxyEvent[], o: ReportOptions): FailoverReport {
  const to = o.now.getTime();
  const from = to - o.days * 86_400_000;
  const all: { view: FailoverView; at: number }[] = [];
  const switchBacks: SwitchBack[] = [];
  const outages: { at: number; windowMs: number | null; recreated: boolean }[] = [];
  let open: FailoverView | undefined;
  let openBack: SwitchBack | undefined;
  // the last failover that succeeded: a switch back returns from it
  let lastSucceeded: FailoverView | undefined;
  // a recovery's new GPU (its agent's host id) -> the failover it recovers from: its resume command's events
  const byNewGpu = new Map<string, FailoverView>();
  const phase = (v: FailoverView, name: ReportPhase, ms: number | null | undefined) => v.phases.push({ name, ms: ms ?? null });

  for (const e of events) {
    switch (e.type) {
      case 'epoch': {
        if (open) {
          open.outcome = 'failed';
          open.failure = `superseded: a new failover (epoch ${e.epoch}) began before it ended`;
        }
        const v: FailoverView = {
          epoch: e.epoch,
          at: e.at,
          planned: e.planned,
          drill: false,
          cause: causeOf(e),
          outcome: 'in-progress',
          failure: null,
          phases: [],
          toStandbyMs: null,
          rpo: e.watermark === null ? null : {
            // an older log has no age; none outstanding (nothing above the watermark) is an RPO of 0 all the same
            rpoMs: e.oldestPendingAgeMs !== undefined ? (e.oldestPendingAgeMs ?? 0) : e.pending === 0 ? 0 : null,
            unsyncedChanges: e.pending,
            watermark: e.watermark,
            heartbeatAgeMs: e.heartbeatAgeMs ?? null,
          },
          resumed: false,
          recovery: null,
          toNewGpuMs: null,
          resume: null,
        };
        v.drill = v.cause.kind === 'drill';
        if (e.planned) phase(v, 'final-pass', e.leadMs);
        else phase(v, 'detection', e.heartbeatAgeMs);
        all.push({ view: v, at: Date.parse(e.at) });
        open = v;
        break;
      }
      case 'fenced':
        if (open?.epoch === e.epoch && !open.phases.some((p) => p.name === 'fence')) phase(open, 'fence', e.ms);
        break;
      case 'routed':
        if (e.side === 'standby' && open?.epoch === e.epoch) {
          phase(open, 'route', e.ms);
          open.outcome = 'succeeded';
          open.toStandbyMs = open.resumed ? null : (e.totalMs ?? null);
          lastSucceeded = open;
          open = undefined;
        } else if (e.side === 'primary' && openBack?.epoch === e.epoch) {
          openBack.outcome = 'done';
          openBack.ms = e.totalMs ?? null;
          if (lastSucceeded) phase(lastSucceeded, 'switch-back', openBack.ms);
          openBack = undefined;
        }
        break;
      case 'aborted':
        if (e.side === 'standby') {
          if (openBack?.epoch === e.epoch) openBack.outcome = 'aborted';
          openBack = undefined;
        } else if (open?.epoch === e.epoch) {
          open.outcome = 'failed';
          open.failure = 'aborted before its fence completed';
          open = undefined;
        }
        break;
      case 'switch-back':
        openBack = { epoch: e.epoch, at: Date.parse(e.at), outcome: 'in-progress', ms: null };
        switchBacks.push(openBack);
        break;
      case 'started':
        // a restart mid-switch: the monotonic clock it was timed on is gone
        if (open) open.resumed = true;
        break;
      case 'recovery': {
        // the failover it recovers from: the last one that reached the standby at that epoch
        const v = lastSucceeded?.epoch === e.epoch ? lastSucceeded : undefined;
        if (!v) break;
        const r = (v.recovery ??= { outcome: 'in-progress', attempts: 0, newGpu: null, provisioned: false, restored: false, error: null, oldGpu: null, conflicts: null });
        r.attempts = Math.max(r.attempts, e.attempt);
        const name = RECOVERY_PHASES[e.step];
        // a resumed step is logged again: its first time counts
        if (name && !(e.step === 'search' && e.error) && !v.phases.some((p) => p.name === name && p.ms !== null)) phase(v, name, e.ms);
        if (e.step === 'created') r.provisioned = true;
        if (e.step === 'created' && e.host) {
          r.newGpu = e.host.id;
          byNewGpu.set(e.host.id, v);
        }
        if (e.step === 'restored') r.restored = true;
        if (e.step === 'failed' || e.step === 'gave-up') r.error = e.error ?? r.error;
        if (e.step === 'gave-up') r.outcome = 'gave-up';
        if (e.step === 'old-gpu') {
          r.oldGpu = e.reason;
          r.conflicts = e.conflicts ?? null;
        }
        if (e.step === 'done') {
          r.outcome = 'done';
          v.toNewGpuMs = v.toStandbyMs !== null && e.elapsedMs !== undefined ? round(v.toStandbyMs + e.elapsedMs) : null;
        }
        break;
      }
      case 'resume': {
        // the failover whose recovery made this GPU
        const v = byNewGpu.get(e.hostId);
        if (!v) break;
        const r = (v.resume ??= { hostId: e.hostId, epoch: e.epoch, started: false, exited: false, exitCode: null, signal: null, error: null });
        if (r.epoch !== e.epoch) break; // the first run counts (the agent runs it once)
        if (e.state === 'started') r.started = true;
        else if (!r.exited) {
          r.exited = true;
          r.exitCode = e.exitCode ?? null;
          r.signal = e.signal ?? null;
          r.error = e.error ?? null;
        }
        break;
      }
      case 'standby':
        if (e.kind === 'up') outages.push({ at: Date.parse(e.at), windowMs: e.windowMs ?? null, recreated: e.recreated === true });
        break;
      case 'phase':
      case 'gpu-seen':
      case 'notice':
        break;
    }
  }
  const outagesIn = outages.filter((x) => x.at >= from);

  const inWindow = all.filter((f) => f.at >= from).map((f) => f.view);
  const backs = switchBacks.filter((b) => b.at >= from);
  const count = (outcome: FailoverView['outcome']) => inWindow.filter((f) => f.outcome === outcome).length;
  const succeeded = count('succeeded');
  const failed = count('failed');
  const causes = new Map<string, { kind: ReportCauseKind; label: string; count: number }>();
  for (const f of inWindow) {
    const label = causeLabel(f.cause, false);
    const c = causes.get(label) ?? { kind: f.cause.kind, label, count: 0 };
    c.count++;
    causes.set(label, c);
  }
  const recovering = inWindow.filter((f) => f.recovery !== null);
  const recovered = recovering.filter((f) => f.recovery?.outcome === 'done');
  const phases = (o.recoveryConfigured ? RECOVERY_RUN_PHASES : PHASES).map((name) => {
    const values = name === 'switch-back' ? backs.filter((b) => b.outcome === 'done').map((b) => b.ms) : inWindow.flatMap((f) => f.phases.filter((p) => p.name === name).map((p) => p.ms));
    return { name, ...timeStat(values) };
  });
  return {
    window: { days: o.days, from: new Date(from).toISOString(), to: new Date(to).toISOString() },
    failovers: {
      total: inWindow.length,
      succeeded,
      failed,
      inProgress: count('in-progress'),
      drills: inWindow.filter((f) => f.drill).length,
      successRate: succeeded + failed === 0 ? null : Math.round((succeeded / (succeeded + failed)) * 10_000) / 10_000,
    },
    mttr: {
      toStandby: timeStat(inWindow.filter((f) => f.outcome === 'succeeded').map((f) => f.toStandbyMs)),
      toNewGpu: { ...timeStat(recovered.map((f) => f.toNewGpuMs)), note: o.recoveryConfigured ? null : RECOVERY_NOTE },
    },
    phases,
    recovery: {
      configured: o.recoveryConfigured === true,
      note: o.recoveryConfigured ? null : RECOVERY_NOTE,
      gpusProvisioned: { done: recovering.filter((f) => f.recovery?.provisioned).length, of: recovering.length },
      dataRestored: { done: recovering.filter((f) => f.recovery?.restored).length, of: recovering.length },
    },
    causes: [...causes.values()].sort((a, b) => b.count - a.count || a.label.localeCompare(b.label)),
    standbyOutages: { count: outagesIn.length, recreated: outagesIn.filter((x) => x.recreated).length, window: timeStat(outagesIn.map((x) => x.windowMs)) },
    rpo: timeStat(inWindow.map((f) => f.rpo?.rpoMs ?? null)),
    switchBacks: { total: backs.length, done: backs.filter((b) => b.outcome === 'done').length, aborted: backs.filter((b) => b.outcome === 'aborted').length },
    standbyCost: standbyCost(o.gcpStandby),
    list: inWindow,
  };
}
