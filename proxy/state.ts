// The proxy's durable state and the events that change it. Every change is an
// event, written to the log before it takes effect; the state is what the
// events add up to (`reduce`), so a restarted proxy replays them and routes
// the same way.

export type Side = 'primary' | 'standby';

/**
 * normal: the GPU serves. suspect: its heartbeats stopped, the proxy is
 * checking. degraded: heartbeats stopped but its code-server answers (no
 * failover). failing_over: a new epoch is logged; fencing the standby.
 * failed_over: the standby serves.
 */
export type Phase = 'normal' | 'suspect' | 'degraded' | 'failing_over' | 'failed_over';

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
  seq: 0,
});

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
  | { type: 'epoch'; epoch: number; planned: boolean; watermark: number | null; pending: number | null }
  | { type: 'fenced'; epoch: number; waitedMs: number; killed: number }
  | { type: 'routed'; side: Side; epoch: number; ms: number | null }
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
      return { ...next, active: e.side, phase: e.side === 'standby' ? 'failed_over' : 'normal', failovers: s.failovers + (e.side === 'standby' && s.active !== 'standby' ? 1 : 0) };
  }
}

/** What a proxy restarted mid-failover still has to do. */
export function unfinished(s: ProxyState): 'fence' | 'route' | undefined {
  if (s.phase !== 'failing_over') return undefined;
  return s.fencedEpoch < s.epoch ? 'fence' : 'route';
}
