// Decides what the GPU's signals mean, as a pure function of what the proxy
// has observed: heartbeats missing (for the window, or the agent's connection
// closed) AND the proxy's own probe of its code-server failing = failed;
// heartbeats missing but code-server answering = degraded; a preemption
// notice of the proxy's own = a planned failover. Deciding is kept apart from acting on it
// (failover.ts), so every rule here is tested without timers.
import type { Phase } from './state.ts';

export interface Signals {
  /** ms since the last heartbeat (or since the proxy started, before the first) */
  silenceMs: number;
  /** the agent's connection closed after it had connected (positive evidence, not silence) */
  connectionLost: boolean;
  /** heartbeat interval x missed heartbeats */
  windowMs: number;
  /** failed probes of the GPU's code-server in a row */
  probeFailures: number;
  /** the last probe's error code, e.g. ECONNREFUSED */
  probeError: string | null;
  /** a preemption notice the proxy takes as it is (its own watchers'; an agent's is corroborated first, in failover.ts) */
  preempted: boolean;
  /** where it came from, for the log */
  preemptionSource?: string;
}

export type Verdict =
  | { kind: 'healthy' }
  /** a first run: the GPU's agent never heartbeated at this epoch, so its silence means nothing yet */
  | { kind: 'waiting'; reason: string }
  | { kind: 'suspect'; reason: string }
  | { kind: 'degraded'; reason: string }
  | { kind: 'failed'; planned: boolean; reason: string };

/** Errors that say the host answered "nobody here" (or the route is gone): one is enough. */
const REFUSALS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH']);

/** The last probe failed with the host's own "nobody here" (refused, reset, no route). */
function refused(probeFailures: number, probeError: string | null): boolean {
  return probeFailures >= 1 && probeError !== null && REFUSALS.has(probeError);
}

/** The proxy's own probe says the GPU's code-server is down (not merely slow once). */
export function probeDown(probeFailures: number, probeError: string | null): boolean {
  return probeFailures >= 2 || refused(probeFailures, probeError);
}

export function judge(s: Signals): Verdict {
  if (s.preempted) return { kind: 'failed', planned: true, reason: s.preemptionSource ? `preemption notice (${s.preemptionSource})` : 'preemption notice' };
  const missing = s.silenceMs >= s.windowMs || s.connectionLost;
  if (!missing) return { kind: 'healthy' };
  const why = s.connectionLost ? 'agent connection lost' : `no heartbeat for ${Math.round(s.silenceMs)} ms`;
  if (probeDown(s.probeFailures, s.probeError)) return { kind: 'failed', planned: false, reason: `${why}; code-server probe failing (${s.probeError ?? 'no answer'})` };
  if (s.probeFailures === 0) return { kind: 'degraded', reason: `${why}; code-server still answers` };
  return { kind: 'suspect', reason: `${why}; probing code-server` };
}

/** The phase a verdict puts a proxy in that is not failing over. */
export function phaseOf(v: Verdict): Phase {
  switch (v.kind) {
    case 'healthy':
      return 'normal';
    case 'waiting':
      return 'waiting';
    case 'degraded':
      return 'degraded';
    default:
      return 'suspect';
  }
}

/** What makes the serving GPU doubtful before any verdict: the earliest signs, for the editor's overlay (proxy/editor-events.ts). */
export interface Doubt {
  /** ms since the last heartbeat */
  silenceMs: number;
  /** the agent's connection closed after it had connected */
  connectionLost: boolean;
  /** the agent's heartbeat interval, ms */
  heartbeatIntervalMs: number;
  /** failed probes (or refused forwards, which probe at once) of its code-server in a row */
  probeFailures: number;
  /** the last probe's error ("ECONNREFUSED", "no answer within 400 ms"), null when it answered */
  probeError: string | null;
  /** its code-server answered a probe (or forwarded traffic) since the last heartbeat: the silence is the agent's alone, or load */
  answeredSinceHeartbeat: boolean;
}

/**
 * The GPU is in doubt: its agent's connection closed; or its code-server refused (or reset) a probe:
 * nobody listens where it did, a SIGKILL's mark; or a whole heartbeat is missing (one interval past the
 * one due) and its code-server has not answered since, or fails its probes. A probe merely unanswered
 * (a timeout, a 5xx) is no sign while heartbeats come: a code-server serving a reload of the workbench
 * on a busy host missed two 400 ms probes in a row, and the reloaded page flashed "Switching to the CPU
 * standby..." (nor is a busy agent's late heartbeat whose code-server answers). Earlier than `judge` by
 * design: a page may show that something is happening (and hide it again if nothing was); it never
 * moves a route.
 */
export function doubted(s: Doubt): boolean {
  if (s.connectionLost) return true;
  if (refused(s.probeFailures, s.probeError)) return true;
  return s.silenceMs >= 2 * s.heartbeatIntervalMs && (!s.answeredSinceHeartbeat || s.probeFailures > 0);
}
