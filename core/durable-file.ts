// Writing a small file so that, once the call returns, a crash or power loss
// leaves either the old content or the new, never a mix or nothing: a
// temporary file, fsync, rename over the old one, fsync of the folder. Used
// for the proxy's state, the standby's fencing epoch and authorized_keys, and
// the installer's files.
import { closeSync, fchownSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { StandbyError } from './errors.ts';

/** How a state file is named in errors: `what` before its path ("the fencing epoch"), `hint` after the cause ("; check ..."). */
export interface StateFileWords {
  what?: string;
  hint?: string;
}

function named(file: string, words: StateFileWords): string {
  return words.what ? `${words.what} ${file}` : file;
}

/** A state file's text; undefined when there is none. Any other read error is STANDBY_ERR_STATE_CORRUPT: state that cannot be read is never taken as empty. */
export function readStateFile(file: string, words: StateFileWords = {}): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `cannot read ${named(file, words)}: ${(err as Error).message}${words.hint ?? ''}`, { file }, { cause: err });
  }
}

/** writeFileDurably for a state file (0600); a failure is STANDBY_ERR_STATE_UNWRITABLE naming it. */
export function writeStateFile(file: string, data: string, words: StateFileWords = {}): void {
  try {
    writeFileDurably(file, data);
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_STATE_UNWRITABLE', `cannot write ${named(file, words)}: ${(err as Error).message}${words.hint ?? ''}`, { file }, { cause: err });
  }
}

/** fsync of a file or folder by path (a folder's fsync makes the names in it durable). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `owner`: the file's uid and gid (set before it takes the file's place). */
export function writeFileDurably(file: string, data: string, mode = 0o600, owner?: { uid: number; gid: number }): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      if (owner) fchownSync(fd, owner.uid, owner.gid);
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    fsyncPath(dirname(file));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
