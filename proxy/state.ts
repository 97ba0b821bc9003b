// The proxy's durable state and the events that change it. Every change is an
// event, written to the log before it takes effect; the state is what the
// events add up to (`reduce`), so a restarted proxy replays them and routes
// the same way.

export type Side = 'primary' | 'standby';

/**
 * waiting: the GPU serves the URL but its agent never sent a heartbeat at this
 * epoch (a first run: nothing to fail over from, so nothing is fenced or
 * revoked). normal: the GPU serves. suspect: its heartbeats stopped, the proxy
 * is checking. degraded: heartbeats stopped but its code-server answers (no
 * failover). failing_over: a new epoch is logged; fencing the standby.
 * failed_over: the standby serves. switching_back: a new epoch is logged to
 * move back to the GPU; fencing the standby's receiver under it.
 */
export type Phase = 'waiting' | 'normal' | 'suspect' | 'degraded' | 'failing_over' | 'failed_over' | 'switching_back';

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
  /** switching back to the GPU begins: the new epoch is logged before the standby is fenced under it */
  | { type: 'switch-back'; epoch: number }
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
      return { ...next, epoch: Math.max(s.epoch, e.epoch), phase: 'switching_back' };
  }
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
