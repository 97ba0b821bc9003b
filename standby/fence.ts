// The fence, run on the standby (`standby receive --fence <epoch>`): writes
// the new epoch durably, then takes the receivers' lock exclusively, so every
// writer that passed the epoch check under an older epoch has finished. Past
// the wait, the receivers of older epochs still running are sent SIGTERM, then
// SIGKILL (rsync --delay-updates renames at the very end, so a killed transfer
// leaves no partial file in place). A receiver that starts after the epoch was
// written reads it under the lock and refuses an older writer by itself.
// Idempotent: the same epoch again is a no-op apart from the wait.
// Hosts named in `revoke` are added to the revoked list first (revoked-hosts.ts)
// and their live writers are treated like old-epoch ones: waited for, then killed.
import { join } from 'node:path';
import { StandbyError } from '../core/errors.ts';
import type { FenceReport, FenceRequest, KilledReceiver } from '../protocol/receiver.ts';
import { ensureStateDir, readEpoch, writeEpoch } from './epoch-store.ts';
import { FileLock } from './file-lock.ts';
import { liveReceivers, signalReceiver, type ReceiverRecord } from './receiver-registry.ts';
import { addRevoked } from './revoked-hosts.ts';

/** The fence as the standby runs it: the request (protocol/receiver.ts) and how long each kill round waits. */
export interface FenceAtEpochOptions extends FenceRequest {
  /** after SIGTERM, how long they get to exit before SIGKILL, in ms (default 2000) */
  termGraceMs?: number;
  /** after SIGKILL, how long the lock may take to come free, in ms (default 3000) */
  killGraceMs?: number;
}

const DEFAULT_FENCE_WAIT_MS = 10_000;

/**
 * Fences this standby's receivers (state in `stateDir`) at `epoch` ('current':
 * the stored one, to revoke hosts without a failover); resolves with the
 * report the receiver prints for the proxy.
 */
export async function fenceAtEpoch(stateDir: string, epochAsked: number | 'current', options: FenceAtEpochOptions = {}): Promise<FenceReport> {
  const waitMs = options.waitMs ?? DEFAULT_FENCE_WAIT_MS;
  ensureStateDir(stateDir);
  // fences one after another: two at once could otherwise write their epochs in the wrong order
  const serial = new FileLock(join(stateDir, 'fence.lock'));
  const lock = new FileLock(join(stateDir, 'lock'));
  try {
    if (!(await serial.acquire('exclusive', waitMs + 10_000))) {
      throw new StandbyError('STANDBY_ERR_LOCK_TIMEOUT', `another fence of ${stateDir} has been running for over ${waitMs + 10_000} ms: look for a stuck "standby receive --fence" on the standby`, { stateDir });
    }
    const previousEpoch = readEpoch(stateDir);
    const epoch = epochAsked === 'current' ? previousEpoch : epochAsked;
    if (previousEpoch > epoch) {
      throw new StandbyError('STANDBY_ERR_EPOCH_STALE', `refused: the standby is already fenced at epoch ${previousEpoch}, newer than the requested ${epoch}; the caller's epoch is behind (is another proxy fencing this standby?)`, { epoch, previousEpoch });
    }
    const revoke = [...(options.revoke ?? [])];
    // before the epoch: a writer that takes the lock from here on reads both
    addRevoked(stateDir, revoke, epoch);
    const stale = (r: ReceiverRecord): boolean => r.epoch < epoch || (r.host !== undefined && revoke.includes(r.host));
    writeEpoch(stateDir, epoch); // again for the same epoch too: a crash may have cut the first fence before its fsyncs
    const started = performance.now();
    const signalled: KilledReceiver[] = [];
    let locked = await lock.acquire('exclusive', waitMs);
    for (const [signal, graceMs] of [['SIGTERM', options.termGraceMs ?? 2000], ['SIGKILL', options.killGraceMs ?? 3000]] as const) {
      if (locked) break;
      const old = liveReceivers(stateDir).filter(stale);
      if (old.length === 0) break; // only writers of this epoch or newer hold the lock
      for (const r of old) {
        if (signalReceiver(r, signal)) signalled.push({ pid: r.pid, epoch: r.epoch, signal });
      }
      locked = await lock.acquire('exclusive', graceMs);
    }
    if (!locked) {
      const old = liveReceivers(stateDir).filter(stale);
      if (old.length > 0) {
        throw new StandbyError('STANDBY_ERR_LOCK_TIMEOUT', `fence to epoch ${epoch} not complete: writers of older epochs or revoked hosts still run after SIGKILL (pids ${old.map((r) => r.pid).join(', ')}); the epoch is written, so no new old-epoch write starts, but these may still land: check them on the standby`, { epoch, pids: old.map((r) => r.pid) });
      }
    }
    const killed = new Set(signalled.map((k) => k.pid)).size;
    return { epoch, previousEpoch, waitedMs: Math.round(performance.now() - started), killed, signalled, locked, revoked: revoke };
  } finally {
    lock.close();
    serial.close();
  }
}
