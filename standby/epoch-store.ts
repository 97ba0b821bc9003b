// The fencing epoch the standby accepts writes under: one decimal number in
// <state-dir>/epoch, 0 while the file does not exist. Written atomically and
// durably (temporary file, fsync, rename, fsync of the folder): once a fence
// returns, a crash or power loss cannot bring an older epoch back.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fsyncPath, readStateFile, writeStateFile } from '../core/durable-file.ts';
import { StandbyError } from '../core/errors.ts';

/** Creates the state folder (owner only) if it is not there yet, durably: the folders made and their parent are fsynced. */
export function ensureStateDir(stateDir: string): void {
  try {
    const made = mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    if (made === undefined) return;
    const top = dirname(made);
    for (let dir = stateDir; ; dir = dirname(dir)) {
      fsyncPath(dir);
      if (dir === top || dirname(dir) === dir) break;
    }
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_STATE_UNWRITABLE', `cannot create the receiver's state folder ${stateDir}: ${(err as Error).message}`, { stateDir }, { cause: err });
  }
}

function epochFile(stateDir: string): string {
  return join(stateDir, 'epoch');
}

/** The stored epoch; 0 when none was ever written. A file that is not one whole number stops everything (no write is safe). */
export function readEpoch(stateDir: string): number {
  const file = epochFile(stateDir);
  const text = readStateFile(file, { what: 'the fencing epoch', hint: `; check the permissions of ${stateDir}` });
  if (text === undefined) return 0;
  const value = text.trim();
  if (!/^\d{1,15}$/.test(value)) {
    throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `the fencing epoch ${file} holds ${JSON.stringify(value.slice(0, 40))}, not a whole number: no write is accepted until it is fixed (write the proxy's current epoch with: standby receive --fence <epoch>, after removing the file)`, { file });
  }
  return Number(value);
}

export function writeEpoch(stateDir: string, epoch: number): void {
  ensureStateDir(stateDir);
  writeStateFile(epochFile(stateDir), `${epoch}\n`, { what: 'the fencing epoch', hint: `; check that ${stateDir} is writable and its disk is not full` });
}
