// The program as it runs: programFiles() copied to /opt/standby/<version>,
// with `current` swapped atomically so an upgrade never leaves a half-copied
// program in use.
import { cpSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { StandbyError } from '../core/errors.ts';
import { PROGRAM_SOURCE, programFiles, programVersion } from '../core/program-files.ts';
import type { Layout } from './layout.ts';

export interface ProgramInstall {
  version: string;
  /** the folder `current` now points at */
  dir: string;
  /** an older version folder kept for a rollback (running processes may still load modules from it) */
  kept?: string;
  /** older version folders removed */
  removed: string[];
}

/** Copies the program to <programDir>/<version>-<stamp>, points `current`, `bin` and the PATH link at it, keeps one older version. `proxyOnly`: with the proxy's own packages (programFiles). */
export function installProgram(layout: Layout, source = PROGRAM_SOURCE, now = new Date(), proxyOnly = false): ProgramInstall {
  const version = programVersion(source);
  const files = programFiles(source, { proxyOnly });
  mkdirSync(layout.programDir, { recursive: true, mode: 0o755 });
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  let name = `${version}-${stamp}`;
  for (let i = 1; existsSync(join(layout.programDir, name)); i++) name = `${version}-${stamp}-${i}`;
  const staging = join(layout.programDir, `.${name}.partial`);
  rmSync(staging, { recursive: true, force: true });
  try {
    for (const f of files) {
      mkdirSync(dirname(join(staging, f)), { recursive: true, mode: 0o755 });
      placeFile(join(source, f), join(staging, f));
    }
    renameSync(staging, join(layout.programDir, name));
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `copying the program to ${layout.programDir} failed: ${(err as Error).message}; check free space and permissions there, then run the install again`, { dir: layout.programDir }, { cause: err });
  }
  const previous = existsSync(layout.current) ? basename(readlinkSync(layout.current)) : undefined;
  swapSymlink(name, layout.current);
  swapSymlink('current/bin', layout.bin);
  mkdirSync(dirname(layout.pathLink), { recursive: true });
  swapSymlink(join(layout.bin, 'standby'), layout.pathLink);
  const removed: string[] = [];
  for (const entry of readdirSync(layout.programDir)) {
    if (entry === name || entry === previous || entry === 'current' || entry === 'bin') continue;
    if (!/^\d+\.\d+\.\d+/.test(entry) && !entry.endsWith('.partial')) continue;
    rmSync(join(layout.programDir, entry), { recursive: true, force: true });
    removed.push(join(layout.programDir, entry));
  }
  return { version, dir: join(layout.programDir, name), ...(previous && previous !== name ? { kept: join(layout.programDir, previous) } : {}), removed };
}

/**
 * One program file into the staging folder: a hard link where the source is this user's own and
 * writable by nobody else (the installer's unpacked bundle; no copy of the 120 MB Node binary per
 * install), else a copy. A file someone else may write is always copied: a link would let them change
 * what root runs. Symlinks are copied as they are.
 */
export function placeFile(from: string, to: string): void {
  const st = lstatSync(from);
  if (st.isFile() && st.uid === process.geteuid?.() && (st.mode & 0o022) === 0) {
    try {
      linkSync(from, to);
      return;
    } catch (err) {
      // another filesystem (EXDEV), links refused (EPERM, EMLINK): a copy does
      if (!['EXDEV', 'EPERM', 'EMLINK', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
  }
  cpSync(from, to, { verbatimSymlinks: true, preserveTimestamps: true });
}

/** Points `link` at `target` atomically: a new symlink beside it, renamed over it. */
function swapSymlink(target: string, link: string): void {
  const tmp = `${link}.new-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}
