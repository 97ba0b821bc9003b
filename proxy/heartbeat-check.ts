// Whether a heartbeat, valid by the schema, also agrees with what the proxy
// knows: the epoch is one the proxy could have granted this host, and the
// numbers only move forward on one connection (the agent numbers heartbeats
// and changes for the life of its process; a restarted agent, on a new
// connection, starts again, and so do the sync numbers of a new push target). A pure function of the last accepted heartbeat
// of the connection, so the hub decides and logs in one place.
import type { Heartbeat } from '../protocol/messages.ts';

/** What the proxy knows when a heartbeat arrives. */
export interface HeartbeatContext {
  /** the last heartbeat accepted on this connection, if any */
  previous: Heartbeat | undefined;
  /** the proxy's current epoch */
  epoch: number;
  /** the epoch last granted to this host by this proxy process, if any */
  lastGranted: number | undefined;
}

export type HeartbeatVerdict =
  | { accept: true }
  /** dropped: not recorded, not liveness; the connection stays (a stale epoch is answered with the grant so the agent learns the current one) */
  | { accept: false; kind: 'replayed' | 'stale-epoch' | 'inconsistent'; reason: string }
  /** nobody could have sent this: the connection is closed with a protocol error */
  | { accept: false; kind: 'impossible-epoch'; reason: string };

export function checkHeartbeat(hb: Heartbeat, known: HeartbeatContext): HeartbeatVerdict {
  if (hb.epoch > known.epoch) return { accept: false, kind: 'impossible-epoch', reason: `epoch ${hb.epoch} is above the proxy's epoch ${known.epoch}: no proxy granted it` };
  // 0: never granted; the current epoch (also what a proxy restarted at the same epoch granted); or the one this proxy granted last
  if (hb.epoch !== 0 && hb.epoch !== known.epoch && hb.epoch !== known.lastGranted) {
    return { accept: false, kind: 'stale-epoch', reason: `epoch ${hb.epoch} is not the one granted to this host (${known.lastGranted ?? known.epoch})` };
  }
  if (hb.sync.watermark > hb.sync.lastSeq) {
    return { accept: false, kind: 'inconsistent', reason: `watermark ${hb.sync.watermark} is above lastSeq ${hb.sync.lastSeq}` };
  }
  const previous = known.previous;
  if (previous) {
    if (hb.seq <= previous.seq) return { accept: false, kind: 'replayed', reason: `seq ${hb.seq} after ${previous.seq}: replayed or out of order` };
    // a new push target (a restore granted, or given up) starts the sync numbers afresh
    const sameTarget = hb.sync.target === previous.sync.target;
    if (sameTarget && hb.sync.lastSeq < previous.sync.lastSeq) return { accept: false, kind: 'inconsistent', reason: `lastSeq went back from ${previous.sync.lastSeq} to ${hb.sync.lastSeq}` };
    if (sameTarget && hb.sync.watermark < previous.sync.watermark) return { accept: false, kind: 'inconsistent', reason: `watermark went back from ${previous.sync.watermark} to ${hb.sync.watermark}` };
    if (hb.epoch < previous.epoch) return { accept: false, kind: 'stale-epoch', reason: `epoch went back from ${previous.epoch} to ${hb.epoch}` };
  }
  return { accept: true };
}
