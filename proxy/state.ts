// The proxy's durable state and the events that change it. Every change is an
// event, written to the log before it takes effect; the state is what the
// events add up to (`reduce`), so a restarted proxy replays them and routes
// the same way.
import type { EditorDirs } from '../protocol/receiver.ts';

export type Side = 'primary' | 'standby';

/**
 * waiting: the GPU serves the URL but its agent never sent a heartbeat at this
 * epoch (a first run: nothing to fail over from, so nothing is fenced or
 * revoked). normal: the GPU serves. suspect: its heartbeats stopped, the proxy
 * is checking. degraded: heartbeats stopped but its code-server answers (no
 * failover). failing_over: a new epoch is logged; fencing the standby.
 * failed_over: the standby serves. recovering: the standby serves while a
 * new GPU is brought up and restored (proxy/recovery.ts). switching_back: a
 * new epoch is logged to move back to the GPU; fencing the standby's receiver
 * under it.
 */
export type Phase = 'waiting' | 'normal' | 'suspect' | 'degraded' | 'failing_over' | 'failed_over' | 'recovering' | 'switching_back';

/** A GPU the proxy routes to when it serves: the configured one (primary.* in proxy.json) until a recovery replaces it. */
export interface GpuRecord {
  /** its agent's host id */
  id: string;
  /** its code-server, as the proxy reaches it */
  url: string;
  /** the provider that made it and its id there (absent: the configured GPU, made by nobody we know) */
  provider?: string;
  providerId?: string;
}

/** A new GPU being brought up: where it is reached and what it is. */
export interface RecoveryHost extends GpuRecord {
  provider: string;
  providerId: string;
  /** its receiver over SSH (the fencing key logs in; the standby's agent restores through it) */
  ssh: { host: string; port: number; user: string };
  /** its workspace folder (its receiver's root): where a restore pushes */
  workspace: string;
  /** its code-server folders, as its receiver listed its roots when the standby's agent was authorized there: where a restore pushes the editor's */
  editor?: EditorDirs;
  /** its SSH host key lines, known_hosts format, as first seen */
  knownHosts: string[];
  /** $/hour, when the provider says */
  pricePerHour: number | null;
}

/**
 * Steps of a recovery, stable words (they go to disk and to the report). started: a recovery began for the
 * failover's epoch. search: offers were searched (found or not). intent: a GPU is about to be created (written
 * before the call, so a restarted proxy looks for it instead of creating a second). created: the provider made
 * it and it runs. ssh-ready: its receiver answers over SSH and is fenced at the epoch. agent-ready: its agent
 * enrolled and heartbeats (fenced). restore: the standby's agent is granted to push to it. restored: the new
 * GPU holds the standby's copy. failed: a try failed (rolled back: its GPU destroyed). gave-up: no try is left;
 * the standby serves on. done: switched back to the new GPU. old-gpu: the GPU that was left was destroyed
 * (or kept, by config).
 */
export type RecoveryStep = 'started' | 'search' | 'intent' | 'created' | 'ssh-ready' | 'agent-ready' | 'restore' | 'restored' | 'failed' | 'gave-up' | 'done' | 'old-gpu';

/** A retired GPU's unsent changes, copied beside the standby's workspace (never into it) before it went. */
export interface ConflictsCollected {
  /** the folder on the standby: <workspace>.conflicts/<time>-<host id> */
  folder: string;
  files: number;
  bytes: number;
  /** deletions it had not got onto the standby: listed, not applied */
  deletions: number;
  /** the first paths (the folder holds them all) */
  paths: string[];
  /** false: its agent had restarted since its last pass to the standby: what it changed before that restart is not known */
  complete: boolean;
  /** the copy failed part way (what landed stays), or null */
  error: string | null;
}

/** What the durable state knows of the recovery under way, or of the last one. */
export interface RecoveryState {
  /** the failover epoch it recovers from */
  epoch: number;
  attempt: number;
  step: RecoveryStep;
  /** the provider and the name a new GPU gets for this try (hostNameText) */
  provider: string;
  name: string;
  /** the new GPU once created */
  host: RecoveryHost | null;
  /** the GPU in service when the switch back began (logged with `restored`): what is retired once the new one serves */
  old?: GpuRecord;
  /** why the last try failed, or null */
  error: string | null;
}

export interface ProxyState {
  /** the epoch writers must hold; raised by each failover */
  epoch: number;
  /** the highest epoch the standby confirmed it is fenced at */
  fencedEpoch: number;
  /** who serves the URL */
  active: Side;
  phase: Phase;
  /** the last watermark the primary reported before the failover started, or null */
  watermarkAtFailover: number | null;
  /** changes the primary had not acknowledged then (the RPO), or null */
  pendingAtFailover: number | null;
  failovers: number;
  /** the last epoch at which the GPU's agent was seen (a heartbeat while the GPU served): below `epoch`, the GPU is awaited */
  gpuSeenEpoch: number;
  /** the GPU in service (routed to when the primary side serves); null: the configured one (primary.*) */
  gpu: GpuRecord | null;
  /** the recovery under way (or the last one, ended: done or gave-up), or null */
  recovery: RecoveryState | null;
  /** the log sequence this state includes */
  seq: number;
}

