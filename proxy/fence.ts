// The proxy's requests to the standby's receiver (proxy/standby-ssh.ts carries
// them): the fence (`standby receive --fence <epoch>`, revoking the fenced
// GPU under the same lock), and a host's writer key put in or revoked.
import type { FenceResult as StandbyFenceResult } from '../standby/fence.ts';
import type { KilledReceiver } from '../standby/receiver-registry.ts';
import { StandbyError } from '../core/errors.ts';
import { askStandby, receiverCommand, type FenceTarget, type StandbyRequestOptions } from './standby-ssh.ts';

export type { FenceTarget } from './standby-ssh.ts';

export interface FenceOptions extends StandbyRequestOptions {
  /** how long writers of older epochs (and of revoked hosts) may finish before the standby kills them, ms (default: the receiver's, 10000) */
  waitMs?: number;
  /** hosts to revoke with the fence: their writer keys are refused and removed */
  revoke?: readonly string[];
}

/** What the standby reported (its JSON line), plus where and how long the whole fence took from here. */
export interface FenceResult extends StandbyFenceResult {
  host: string;
  /** connect to answer, ms */
  durationMs: number;
  /** writer key lines removed from the standby's authorized_keys (absent when its receiver does not manage the file) */
  keysRemoved?: number;
}

const DEFAULT_WAIT_MS = 10_000;

function fenceArgs(epoch: number | undefined, options: FenceOptions): string[] {
  const args = epoch === undefined ? [] : ['--fence', String(epoch)];
  if (options.waitMs !== undefined) args.push('--wait-ms', String(options.waitMs));
  for (const id of options.revoke ?? []) args.push('--revoke', id);
  return args;
}

export function fenceCommand(epoch: number, options: FenceOptions = {}): string {
  return receiverCommand(fenceArgs(epoch, options), options);
}

function parseResult(r: Record<string, unknown>): Omit<FenceResult, 'host' | 'durationMs'> | undefined {
  if (typeof r['epoch'] !== 'number' || typeof r['previousEpoch'] !== 'number' || typeof r['waitedMs'] !== 'number' || typeof r['killed'] !== 'number') return undefined;
  return {
    epoch: r['epoch'],
    previousEpoch: r['previousEpoch'],
    waitedMs: r['waitedMs'],
    killed: r['killed'],
    signalled: Array.isArray(r['signalled']) ? (r['signalled'] as KilledReceiver[]) : [],
    locked: r['locked'] !== false,
    revoked: Array.isArray(r['revoked']) ? (r['revoked'] as string[]) : [],
    ...(typeof r['keysRemoved'] === 'number' ? { keysRemoved: r['keysRemoved'] } : {}),
  };
}

async function fenceOrRevoke(target: FenceTarget, epoch: number | undefined, what: string, options: FenceOptions): Promise<FenceResult> {
  const timeoutMs = options.timeoutMs ?? (options.waitMs ?? DEFAULT_WAIT_MS) + 10_000;
  let answer: Record<string, unknown>;
  let durationMs: number;
  try {
    ({ answer, durationMs } = await askStandby(target, fenceArgs(epoch, options), what, { ...options, timeoutMs }));
  } catch (err) {
    if (err instanceof StandbyError && epoch !== undefined) err.message += '; the route does not move to it until a fence succeeds';
    throw err;
  }
  const parsed = parseResult(answer);
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
export async function authorizeOnStandby(target: FenceTarget, hostId: string, publicKey: string, options: StandbyRequestOptions = {}): Promise<AuthorizeResult> {
  const { answer } = await askStandby(target, ['--authorize', hostId, '--key', publicKey], `authorizing the writer key of ${hostId}`, options);
  if (answer['authorized'] !== hostId) throw new StandbyError('STANDBY_ERR_FENCE_FAILED', `authorizing the writer key of ${hostId} on the standby ${target.host}: unexpected answer ${JSON.stringify(answer).slice(0, 300)}`, { host: target.host });
  const roots = Array.isArray(answer['roots']) ? answer['roots'].filter((r): r is string => typeof r === 'string') : [];
  return { authorized: hostId, replaced: Number(answer['replaced'] ?? 0), lifted: answer['lifted'] === true, roots };
}
