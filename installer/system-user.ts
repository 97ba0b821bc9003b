// The `standby` system user the proxy runs as (agent and standby run as root:
// they read and write the workspace, whoever owns its files).
import { execFileSync } from 'node:child_process';
import { StandbyError } from '../core/errors.ts';
import { SERVICE_USER, type Layout } from './layout.ts';

export interface ServiceUser {
  uid: number;
  gid: number;
  created: boolean;
}

function ids(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', SERVICE_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', SERVICE_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/** Makes the system user unless it exists; undefined under a --root prefix (users belong to the real machine). */
export function ensureServiceUser(layout: Layout): ServiceUser | undefined {
  if (layout.root !== '/') return undefined;
  const have = ids();
  if (have) return { ...have, created: false };
  try {
    execFileSync('useradd', ['--system', '--user-group', '--home-dir', layout.stateDir, '--no-create-home', '--shell', '/usr/sbin/nologin', SERVICE_USER], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `could not create the system user ${SERVICE_USER}: ${e.code === 'ENOENT' ? 'useradd not found (install passwd)' : (e.stderr?.toString().trim() ?? e.message)}; create it by hand (useradd --system ${SERVICE_USER}) and run the install again`, { user: SERVICE_USER }, { cause: err });
  }
  const made = ids();
  if (!made) throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `useradd said it created ${SERVICE_USER}, but id cannot find it; check /etc/passwd`, { user: SERVICE_USER });
  return { ...made, created: true };
}

/** Removes the user, only when this installer created it. */
export function removeServiceUser(): boolean {
  try {
    execFileSync('userdel', [SERVICE_USER], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
