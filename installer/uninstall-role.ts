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
import { removeCodeServer } from './code-server-unit.ts';

export interface UninstallOptions {
  role: Role;
  root: string;
  purge: boolean;
}

/** Returns the paths removed. */
export function uninstallRole(options: UninstallOptions, say: (line: string) => void): string[] {
  const layout = layoutOf(options.root);
  checkPrivileges(layout);
  const record = readRecord(layout, options.role);
  if (!record) {
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `the ${options.role} role is not installed under ${layout.root} (no ${recordFile(layout, options.role)}); nothing removed. Installed roles: ${otherRoles(layout, options.role).join(', ') || 'none'}`, { role: options.role });
  }
  const removed: string[] = [];
  const rm = (path: string | undefined) => {
    if (!path || !existsSync(path)) return;
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
    say(`removed ${path}`);
  };
  stopUnit(layout, options.role, say);
  rm(record.unitFile);
  const others = otherRoles(layout, options.role);
  // code-server's unit: one per machine, whichever role laid it down
  const sharedCodeServer = others.some((r) => readRecord(layout, r)?.codeServer?.mode === 'unit');
  removed.push(...removeCodeServer(layout, record.codeServer, sharedCodeServer, say));
  if (record.unitFile || record.codeServer?.mode === 'unit') reloadUnits(layout);

  if (others.length) {
    say(`kept the program ${layout.programDir}: the ${others.join(' and ')} role(s) use it`);
  } else {
    rm(layout.pathLink);
    rm(layout.programDir);
  }
  if (options.purge) {
    rm(record.configFile ?? configFile(layout, options.role));
    for (const key of record.keyFiles) {
      rm(key);
      rm(`${key}.pub`);
    }
    for (const a of record.authorized) {
      if (revokeWriter(a.file, { type: a.type, blob: a.blob, comment: '' })) say(`removed the ${a.type} key's line from ${a.file}`);
    }
    rm(record.receiveDir);
    if (record.userCreated && others.length === 0 && layout.root === '/' && removeServiceUser()) say('removed the system user standby');
  } else {
    const kept = [record.configFile, ...record.keyFiles, ...record.authorized.map((a) => `${a.file} (entry)`)].filter((p): p is string => !!p);
    if (kept.length) say(`kept (remove with --purge): ${kept.join(', ')}`);
  }
  removeRecord(layout, options.role);
  if (options.purge) for (const dir of [layout.keyDir, layout.etcDir]) removeIfEmpty(dir, removed, say);
  say(`kept state in ${layout.stateDir} and the workspace (uninstall never touches them)`);
  return removed;
}

function removeIfEmpty(dir: string, removed: string[], say: (line: string) => void): void {
  if (existsSync(dir) && readdirSync(dir).length === 0) {
    rmdirSync(dir);
    removed.push(dir);
    say(`removed ${dir}`);
  }
}
