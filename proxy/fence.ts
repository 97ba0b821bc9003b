// The proxy's requests to the standby's receiver (proxy/standby-ssh.ts carries
// them): the fence (`standby receive --fence <epoch>`, revoking the fenced
// GPU under the same lock), and a host's writer key put in or revoked. The
// words and the answer are protocol/receiver.ts's.
import { StandbyError } from '../core/errors.ts';
import { authorizeRequestArgs, fenceRequestArgs, parseAuthorizeReport, parseFenceReport, type FenceReport, type FenceRequest } from '../protocol/receiver.ts';
import { askStandby, receiverCommand, type FenceTarget, type StandbyRequestOptions } from './standby-ssh.ts';

export type { FenceTarget } from './standby-ssh.ts';

/** A fence asked for from here: what the standby is asked (the revoked hosts' writer keys are refused and removed), and how the request travels. */
export interface FenceOptions extends StandbyRequestOptions, FenceRequest {}

/** What the standby reported (its JSON line), plus where and how long the whole fence took from here. */
export interface FenceResult extends FenceReport {
  host: string;
  /** connect to answer, ms */
  durationMs: number;
}

const DEFAULT_WAIT_MS = 10_000;

export function fenceCommand(epoch: number, options: FenceOptions = {}): string {
  return receiverCommand(fenceRequestArgs(epoch, options), options);
}

async function fenceOrRevoke(target: FenceTarget, epoch: number | undefined, what: string, options: FenceOptions): Promise<FenceResult> {
  const timeoutMs = options.timeoutMs ?? (options.waitMs ?? DEFAULT_WAIT_MS) + 10_000;
  let answer: Record<string, unknown>;
  let durationMs: number;
  try {
    ({ answer, durationMs } = await askStandby(target, fenceRequestArgs(epoch, options), what, { ...options, timeoutMs }));
  } catch (err) {
    if (err instanceof StandbyError && epoch !== undefined) err.message += '; the route does not move to it until a fence succeeds';
    throw err;
  }
  const parsed = parseFenceReport(answer);
  const failed = (message: string, context: Record<string, unknown>) =>
    new StandbyError('STANDBY_ERR_FENCE_FAILED', `${what} on the standby ${target.host} failed: ${message}`, { host: target.host, ...context });
  if (!parsed) throw failed(`its answer is not the fence's JSON line: ${JSON.stringify(answer).slice(0, 300)}`, {});
  if (epoch !== undefined && parsed.epoch !== epoch) throw failed(`the standby reports epoch ${parsed.epoch}, not ${epoch}`, { reported: parsed.epoch });
  return { host: target.host, ...parsed, durationMs };
}

/**
 * Fences the standby at `epoch`: resolves once it reports the epoch written and
 * no writer of an older one (or of a revoked host) left. Idempotent; safe to retry.
 */
export function fenceStandby(target: FenceTarget, epoch: number, options: FenceOptions = {}): Promise<FenceResult> {
  return fenceOrRevoke(target, epoch, `fencing at epoch ${epoch}`, options);
}

/** Revokes hosts' writer keys on the standby at its current epoch (no failover). Idempotent. */
export function revokeOnStandby(target: FenceTarget, hosts: readonly string[], options: FenceOptions = {}): Promise<FenceResult> {
  return fenceOrRevoke(target, undefined, `revoking ${hosts.join(', ')}`, { ...options, revoke: hosts });
}

export interface AuthorizeResult {
  authorized: string;
  /** earlier lines of the host (or of this key) replaced */
  replaced: number;
  /** the host had been revoked and is no longer */
  lifted: boolean;
  /** the folders the key may write into (the first is where the agent mirrors to) */
  roots: string[];
}

/** Puts `publicKey` in as host `hostId`'s writer key on the standby (restricted to the receiver, host pinned). */
/**
 * Lets a fenced host's key write its unsent changes into a conflicts folder beside the standby's
 * workspace (`<workspace>.conflicts/<name>`, made by the request): any epoch, nothing deleted, never
 * into the workspace; the host stays revoked there. Resolves with the folder. revokeOnStandby takes the line back.
 */
export async function authorizeConflictsOnStandby(target: FenceTarget, hostId: string, publicKey: string, name: string, options: StandbyRequestOptions = {}): Promise<string> {
  const { answer } = await askStandby(target, authorizeRequestArgs(hostId, publicKey, name), `opening the conflicts folder ${name} to ${hostId}`, options);
  const report = parseAuthorizeReport(answer);
  const folder = report?.roots[0];
  if (report?.authorized !== hostId || folder === undefined || !folder.endsWith(`/${name}`)) {
    throw new StandbyError('STANDBY_ERR_FENCE_FAILED', `opening the conflicts folder ${name} to ${hostId} on the standby ${target.host}: unexpected answer ${JSON.stringify(answer).slice(0, 300)} (a receiver older than this proxy answers without one: upgrade the standby's program)`, { host: target.host });
  }
  return folder;
}

export async function authorizeOnStandby(target: FenceTarget, hostId: string, publicKey: string, options: StandbyRequestOptions = {}): Promise<AuthorizeResult> {
  const { answer } = await askStandby(target, authorizeRequestArgs(hostId, publicKey), `authorizing the writer key of ${hostId}`, options);
  const report = parseAuthorizeReport(answer);
  if (report?.authorized !== hostId) throw new StandbyError('STANDBY_ERR_FENCE_FAILED', `authorizing the writer key of ${hostId} on the standby ${target.host}: unexpected answer ${JSON.stringify(answer).slice(0, 300)}`, { host: target.host });
  return { authorized: hostId, replaced: report.replaced, lifted: report.lifted, roots: report.roots };
}
