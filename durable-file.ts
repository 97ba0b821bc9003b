// Writing a small file so that, once the call returns, a crash or power loss
// leaves either the old content or the new, never a mix or nothing: a
// temporary file, fsync, rename over the old one, fsync of the folder. Used
// for the proxy's state, the standby's fencing epoch and authorized_keys, and
// the installer's files.
import { closeSync, fchownSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

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