export const INITIAL_STATE: ProxyState = Object.freeze({
  epoch: 1,
  fencedEpoch: 0,
  active: 'primary',
  phase: 'normal',
  watermarkAtFailover: null,
  pendingAtFailover: null,
  failovers: 0,
  gpuSeenEpoch: 0,
  gpu: null,
  recovery: null,
  seq: 0,
});

/**
 * Why a failover began; stable words (they go to disk and to the report). silence: heartbeats missing for the
 * window; connection-lost: the agent's socket closed; both with the proxy's probe of code-server failing.
 * preemption: a notice, from the proxy's own watcher or an agent's (corroborated). manual: an admin's request.
 * drill: a rehearsal (standby drill, coming).
 */
export type FailoverCause =
  | { kind: 'silence' | 'connection-lost'; probeError: string | null }
  | { kind: 'preemption'; source: string; by: 'proxy' | 'agent' }
  | { kind: 'manual' }
  | { kind: 'drill' };

interface EventBase {
  /** position in the log, from 1 */
  seq: number;
  /** wall-clock time, for people reading the history; never used to decide */
  at: string;
  reason: string;
}

export type ProxyEvent = EventBase & (
  | { type: 'started' }
  | { type: 'phase'; phase: Phase }
  /** failover begins: the new epoch is logged before anything else happens */
  | {
      type: 'epoch';
      epoch: number;
      planned: boolean;
      /** the last heartbeat's sync state (null: no heartbeat): its watermark, and the changes numbered above it */
      watermark: number | null;
      pending: number | null;
      /** why the failover began (absent in logs written before the failover report) */
      cause?: FailoverCause;
      /** ms from the last heartbeat's arrival to this event, on the proxy's monotonic clock; null: none since this proxy started */
      heartbeatAgeMs?: number | null;
      /** the last heartbeat's age of the oldest change the standby lacked, ms; null: none outstanding (the RPO) */
      oldestPendingAgeMs?: number | null;
      /** ms from the failover's start (the verdict, the admin's request, a notice) to this event: a planned one's freeze and final pass */
      leadMs?: number;
    }
  /** `ms`: the fence's whole time, every attempt (absent in older logs) */
  | { type: 'fenced'; epoch: number; waitedMs: number; killed: number; ms?: number }
  /**
   * `ms`: moving the route (the left side's sockets closed); null in older logs. `totalMs`: from the switch's
   * start (a failover's last heartbeat, or its start when planned; a switch back's freeze) to here; absent when
   * unknown (older logs, a switch a restarted proxy resumed)
   */
  | { type: 'routed'; side: Side; epoch: number; ms: number | null; totalMs?: number }
  /** the GPU's agent heartbeated at this epoch while the GPU served: from now on its silence means something */
  | { type: 'gpu-seen'; epoch: number }
  /**
   * a switch whose fence had not completed was called off by the admin: `side` serves again at this (new)
   * epoch (the GPU after an aborted failover; the standby after an aborted switch back). Absent: the GPU.
   */
  | { type: 'aborted'; epoch: number; side?: Side }
  /** an agent's preemption notice: the freeze and final pass began (corroborating), then it was corroborated or not */
  | { type: 'notice'; source: string; outcome: 'corroborating' | 'corroborated' | 'not-corroborated' }
  /**
   * switching back to the GPU begins: the new epoch is logged before the standby is fenced under it.
   * `gpu`: a recovery's new GPU, which becomes the GPU in service (absent: the same GPU comes back)
   */
  | { type: 'switch-back'; epoch: number; gpu?: GpuRecord }
  /**
   * the standby machine as its provider says (proxy/provision/standby-keeper.ts): down (preempted, stopped,
   * gone: no standby copy reachable) or up again (`windowMs`: the window's upper bound; `recreated`: made anew,
   * its copy empty until the GPU's agent resyncs it fully)
   */
  | { type: 'standby'; kind: 'down' | 'up'; id: string; detail: string; downMs?: number; windowMs?: number; recreated?: boolean }
  /**
   * a step of a recovery (RecoveryStep). `ms`: the step's own time on the monotonic clock, where it has one;
   * `host`: the new GPU (created on); `offer`: what the search chose; `error`: why a try failed
   */
  | {
      type: 'recovery';
      step: RecoveryStep;
      epoch: number;
      attempt: number;
      provider: string;
      name: string;
      ms?: number;
      /** ms since the recovery began in this process, on the monotonic clock (absent: resumed by a restarted proxy) */
      elapsedMs?: number;
      host?: RecoveryHost;
      /** restored: the GPU in service then, which the switch back leaves */
      old?: GpuRecord;
      offer?: { id: string; pricePerHour: number; gpuName: string; location: string };
      error?: string;
      /** restored: files and bytes on the new GPU */
      files?: number;
      bytes?: number;
      /** old-gpu: what the GPU that was left had not got onto the standby, copied into the conflicts folder there (absent: nothing was collected, the message says why) */
      conflicts?: ConflictsCollected;
    }
  /**
   * the resume command on a recovery's new GPU (agent/resume.ts), as its heartbeats said, each change logged
   * once (proxy/resume-events.ts): started, then exited (with its code or signal; `error`: it did not start, or
   * was killed on its timeout, or ended unseen). Changes nothing in the state: the report reads it
   */
  | { type: 'resume'; hostId: string; epoch: number; state: 'started' | 'exited'; exitCode?: number | null; signal?: string | null; error?: string | null }
);

