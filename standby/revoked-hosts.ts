// The hosts whose writes the standby refuses for good, whatever epoch they
// claim: <state-dir>/revoked-hosts.json, written durably by the proxy's fence
// (the fenced GPU) and by `standby hosts revoke`. An epoch is a number a
// writer states about itself; a revoked host id is pinned in its key's forced
// command (`standby receive --host ID`), so a GPU owned by a third party
// cannot write again by claiming a newer epoch. Re-enrolling a host lifts it.
import { join } from 'node:path';
import { readStateFile, writeStateFile } from '../core/durable-file.ts';
import { StandbyError } from '../core/errors.ts';
import { checkHostId } from '../protocol/host-id.ts';
import { ensureStateDir } from './epoch-store.ts';

export interface Revocation {
  /** the epoch the standby was at (or fenced to) when the host was revoked */
  epoch: number;
  /** ISO time, for people */
  at: string;
}

export type RevokedHosts = Record<string, Revocation>;

function file(stateDir: string): string {
  return join(stateDir, 'revoked-hosts.json');
}

export function readRevoked(stateDir: string): RevokedHosts {
  const f = file(stateDir);
  const text = readStateFile(f, { hint: `; check the permissions of ${stateDir}` });
  if (text === undefined) return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as RevokedHosts;
  } catch (err) {
    // refusing every writer is the safe reading of a list that cannot be read
    throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `${f} is not the revoked-hosts JSON object (${(err as Error).message}): no write is accepted until it is fixed; restore it or write {} if no host should be revoked`, { file: f }, { cause: err });
  }
}

function write(stateDir: string, hosts: RevokedHosts): void {
  ensureStateDir(stateDir);
  writeStateFile(file(stateDir), JSON.stringify(hosts, null, 2) + '\n');
}

/** Adds hosts to the list (durably); a host revoked before keeps its first record. */
export function addRevoked(stateDir: string, ids: readonly string[], epoch: number): void {
  if (ids.length === 0) return;
  const hosts = readRevoked(stateDir);
  let changed = false;
  for (const id of ids) {
    if (hosts[checkHostId(id)]) continue;
    hosts[id] = { epoch, at: new Date().toISOString() };
    changed = true;
  }
  if (changed) write(stateDir, hosts);
}

/** Lifts a revocation (the host was enrolled again, with a new key). */
export function liftRevoked(stateDir: string, id: string): boolean {
  const hosts = readRevoked(stateDir);
  if (!hosts[id]) return false;
  delete hosts[id];
  write(stateDir, hosts);
  return true;
}
