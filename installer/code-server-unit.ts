// code-server on a host (the agent's GPU, the standby): the installer lays
// down the pinned version (CODE_SERVER_VERSION) in /opt/standby/code-server/
// <version> and a unit, standby-code-server.service, that runs it as the
// workspace's user, opening the workspace, on a configured address. Both
// hosts must run the same version (its commit is in every asset path the
// browser loads). Where it comes from: the standalone release tarball
// (GitHub), or a folder (--code-server-from DIR: an unpacked release, or an
// npm install such as the cache installer/code-server.ts fills; the tests
// point it there). Where the user runs a code-server of their own (one on
// PATH, or something answering on the port), the installer uses it, writes
// no unit, and says so. The agent's freeze (agent/freeze.ts, a switch back's
// final pass) stops the unit's cgroup: the installer points agent.json's
// freeze.cgroup at it and lets the agent's unit write cgroupfs (a drop-in
// with ProtectControlGroups=no; ReadWritePaths= on the unit's cgroup folder
// would not do: the folder is made anew at each start of code-server, and a
// bind mount keeps the old one).
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, createWriteStream, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { account } from './accounts.ts';
import { StandbyError } from '../core/errors.ts';
import { CODE_SERVER_VERSION, codeServerArgs } from './code-server.ts';
import { quoteWord, quoteWords } from '../protocol/command-words.ts';
import type { Layout } from './layout.ts';
import { placeFile } from './program.ts';

export const CODE_SERVER_UNIT = 'standby-code-server.service';
/** Beside the version folders: what runs code-server as the unit does, on a host without systemd (a container; proxy/provision/gpu-onstart.ts runs it). */
export const CODE_SERVER_START = 'start';
/** The agent unit's drop-in that lets it freeze code-server's cgroup. */
export const FREEZE_DROP_IN = 'standby-agent.service.d/standby-code-server.conf';
/** The unit's cgroup on a cgroup v2 host: agent.json freeze.cgroup. */
export const CODE_SERVER_CGROUP = `/sys/fs/cgroup/system.slice/${CODE_SERVER_UNIT}`;
/** Where code-server listens unless --code-server-listen says: loopback, as it has no auth of its own. */
export const DEFAULT_CODE_SERVER_LISTEN = '127.0.0.1:8080';

export function codeServerReleaseUrl(version = CODE_SERVER_VERSION): string {
  return `https://github.com/coder/code-server/releases/download/v${version}/code-server-${version}-linux-amd64.tar.gz`;
}

/** The code-server flags of `standby install agent|standby`. */
export interface CodeServerFlags {
  /** false (--no-code-server): leave code-server alone (default true) */
  codeServer?: boolean;
  /** a folder (an unpacked release, or an npm install tree) or an http(s) URL of a release tarball (default the GitHub release) */
  codeServerFrom?: string;
  /** HOST:PORT it listens on (default 127.0.0.1:8080) */
  codeServerListen?: string;
  /** the user it runs as (default the workspace folder's owner) */
  codeServerUser?: string;
}

/** What the install did about code-server, in the install record. */
export interface CodeServerRecord {
  /** unit: ours, laid down here; own: the user's, left alone */
  mode: 'unit' | 'own';
  listen: string;
  /** own: why it counts as the user's */
  reason?: string;
  version?: string;
  /** the version's folder under /opt/standby/code-server */
  dir?: string;
  /** /opt/standby/code-server/start: the unit's work for a host without systemd */
  startScript?: string;
  unitFile?: string;
  dropIn?: string;
  user?: string;
  userDataDir?: string;
  extensionsDir?: string;
}

/** A path as the machine sees it (the unit names it so), with the --root prefix taken off. */
function onMachine(layout: Layout, path: string): string {
  return layout.root === '/' ? path : `/${relative(layout.root, path)}`;
}