export type EventType = ProxyEvent['type'];
/** An event before the store gives it its place in the log. */
export type NewEvent = ProxyEvent extends infer E ? (E extends ProxyEvent ? Omit<E, 'seq' | 'at'> : never) : never;

export function reduce(s: ProxyState, e: ProxyEvent): ProxyState {
  const next = { ...s, seq: e.seq };
  switch (e.type) {
    case 'started':
      return next;
    case 'phase':
      return { ...next, phase: e.phase };
    case 'epoch':
      return { ...next, epoch: Math.max(s.epoch, e.epoch), phase: 'failing_over', watermarkAtFailover: e.watermark, pendingAtFailover: e.pending };
    case 'fenced':
      return { ...next, fencedEpoch: Math.max(s.fencedEpoch, e.epoch) };
    case 'routed':
      return {
        ...next,
        active: e.side,
        phase: e.side === 'standby' ? 'failed_over' : 'normal',
        failovers: s.failovers + (e.side === 'standby' && s.active !== 'standby' ? 1 : 0),
        // switched back: the GPU's agent was checked connected and heartbeating at this epoch before it
        gpuSeenEpoch: e.side === 'primary' ? Math.max(s.gpuSeenEpoch, e.epoch) : s.gpuSeenEpoch,
      };
    case 'gpu-seen':
      return { ...next, gpuSeenEpoch: Math.max(s.gpuSeenEpoch, e.epoch), phase: s.phase === 'waiting' ? 'normal' : s.phase };
    case 'aborted':
      if (e.side === 'standby') return { ...next, active: 'standby', phase: 'failed_over', epoch: Math.max(s.epoch, e.epoch) };
      // an aborted failover needs the GPU answering: it counts as seen at the new epoch
      return { ...next, active: 'primary', phase: 'normal', epoch: Math.max(s.epoch, e.epoch), gpuSeenEpoch: Math.max(s.gpuSeenEpoch, e.epoch) };
    case 'notice':
      return next;
    case 'switch-back':
      return { ...next, epoch: Math.max(s.epoch, e.epoch), phase: 'switching_back', gpu: e.gpu ?? s.gpu };
    case 'recovery':
      return reduceRecovery(next, e);
    case 'standby':
    case 'resume':
      return next;
  }
}

function reduceRecovery(s: ProxyState, e: Extract<ProxyEvent, { type: 'recovery' }>): ProxyState {
  const before = s.recovery?.epoch === e.epoch && s.recovery.attempt === e.attempt ? s.recovery : null;
  // a failed try loses its host (rolled back); any other step keeps what it knew
  const host = e.step === 'failed' || e.step === 'started' ? null : e.host ?? before?.host ?? null;
  const old = e.step === 'failed' || e.step === 'started' ? undefined : e.old ?? before?.old;
  const recovery: RecoveryState = { epoch: e.epoch, attempt: e.attempt, step: e.step, provider: e.provider, name: e.name, host, ...(old ? { old } : {}), error: e.step === 'failed' || e.step === 'gave-up' ? e.error ?? null : before?.error ?? null };
  // the phase follows while the standby serves: recovering, or back to failed_over when it gives up
  const standbyServes = s.active === 'standby' && (s.phase === 'failed_over' || s.phase === 'recovering');
  const ended = e.step === 'gave-up' || e.step === 'done' || e.step === 'old-gpu';
  return { ...s, recovery, phase: standbyServes ? (ended ? 'failed_over' : 'recovering') : s.phase };
}

/** True while the GPU serves but its agent never heartbeated at the current epoch: no automatic failover. */
export function awaitingGpu(s: ProxyState): boolean {
  return s.active === 'primary' && s.phase !== 'failing_over' && s.gpuSeenEpoch < s.epoch;
}

/** What a proxy restarted mid-switch (a failover, or a switch back: the phase says which) still has to do. */
export function unfinished(s: ProxyState): 'fence' | 'route' | undefined {
  if (s.phase !== 'failing_over' && s.phase !== 'switching_back') return undefined;
  return s.fencedEpoch < s.epoch ? 'fence' : 'route';
}
