// Every error Standby raises on purpose, with a stable code: in logs, as the
// process's exit code, and as the `code` of every error the proxy's HTTP
// answers carry (proxy/problem.ts), with its HTTP status. Messages say what
// is wrong and what to do about it.

export const ErrorCodes = {
  STANDBY_ERR_CONFIG_INVALID: { status: 400, exit: 78 },
  STANDBY_ERR_CONFIG_UNREADABLE: { status: 400, exit: 78 },
  STANDBY_ERR_MISSING_BINARY: { status: 500, exit: 69 },
  STANDBY_ERR_WORKSPACE_MISSING: { status: 500, exit: 66 },
  STANDBY_ERR_AGENT_UNREACHABLE: { status: 503, exit: 69 },
  STANDBY_ERR_RSYNC_FAILED: { status: 502, exit: 1 },
  // an rsync too old on either end (agent/rsync-version.ts): what to install is in the message
  STANDBY_ERR_RSYNC_UNSUPPORTED: { status: 502, exit: 69 },
  STANDBY_ERR_NOT_BUILT: { status: 501, exit: 2 },
  STANDBY_ERR_VERIFY_DIFFERS: { status: 409, exit: 1 },
  STANDBY_ERR_STATE_CORRUPT: { status: 500, exit: 65 },
  STANDBY_ERR_STATE_UNWRITABLE: { status: 500, exit: 73 },
  // another proxy holds the state folder's lock (proxy/state-lock.ts): EX_TEMPFAIL, it may be gone on a retry
  STANDBY_ERR_ALREADY_RUNNING: { status: 409, exit: 75 },
  // a file holding secrets (config, token, private key) that group or others may read (config-file.ts)
  STANDBY_ERR_SECRETS_EXPOSED: { status: 500, exit: 77 },
  STANDBY_ERR_UNAUTHORIZED: { status: 401, exit: 77 },
  STANDBY_ERR_PROXY_UNREACHABLE: { status: 503, exit: 69 },
  STANDBY_ERR_CONFLICT: { status: 409, exit: 1 },
  // fencing (docs/fencing.md): the receiver's refusals have exit codes of their own, so a writer can tell them apart
  STANDBY_ERR_COMMAND_REFUSED: { status: 403, exit: 77 },
  STANDBY_ERR_EPOCH_STALE: { status: 409, exit: 79 },
  STANDBY_ERR_HOST_REVOKED: { status: 403, exit: 80 },
  STANDBY_ERR_LOCK_TIMEOUT: { status: 503, exit: 75 },
  STANDBY_ERR_FENCE_FAILED: { status: 502, exit: 1 },
  STANDBY_ERR_STANDBY_UNREACHABLE: { status: 503, exit: 69 },
  // the installer (installer/), and the proxy's bundle when it cannot be built
  STANDBY_ERR_INSTALL_FAILED: { status: 500, exit: 73 },
  // provisioners (proxy/provision/): a cloud call that failed after its retries, or an operation that ended in error
  STANDBY_ERR_PROVIDER_FAILED: { status: 502, exit: 69 },
  // a cloud's credentials missing, unreadable, or refused (401/403)
  STANDBY_ERR_PROVIDER_AUTH: { status: 502, exit: 77 },
  // the proxy's HTTP answers (docs/configuration.md, "Errors in HTTP answers"):
  // a request body that is not JSON, is over its limit or fails the endpoint's schema (not a config file: that is CONFIG_INVALID)
  STANDBY_ERR_BAD_REQUEST: { status: 400, exit: 65 },
  // no such endpoint, or no such host
  STANDBY_ERR_NOT_FOUND: { status: 404, exit: 66 },
  STANDBY_ERR_METHOD_NOT_ALLOWED: { status: 405, exit: 64 },
  // a client address locked out after too many failed authentications (proxy/auth-throttle.ts)
  STANDBY_ERR_TOO_MANY_REQUESTS: { status: 429, exit: 75 },
  // the proxy cannot name the URL hosts reach it by: its config has no publicUrl and it listens on every address
  STANDBY_ERR_NO_PUBLIC_URL: { status: 503, exit: 78 },
  // a bug: the proxy's log has the details, the answer does not
  STANDBY_ERR_INTERNAL: { status: 500, exit: 70 },
} as const satisfies Record<string, { status: number; exit: number }>;

export type ErrorCode = keyof typeof ErrorCodes;

export class StandbyError extends Error {
  readonly code: ErrorCode;
  readonly context: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StandbyError';
    this.code = code;
    this.context = context;
  }

  get status(): number {
    return ErrorCodes[this.code].status;
  }

  get exitCode(): number {
    return ErrorCodes[this.code].exit;
  }
}

/** A program that is not there (a failed lookup, or a spawn's ENOENT): says which Debian/Ubuntu package brings it. */
export function missingBinary(name: string, debianPackage: string, where = 'this host', cause?: unknown): StandbyError {
  return new StandbyError('STANDBY_ERR_MISSING_BINARY', `${name} is not installed on ${where}: install it (Debian/Ubuntu: apt-get install ${debianPackage})`, { binary: name }, { cause });
}
