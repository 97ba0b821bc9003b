// What an install laid down, per role, in /var/lib/standby/installed-<role>.json,
// so uninstall removes exactly that and a second install knows what it made.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileDurably } from '../core/durable-file.ts';
import type { CodeServerRecord } from './code-server-unit.ts';
import { ROLES, recordFile, type Layout, type Role } from './layout.ts';

export interface AuthorizedEntry {
  file: string;
  type: string;
  blob: string;
}

export interface InstallRecord {
  role: Role;
  version: string;
  /** the version folder `current` points at */
  program: string;
  unitFile?: string;
  configFile?: string;
  /** private keys this installer made (their .pub beside them) */
  keyFiles: string[];
  /** authorized_keys lines this installer added (standby) */
  authorized: AuthorizedEntry[];
  /** the receiver's state folder (standby) */
  receiveDir?: string;
  /** true when this installer created the system user */
  userCreated: boolean;
  /** agent and standby: code-server's unit laid down here, or the user's own left alone (none: left out) */
  codeServer?: CodeServerRecord;
}

export function readRecord(layout: Layout, role: Role): InstallRecord | undefined {
  const file = recordFile(layout, role);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as InstallRecord) : undefined;
}

export function writeRecord(layout: Layout, record: InstallRecord): void {
  const file = recordFile(layout, record.role);
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  writeFileDurably(file, JSON.stringify(record, null, 2) + '\n', 0o644);
}

export function removeRecord(layout: Layout, role: Role): void {
  rmSync(recordFile(layout, role), { force: true });
}

/** The other roles installed on this machine (they share the program). */
export function otherRoles(layout: Layout, role: Role): Role[] {
  return ROLES.filter((r) => r !== role && existsSync(recordFile(layout, r)));
}
