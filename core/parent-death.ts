// Children that die with the process that started them, SIGKILL included:
// the agent's ssh and rsync, the local provider's sshd and workspace servers.
// A killed agent used to leave its ControlMaster (and so its sshd session on
// the standby) running for good: an orphan keeps no pipe to the agent open
// that it reads, and a -N master never notices. Linux's PR_SET_PDEATHSIG sends a
// child a signal when its parent dies; Node cannot set it, so each child is
// started through util-linux `setpriv --pdeathsig SIGKILL`, which sets it and
// execs the program (same pid, and the setting survives exec for programs
// that are not set-uid, as ssh and rsync are not). The ssh that rsync starts
// (-e) goes through it too, so it dies with rsync. libuv forks from the
// main thread, the one whose end the kernel watches.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const SETPRIV = ['setpriv', '--pdeathsig', 'SIGKILL', '--'] as const;

let found: boolean | undefined;

/** Whether setpriv is on PATH (util-linux, on every Debian and Ubuntu); looked up once. */
export function parentDeathAvailable(): boolean {
  found ??= (process.env['PATH'] ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir || '.', 'setpriv'), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  return found;
}

/** `command args...` as a child that is SIGKILLed when this process dies (as is, where setpriv is missing: the caller warns). */
export function dieWithParent(command: string, args: readonly string[]): [string, string[]] {
  return parentDeathAvailable() ? [SETPRIV[0], [...SETPRIV.slice(1), command, ...args]] : [command, [...args]];
}

/** The words to put before a program that rsync or ssh starts, so it dies with its parent. */
export function dieWithParentPrefix(): string[] {
  return parentDeathAvailable() ? [...SETPRIV] : [];
}
