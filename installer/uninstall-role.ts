// `standby uninstall ROLE`: removes what install laid down for the role: its
// unit and, when no other role uses it, the program; config, keys and
// authorized_keys entries only with --purge. Never the workspace.
import { existsSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { StandbyError } from '../core/errors.ts';
import { revokeWriter } from '../core/authorized-keys.ts';
import { checkPrivileges, configFile, layoutOf, recordFile, type Role } from './layout.ts';
import { otherRoles, readRecord, removeRecord } from './record.ts';
import { removeServiceUser } from './system-user.ts';
import { reloadUnits, stopUnit } from './units.ts';

export interface UninstallOptions {
  role: Role;
  root: string;
  purge: boolean;
}

/** Returns the paths removed. */
export function uninstallRole(o: UninstallOptions, say: (line: string) => void): string[] {
  const l = layoutOf(o.root);
  checkPrivileges(l);
  const record = readRecord(l, o.role);
  if (!record) {
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `the ${o.role} role is not installed under ${l.root} (no ${recordFile(l, o.role)}); nothing removed. Installed roles: ${otherRoles(l, o.role).join(', ') || 'none'}`, { role: o.role });
  }
  const removed: string[] = [];
  const rm = (path: string | undefined) => {
    if (!path || !existsSync(path)) return;
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
    say(`removed ${path}`);
  };
  stopUnit(l, o.role, say);
  rm(record.unitFile);
  if (record.unitFile) reloadUnits(l);

  const others = otherRoles(l, o.role);
  if (others.length) {
    say(`kept the program ${l.programDir}: the ${others.join(' and ')} role(s) use it`);
  } else {
    rm(l.pathLink);
    rm(l.programDir);
  }
  if (o.purge) {
    rm(record.configFile ?? configFile(l, o.role));
    for (const key of record.keyFiles) {
      rm(key);
      rm(`${key}.pub`);
    }
    for (const a of record.authorized) {
      if (revokeWriter(a.file, { type: a.type, blob: a.blob, comment: '' })) say(`removed the ${a.type} key's line from ${a.file}`);
    }
    rm(record.receiveDir);
    if (record.userCreated && others.length === 0 && l.root === '/' && removeServiceUser()) say('removed the system user standby');
  } else {
    const kept = [record.configFile, ...record.keyFiles, ...record.authorized.map((a) => `${a.file} (entry)`)].filter((p): p is string => !!p);
    if (kept.length) say(`kept (remove with --purge): ${kept.join(', ')}`);
  }
  removeRecord(l, o.role);
  if (o.purge) for (const dir of [l.keyDir, l.etcDir]) removeIfEmpty(dir, removed, say);
  say(`kept state in ${l.stateDir} and the workspace (uninstall never touches them)`);
  return removed;
}

function removeIfEmpty(dir: string, removed: string[], say: (line: string) => void): void {
  if (existsSync(dir) && readdirSync(dir).length === 0) {
    rmdirSync(dir);
    removed.push(dir);
    say(`removed ${dir}`);
  }
}