function parseListen(listen: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--code-server-listen ${listen}: expected HOST:PORT, e.g. 127.0.0.1:8080`, { listen });
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/** `code-server` on PATH, or undefined. */
function onPath(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    const file = join(dir || '.', 'code-server');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Whether something accepts TCP connections on host:port (within 1 s). */
function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host, port });
    const done = (yes: boolean): void => {
      socket.destroy();
      resolve(yes);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** What a folder holds: an unpacked release (lib/node, out/node/entry.js) or an npm tree (node_modules/code-server); its version. */
function inspect(dir: string): { kind: 'release' | 'npm'; version: string } | undefined {
  const read = (file: string): string | undefined => {
    try {
      const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
      return typeof v === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  };
  if (existsSync(join(dir, 'out', 'node', 'entry.js')) && existsSync(join(dir, 'lib', 'node'))) {
    const version = read(join(dir, 'package.json'));
    return version ? { kind: 'release', version } : undefined;
  }
  if (existsSync(join(dir, 'node_modules', 'code-server', 'out', 'node', 'entry.js'))) {
    const version = read(join(dir, 'node_modules', 'code-server', 'package.json'));
    return version ? { kind: 'npm', version } : undefined;
  }
  return undefined;
}

/** Copies a tree (hard links where placeFile allows: a 600 MB code-server is not copied per install). */
function placeTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true, mode: 0o755 });
  for (const e of readdirSync(from, { withFileTypes: true })) {
    const a = join(from, e.name);
    const b = join(to, e.name);
    if (e.isDirectory()) placeTree(a, b);
    else if (e.isSymbolicLink()) symlinkSync(readlinkSync(a), b);
    else placeFile(a, b);
  }
}

/** Downloads a release tarball and unpacks it into `to` (its top folder stripped). */
async function download(url: string, to: string, say: (line: string) => void): Promise<void> {
  const file = `${to}.tar.gz`;
  const started = performance.now();
  say(`code-server: downloading ${url}`);
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(600_000) });
    if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status}`);
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(file, { mode: 0o600 }));
  } catch (err) {
    rmSync(file, { force: true });
    const e = err as Error & { cause?: { code?: string } };
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `could not download code-server from ${url}: ${e.cause?.code ?? e.message}; check this host's network, or download it elsewhere, unpack it and give --code-server-from DIR (or --no-code-server to run your own)`, { url }, { cause: err });
  }
  mkdirSync(to, { recursive: true, mode: 0o755 });
  const r = spawnSync('tar', ['-xzf', file, '-C', to, '--strip-components=1', '--no-same-owner'], { encoding: 'utf8' });
  rmSync(file, { force: true });
  if (r.status !== 0) throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `could not unpack ${url}: ${(r.stderr || r.error?.message || '').trim().slice(0, 400)}; is it a code-server release tarball?`, { url });
  say(`code-server: downloaded and unpacked in ${Math.round((performance.now() - started) / 1000)} s`);
}

