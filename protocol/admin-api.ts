// The proxy's HTTP contract with the CLI, the installer and the agent: the
// answer shapes of the admin API and of enrollment, the error answer, the
// token prefixes that tell one kind of credential from another, and the
// install downloads' paths. The proxy serves these; the others read them;
// none imports another's code.
import type { ErrorCode } from '../core/errors.ts';

/** Every error answer in JSON (admin API, enrollment, the agent socket's refusals): a STANDBY_ERR_* code and what to do. */
export interface Problem {
  error: { code: ErrorCode; message: string };
}

/** A one-time invitation to enroll (`standby hosts add`). */
export const INVITE_PREFIX = 'sbi_';
/** An agent's bearer token, issued at enrollment or rotation. */
export const AGENT_TOKEN_PREFIX = 'sba_';
/** A download-only token: the bundle, until it expires. */
export const DOWNLOAD_PREFIX = 'sbd_';

/** The public half of the proxy's fencing key, which a standby's install authorizes. */
export const FENCE_KEY_PATH = '/_standby/fence-key.pub';
export const INSTALL_PATHS = ['/_standby/install.sh', '/_standby/bundle.tar.gz', '/_standby/bundle.sha256', FENCE_KEY_PATH] as const;

/** POST /_standby/enroll's answer to a valid invitation. */
export interface EnrollAnswer {
  hostId: string;
  agentToken: string;
  /** where the agent mirrors to, as the proxy reaches the standby (the installer's --standby-* flags win) */
  standby: { host: string; port: number; user: string; path: string | null };
  /** known_hosts lines of the standby's host key, when the proxy has them */
  knownHosts: string[];
}

/** A host's life in the proxy's registry. */
export type HostState = 'invited' | 'active' | 'revoked';

/** One row of GET /_standby/api/v1/hosts. */
export interface HostView {
  id: string;
  /** where its agent token comes from: issued at enrollment, proxy.json, or none yet (invited) */
  source: 'enrolled' | 'rotated' | 'proxy.json' | 'none';
  state: HostState | 'configured';
  role: 'gpu' | 'standby' | 'other';
  connected: boolean;
  heartbeatAgeMs: number | null;
  key: { type: string; fingerprint: string } | null;
  invitedAt: string | null;
  inviteExpiresAt: string | null;
  enrolledAt: string | null;
  /** when the token was last rotated, and until when the one before it is still accepted (null: no second token) */
  rotatedAt: string | null;
  previousTokenValidUntil: string | null;
  revokedAt: string | null;
  revokedWhy: string | null;
  keyRevoked: boolean | null;
  keyRevokeError: string | null;
}
