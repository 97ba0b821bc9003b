// The role's systemd unit: copied from the program's systemd/ folder, then
// enabled and started (unless --no-start, a --root prefix, or no systemd).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { StandbyError } from '../core/errors.ts';
import { commandPath, configFile, UNIT_OF, type Layout, type Role } from './layout.ts';

/** Copies the unit file; undefined (and a note) when the program ships none. */
export function installUnit(layout: Layout, role: Role, source: string, say: (line: string) => void): string | undefined {
  const unit = UNIT_OF[role];
  if (!unit) return undefined;
  const from = join(source, 'systemd', unit);
  if (!existsSync(from)) {
    say(`note: this program has no systemd/${unit} yet, so no unit was installed; run the ${role} by hand: ${howToRun(layout, role)}`);
    return undefined;
  }
  mkdirSync(layout.unitDir, { recursive: true, mode: 0o755 });
  const to = join(layout.unitDir, unit);
  copyFileSync(from, to);
  chmodSync(to, 0o644);
  return to;
}

export function howToRun(layout: Layout, role: Role): string {
  return `${commandPath(layout)} ${role} --config ${configFile(layout, role)}`;
}

/** Why systemctl cannot be used here, or undefined when it can. */
function systemdMissing(): string | undefined {
  if (!existsSync('/run/systemd/system')) return 'systemd is not running on this machine (no /run/systemd/system: a container?)';
  try {
    execFileSync('systemctl', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'systemctl is not installed';
  }
  return undefined;
}

/** daemon-reload, then enable --now (or restart, on an upgrade); says what it did or why it did not. */
export function startUnit(layout: Layout, role: Role, unitFile: string | undefined, noStart: boolean, say: (line: string) => void): void {
  const unit = UNIT_OF[role];
  if (!unit) return;
  if (layout.root !== '/') return say(`not started (installed under --root ${layout.root}); run it by hand: ${howToRun(layout, role)}`);
  if (noStart) return say(`not started (--no-start); start it with: systemctl enable --now ${unit}; or run it by hand: ${howToRun(layout, role)}`);
  if (!unitFile) return;
  const missing = systemdMissing();
  if (missing) return say(`not started: ${missing}. Start it by hand: ${howToRun(layout, role)}`);
  try {
    execFileSync('systemctl', ['daemon-reload'], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('systemctl', ['enable', unit], { stdio: ['ignore', 'ignore', 'pipe'] });
    // restart picks up an upgraded program; on a first install it starts the unit
    execFileSync('systemctl', ['restart', unit], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `systemctl could not start ${unit}: ${e.stderr?.toString().trim() || e.message}; see journalctl -u ${unit}`, { unit }, { cause: err });
  }
  say(`started: ${unit} (logs: journalctl -u ${unit})`);
}

/** disable --now before the unit file goes; quiet when systemd is not there. */
export function stopUnit(layout: Layout, role: Role, say: (line: string) => void): void {
  const unit = UNIT_OF[role];
  if (!unit || layout.root !== '/' || systemdMissing()) return;
  try {
    execFileSync('systemctl', ['disable', '--now', unit], { stdio: 'ignore' });
    say(`stopped and disabled ${unit}`);
  } catch {
    // not loaded: nothing to stop
  }
}

export function reloadUnits(layout: Layout): void {
  if (layout.root !== '/' || systemdMissing()) return;
  try {
    execFileSync('systemctl', ['daemon-reload'], { stdio: 'ignore' });
  } catch {
    // best effort: the unit file is gone either way
  }
}