/** Puts the pinned code-server in <programDir>/code-server/<version> (kept when already whole); returns its folder and kind. */
async function placeCodeServer(layout: Layout, from: string, say: (line: string) => void): Promise<{ dir: string; kind: 'release' | 'npm' }> {
  const base = join(layout.programDir, 'code-server');
  const dir = join(base, CODE_SERVER_VERSION);
  const have = existsSync(dir) ? inspect(dir) : undefined;
  if (have?.version === CODE_SERVER_VERSION) {
    say(`code-server ${CODE_SERVER_VERSION}: kept ${dir}`);
    return { dir, kind: have.kind };
  }
  mkdirSync(base, { recursive: true, mode: 0o755 });
  const staging = join(base, `.${CODE_SERVER_VERSION}.partial-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  try {
    if (/^https?:\/\//.test(from)) await download(from, staging, say);
    else {
      const given = inspect(from);
      if (!given) throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `--code-server-from ${from}: not a code-server folder (expected an unpacked release, with out/node/entry.js and lib/node, or an npm install, with node_modules/code-server)`, { from });
      if (given.version !== CODE_SERVER_VERSION) throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `--code-server-from ${from} holds code-server ${given.version}; this Standby runs ${CODE_SERVER_VERSION} on every host (the GPU's and the standby's must match): give that version`, { from, version: given.version });
      placeTree(from, staging);
    }
    const got = inspect(staging);
    if (!got) throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `${from} held no code-server (no out/node/entry.js with lib/node, nor node_modules/code-server): give a code-server ${CODE_SERVER_VERSION} release tarball or folder`, { from });
    if (got.version !== CODE_SERVER_VERSION) throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `${from} holds code-server ${got.version}, not ${CODE_SERVER_VERSION}: the GPU's and the standby's must match`, { from, version: got.version });
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    say(`code-server ${CODE_SERVER_VERSION}: ${dir} (from ${from})`);
    return { dir, kind: got.kind };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** One word of an Exec line: quoted when it must be; % and $ escaped (systemd expands them). */
function execWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /[\s"'\\;]/.test(escaped) ? `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : escaped;
}

export interface CodeServerUnitSpec {
  node: string;
  entry: string;
  user: string;
  group: string;
  listen: { host: string; port: number };
  userDataDir: string;
  extensionsDir: string;
  workspace: string;
}

/** The unit's text. */
export function codeServerUnit(s: CodeServerUnitSpec): string {
  const exec = [s.node, s.entry, ...codeServerArgs({ host: s.listen.host, port: s.listen.port, userDataDir: s.userDataDir, extensionsDir: s.extensionsDir, folder: s.workspace })].map(execWord).join(' ');
  return `# code-server ${CODE_SERVER_VERSION} for the Standby workspace: what the proxy routes the developer to.
# Written by \`standby install\` (installer/code-server-unit.ts); see docs/operations.md.
[Unit]
Description=code-server ${CODE_SERVER_VERSION} for the Standby workspace ${s.workspace}
Documentation=https://github.com/standby/standby/blob/main/docs/operations.md
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
User=${s.user}
Group=${s.group}
WorkingDirectory=${execWord(s.workspace)}
# code-server makes neither folder's parent
ExecStartPre=/usr/bin/mkdir -p ${execWord(s.userDataDir)} ${execWord(s.extensionsDir)}
# no auth of its own: it listens where only the proxy reaches it (the proxy's login is in front)
ExecStart=${exec}
Restart=always
RestartSec=2
# the agent freezes this unit's cgroup at a switch back (agent.json freeze.cgroup): code-server and what
# the developer runs in its terminals, nothing else
KillMode=control-group
StandardOutput=journal
StandardError=journal
SyslogIdentifier=standby-code-server

[Install]
WantedBy=multi-user.target
`;
}

export interface CodeServerStartSpec {
  /** Node and entry.js, relative to the script's folder (so it runs under a --root prefix too) */
  node: string;
  entry: string;
  user: { uid: number; gid: number; home: string };
  listen: { host: string; port: number };
  userDataDir: string;
  extensionsDir: string;
  workspace: string;
}

/** The start script's text: the unit's ExecStartPre and ExecStart, as the workspace's user (setpriv when run as root for another user). */
export function codeServerStartScript(s: CodeServerStartSpec): string {
  const args = codeServerArgs({ host: s.listen.host, port: s.listen.port, userDataDir: s.userDataDir, extensionsDir: s.extensionsDir, folder: s.workspace });
  return `#!/bin/sh
# code-server ${CODE_SERVER_VERSION} as standby-code-server.service runs it, for a host without systemd
# (a container): the GPU's first-boot script runs it, and again when it ends. Written by \`standby install\`.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
as=""
if [ "$(id -u)" = 0 ] && [ ${s.user.uid} != 0 ]; then as="setpriv --reuid=${s.user.uid} --regid=${s.user.gid} --init-groups --"; fi
# code-server makes neither folder's parent
$as mkdir -p ${quoteWords([s.userDataDir, s.extensionsDir])}
cd ${quoteWord(s.workspace)}
HOME=${quoteWord(s.user.home)}
export HOME
exec $as "$here/${s.node}" "$here/${s.entry}" ${quoteWords(args)}
`;
}

/** The agent's drop-in: cgroupfs writable, so it can write the code-server unit's cgroup.freeze. */
export function freezeDropIn(): string {
  return `# Written by \`standby install agent\` with standby-code-server.service: the agent freezes that unit's
# cgroup at a switch back (agent.json freeze.cgroup = ${CODE_SERVER_CGROUP}). ProtectControlGroups=yes
# would keep /sys/fs/cgroup read-only; ReadWritePaths= on the unit's folder would not outlive a restart
# of code-server (systemd makes the folder anew).
[Service]
ProtectControlGroups=no
`;
}

export interface CodeServerSetup {
  layout: Layout;
  role: 'agent' | 'standby';
  flags: CodeServerFlags;
  workspace: string;
  /** what an earlier install recorded */
  before: CodeServerRecord | undefined;
}

/**
 * Decides and lays down code-server for a host: undefined when left out (--no-code-server, or a --root
 * install without --code-server-from), mode 'own' when the user runs their own, else the unit (and, for
 * the agent, the freeze drop-in).
 */
export async function setUpCodeServer(o: CodeServerSetup, say: (line: string) => void): Promise<CodeServerRecord | undefined> {
  const { layout, flags } = o;
  if (flags.codeServer === false) {
    say('code-server: left alone (--no-code-server); run one on this host yourself, at the version the other host runs');
    return undefined;
  }
  // a test install under a prefix downloads nothing unless told where code-server is
  if (layout.root !== '/' && flags.codeServerFrom === undefined && o.before?.mode !== 'unit') {
    say(`code-server: not installed (under --root ${layout.root} without --code-server-from)`);
    return undefined;
  }
  const listenText = flags.codeServerListen ?? o.before?.listen ?? DEFAULT_CODE_SERVER_LISTEN;
  const listen = parseListen(listenText);
  if (o.before?.mode !== 'unit') {
    const path = onPath();
    const reason = path ? `code-server is on PATH (${path})` : (await answers(listen.host, listen.port)) ? `something answers on ${listenText}` : undefined;
    if (reason) {
      say(`code-server: using yours (${reason}); no unit written. Give the proxy its URL, run it at ${CODE_SERVER_VERSION} as the other host does, and for the switch back's freeze set freeze.cgroup or freeze.pidFiles in agent.json`);
      return { mode: 'own', listen: listenText, reason };
    }
  }
  // the workspace's owner (root, who runs the install, when the GPU's workspace is not there yet)
  const who = flags.codeServerUser ?? o.before?.user ?? (existsSync(o.workspace) ? statSync(o.workspace).uid : (process.getuid?.() ?? 0));
  const user = account(who);
  if (!user) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--code-server-user ${who}: no such user on this machine (/etc/passwd); name the user who works in ${o.workspace}`, { user: who });

  const placed = await placeCodeServer(layout, flags.codeServerFrom ?? codeServerReleaseUrl(), say);
  const node = placed.kind === 'release' ? join(placed.dir, 'lib', 'node') : join(layout.current, 'node_modules', 'node', 'bin', 'node');
  const entry = placed.kind === 'release' ? join(placed.dir, 'out', 'node', 'entry.js') : join(placed.dir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  // code-server's own defaults, so a developer's settings and extensions there carry over
  const userDataDir = join(user.home, '.local', 'share', 'code-server');
  const extensionsDir = join(userDataDir, 'extensions');
  mkdirSync(layout.unitDir, { recursive: true, mode: 0o755 });
  const unitFile = join(layout.unitDir, CODE_SERVER_UNIT);
  writeFileSync(unitFile, codeServerUnit({
    node: onMachine(layout, node),
    entry: onMachine(layout, entry),
    user: user.name,
    group: String(user.gid),
    listen,
    userDataDir,
    extensionsDir,
    workspace: o.workspace,
  }));
  chmodSync(unitFile, 0o644);
  say(`code-server ${CODE_SERVER_VERSION}: ${unitFile}, as ${user.name}, on ${listenText}, opening ${o.workspace}${listen.host === '127.0.0.1' || listen.host === '::1' || listen.host === 'localhost' ? " (loopback: give --code-server-listen an address the proxy reaches, one nobody else does: it has no auth of its own)" : ''}`);
  const startScript = join(layout.programDir, 'code-server', CODE_SERVER_START);
  writeFileSync(startScript, codeServerStartScript({
    node: placed.kind === 'release' ? `${CODE_SERVER_VERSION}/lib/node` : '../current/node_modules/node/bin/node',
    entry: placed.kind === 'release' ? `${CODE_SERVER_VERSION}/out/node/entry.js` : `${CODE_SERVER_VERSION}/node_modules/code-server/out/node/entry.js`,
    user,
    listen,
    userDataDir,
    extensionsDir,
    workspace: o.workspace,
  }));
  chmodSync(startScript, 0o755);
  const record: CodeServerRecord = { mode: 'unit', listen: listenText, version: CODE_SERVER_VERSION, dir: placed.dir, startScript, unitFile, user: user.name, userDataDir, extensionsDir };
  if (o.role === 'agent') record.dropIn = writeFreezeDropIn(layout);
  return record;
}

/** Writes the agent unit's drop-in (freezeDropIn); returns its path. */
export function writeFreezeDropIn(layout: Layout): string {
  const dropIn = join(layout.unitDir, FREEZE_DROP_IN);
  mkdirSync(dirname(dropIn), { recursive: true, mode: 0o755 });
  writeFileSync(dropIn, freezeDropIn());
  chmodSync(dropIn, 0o644);
  return dropIn;
}

/** Starts (or restarts, on an upgrade) the unit, as installer/units.ts does the role's; says why not where it cannot. */
export function startCodeServerUnit(layout: Layout, record: CodeServerRecord | undefined, noStart: boolean, say: (line: string) => void): void {
  if (record?.mode !== 'unit') return;
  if (layout.root !== '/') return say(`code-server not started (installed under --root ${layout.root})`);
  if (noStart) return say(`code-server not started (--no-start); start it with: systemctl enable --now ${CODE_SERVER_UNIT}`);
  if (!existsSync('/run/systemd/system')) return say(`code-server not started: systemd is not running on this machine (a container?); start it by hand, as the unit would: ${record.startScript ?? join(layout.programDir, 'code-server', CODE_SERVER_START)}`);
  try {
    execFileSync('systemctl', ['daemon-reload'], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('systemctl', ['enable', CODE_SERVER_UNIT], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('systemctl', ['restart', CODE_SERVER_UNIT], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `systemctl could not start ${CODE_SERVER_UNIT}: ${e.stderr?.toString().trim() || e.message}; see journalctl -u ${CODE_SERVER_UNIT}`, { unit: CODE_SERVER_UNIT }, { cause: err });
  }
  say(`started: ${CODE_SERVER_UNIT} (logs: journalctl -u ${CODE_SERVER_UNIT})`);
}

/** Stops the unit and removes what setUpCodeServer laid down (unless `keepUnit`: another role's install uses it); returns the paths removed. */
export function removeCodeServer(layout: Layout, record: CodeServerRecord | undefined, keepUnit: boolean, say: (line: string) => void): string[] {
  if (record?.mode !== 'unit') return [];
  const removed: string[] = [];
  const rm = (path: string | undefined): void => {
    if (!path || !existsSync(path)) return;
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
    say(`removed ${path}`);
  };
  rm(record.dropIn);
  if (record.dropIn && existsSync(dirname(record.dropIn)) && readdirSync(dirname(record.dropIn)).length === 0) rm(dirname(record.dropIn));
  if (keepUnit) {
    say(`kept ${CODE_SERVER_UNIT}: another role installed here uses it`);
    return removed;
  }
  if (layout.root === '/' && existsSync('/run/systemd/system')) {
    try {
      execFileSync('systemctl', ['disable', '--now', CODE_SERVER_UNIT], { stdio: 'ignore' });
      say(`stopped and disabled ${CODE_SERVER_UNIT}`);
    } catch {
      // not loaded: nothing to stop
    }
  }
  rm(record.unitFile);
  rm(record.dir);
  rm(record.startScript);
  const base = join(layout.programDir, 'code-server');
  if (existsSync(base) && lstatSync(base).isDirectory() && readdirSync(base).length === 0) rm(base);
  return removed;
}
