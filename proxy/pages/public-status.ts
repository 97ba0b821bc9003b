// What the proxy answers at /_standby/status for anyone who can reach the URL
// (the transition page polls it). Deliberately small and in fixed words: no
// host ids, addresses, errors, epochs or timings, which belong to the
// authenticated API (/_standby/api/v1/status) and the log.

/** Where the proxy serves PublicStatus (inside its reserved /_standby/ prefix). */
export const PUBLIC_STATUS_PATH = '/_standby/status';

export interface PublicStatus {
  /** the failover state machine's state, as serialized: normal, suspect, failed_over, recovering, switching_back */
  phase: string;
  /** the role of the backend the URL is routed to now; null while it routes nowhere (between fence and route) */
  active: { role: 'primary' | 'standby' } | null;
  /** true once the active backend's code-server answers: the transition page then reloads into it */
  ready: boolean;
  /** one fixed sentence per phase for the user, shown as the page's live status line */
  message: string;
}
