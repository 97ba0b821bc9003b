// The `local` provider: GPU and standby hosts on this machine, for the demo,
// the tests, and a `recovery` section that names no provider. A host is a
// folder, `<baseDir>/<role>/<hostNameText(name)>/`, holding
//   host.json        what the provider knows of it (ports, pids, wanted state), written durably
//   workspace/       its workspace
//   receive-state/   its receiver's state (epoch, lock, revocations)
//   authorized_keys  the proxy's fencing key, with the receiver as forced command, laid down as
//                    `standby install standby` does (`receive --allow-fence --root --authorized-keys`):
//                    the proxy fences through it and adds each writer's entry
//   sshd/            a real OpenSSH sshd on loopback (loopback-sshd.ts): its host key, config, known_hosts
//   workspace-server.pid  the workspace server's pid while this provider runs it: what an agent on the
//                    host freezes at a switch back (agent.json freeze.pidFiles)
//   code-server/     with `codeServer` set: a real code-server's user data and extensions, and
//                    code-server.pid beside workspace-server.pid (frozen with it)
// and runs two processes: that sshd and the built-in workspace server
// (workspace-server.ts); with `codeServer` (`standby demo --server
// code-server`), a third: a real code-server opening the workspace, which the
// workspace server fronts (the file API its own, everything else forwarded):
// the browser gets code-server and the demo's writer its file API, through
// the host's one URL. GPU hosts and standby hosts live in folders of their
// own (`gpu/`, `standby/`): both are named for the workspace and the epoch,
// and a new GPU and its standby may share both.
//
// Every process it starts is its own (close() ends them) and dies with the
// process that runs the provider, SIGKILL included (core/parent-death.ts).
// A host's folder outlives them: a new provider over the same baseDir finds
// the hosts (list, get), and create/ensure start their processes again
// (ports kept when they are still free, host keys kept).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { authorizeWriter, fencingKeys, parsePublicKey, revokeWriter, type PublicKey } from '../../core/authorized-keys.ts';
import { readStateFile, writeStateFile } from '../../core/durable-file.ts';
import { StandbyError } from '../../core/errors.ts';
import { freePort, portFree } from '../../core/free-port.ts';
import type { Logger } from '../../core/log.ts';
import { dieWithParentPrefix, parentDeathAvailable } from '../../core/parent-death.ts';
import { killTree } from '../../core/process-tree.ts';
import { PROGRAM_SOURCE } from '../../core/program-files.ts';
import { quoteWord, quoteWords } from '../../protocol/command-words.ts';
import { editorReceiveRoots, type EditorDirs } from '../../protocol/receiver.ts';
import { startCodeServerProcess, type CodeServerProcess } from '../../core/code-server-process.ts';
import { startSshd, type Sshd } from './loopback-sshd.ts';
import { startWorkspaceServer, type WorkspaceServer } from './workspace-server.ts';
import {
  hostNameText,
  parseHostName,
  type GpuLaunch,
  type GpuOffer,
  type GpuProvider,
  type GpuRequirements,
  type GpuSearch,
  type HostName,
  type ProvisionedHost,
  type StandbyProvider,
  type StandbySpec,
} from './provider.ts';

export { localProviderSchema, localBaseDir, type LocalProviderSettings } from '../../config/local-provider.ts';

export type LocalRole = 'gpu' | 'standby';

export interface LocalProviderOptions {
  /** where the hosts' folders go */
  baseDir: string;
  /** the proxy's fencing public key ("ssh-ed25519 AAAA..."), authorized on every GPU host; a standby authorizes its spec's sshPublicKey */
  fenceKey: string;
  /** the standby program the hosts' sshd runs as the receiver (default: this checkout's bin/standby) */
  program?: string;
  /** the PATH the hosts' SSH sessions get (default: this process's), where the receiver finds rsync */
  path?: string;
  /** how long sshd and the workspace server may take to listen, ms (default 10000) */
  startTimeoutMs?: number;
  /** each host runs this code-server (an install's out/node/entry.js, on `node`: default this process's Node) behind its workspace server */
  codeServer?: LocalCodeServer;
  /** each host has code-server's folders, which its receiver takes (default: true with codeServer) */
  editor?: boolean;
  log?: Logger;
}

/** A real code-server for the local hosts (config/local-provider.ts `codeServer`). */
export interface LocalCodeServer {
  entry: string;
  node?: string;
}

/** Where a local host's parts are: what a recovery, the demo or a test needs beyond ProvisionedHost. */
export interface LocalHostDetails {
  id: string;
  role: LocalRole;
  dir: string;
  workspace: string;
  receiveState: string;
  authorizedKeys: string;
  /** a known_hosts file listing the host's sshd key at its current port */
  knownHostsFile: string;
  /** the receiver command of its authorized_keys (its program and `receive`) */
  receiver: string;
  sshPort: number;
  /** the workspace server's URL (code-server's place) */
  url: string;
  /** the token its file API wants (x-standby-files-token), the same for every host of this baseDir: the proxy forwards anyone's requests there, so writes need it */
  filesToken: string;
  /** a file holding the workspace server's pid while it runs (removed when it is stopped; left by a kill, as a crash leaves it): an agent's freeze.pidFiles */
  pidFile: string;
  /** what an agent on the host freezes (freeze.pidFiles): pidFile, and code-server's when the hosts run one */
  pidFiles: string[];
  /** its code-server folders (`editor`): what its agent syncs and its receiver takes */
  editor: EditorDirs | undefined;
}

const OFFER_ID = 'local';

/** Where a host's code-server keeps its folders, under the host's own (with `editor`; the first-boot script installs its agent to sync them). */
export const LOCAL_EDITOR_DIRS = { userDataDir: 'code-server/user-data', extensionsDir: 'code-server/extensions' } as const;

/** A local host's code-server folders, under its folder `dir`. */
function codeServerDirs(dir: string): EditorDirs {
  return { userDataDir: join(dir, LOCAL_EDITOR_DIRS.userDataDir), extensionsDir: join(dir, LOCAL_EDITOR_DIRS.extensionsDir) };
}
const RECORD = 'host.json';
const PID_FILE = 'workspace-server.pid';
const CODE_SERVER_PID_FILE = 'code-server.pid';
/** code-server takes longer than the workspace server to answer, the more so on a loaded machine */
const CODE_SERVER_START_MS = 60_000;

const recordSchema = z.strictObject({
  version: z.literal(1),
  role: z.enum(['gpu', 'standby']),
  name: z.strictObject({ workspace: z.string(), epoch: z.number().int().nonnegative() }),
  /** running: create/ensure asked for it; stopped: stop() did */
  want: z.enum(['running', 'stopped']),
  sshPort: z.number().int().min(1).max(65535),
  httpPort: z.number().int().min(1).max(65535),
  /** the processes last started, to find them from another provider object (checked against their command lines) */
  sshdPid: z.number().int().positive().optional(),
  serverPid: z.number().int().positive().optional(),
  codeServerPid: z.number().int().positive().optional(),
});
type HostRecord = z.output<typeof recordSchema>;

/** The processes this provider object started for a host. */
interface Running {
  sshd: Sshd;
  server: WorkspaceServer;
  /** the host's code-server, with `codeServer` */
  codeServer: CodeServerProcess | undefined;
  /** a GPU's first-boot script (GpuLaunch.onstart: its agent's install and start), while it runs */
  onstart: ChildProcess | undefined;
}

/** The last lines of a log file (at most 2,000 characters), or why it cannot be read. */
function logTail(file: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, 2000));
    readSync(fd, buf, 0, buf.length, size - buf.length); // the agent's own log goes on in this file: read its end only
    return buf.toString('utf8').split('\n').slice(-15).join('\n');
  } catch (err) {
    return `(cannot read it: ${(err as Error).message})`;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The first-boot script a GPU host runs (GpuLaunch.onstart), in its folder. */
const ONSTART = 'onstart.sh';

/**
 * The file API token of the hosts under `baseDir`, made once (a 0600 file there): who may write through
 * their workspace servers. One for all, as one code-server login would be: a writer going through the
 * proxy's URL reaches whichever host serves.
 */
function filesToken(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'files-token');
  try {
    writeFileSync(file, randomBytes(24).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made already (by this provider or another over the same folder)
  }
  return readFileSync(file, 'utf8').trim();
}

/** SIGKILLs a child's whole tree and resolves once the child has exited. */
async function endChild(child: ChildProcess | undefined): Promise<void> {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killTree(child.pid, 'SIGKILL');
  await exited;
}

/** The command line of a pid, '' when it is gone. */
function commandLineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

export class LocalProvider {
  readonly name = 'local';
  /** the GPU side: search, create, get, list, destroy */
  readonly gpu: GpuProvider;
  /** the standby side: ensure, get, stop, destroy */
  readonly standby: StandbyProvider & { list(workspace: string, signal?: AbortSignal): Promise<ProvisionedHost[]> };
  readonly baseDir: string;
  readonly #fenceKey: PublicKey;
  readonly #program: string;
  readonly #path: string | undefined;
  readonly #startTimeoutMs: number;
  readonly #codeServer: LocalCodeServer | undefined;
  /** every host has code-server's folders, which its receiver takes (its agent is installed to sync them: localOnstart) */
  readonly editor: boolean;
  readonly #log: Logger | undefined;
  readonly #running = new Map<string, Running>();
  /** one call at a time per host: a create and a destroy of the same host never interleave */
  readonly #queues = new Map<string, Promise<unknown>>();
  #closed = false;

  constructor(o: LocalProviderOptions) {
    this.baseDir = o.baseDir;
    try {
      this.#fenceKey = parsePublicKey(o.fenceKey);
    } catch (err) {
      throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', "the local provider's fenceKey is not one OpenSSH public key line (\"ssh-ed25519 AAAA... comment\"): give the proxy's fencing public key (standby.ssh.identityFile's .pub)", { provider: 'local' }, { cause: err });
    }
    this.#program = o.program ?? join(PROGRAM_SOURCE, 'bin', 'standby');
    this.#path = o.path;
    this.#startTimeoutMs = o.startTimeoutMs ?? 10_000;
    this.#codeServer = o.codeServer;
    this.editor = o.editor ?? o.codeServer !== undefined;
    this.#log = o.log;
    if (/["\s]/.test(this.#program) || /["\s]/.test(this.baseDir)) {
      // the paths go into authorized_keys' command="..." and sshd_config, which take neither
      throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `the local provider's paths may hold no space or double quote (program ${this.#program}, baseDir ${this.baseDir}): choose others`, { baseDir: this.baseDir });
    }
    if (!parentDeathAvailable()) this.#log?.warn({ provider: 'local' }, 'setpriv is not installed (Debian/Ubuntu: apt-get install util-linux): if this process is killed, the local hosts\' sshd and workspace servers outlive it');
    const self = this;
    this.gpu = {
      name: 'local',
      search: (req, signal) => self.search(req, signal),
      create: (offer, launch, signal) => self.create(offer, launch, signal),
      get: (id, signal) => self.get(id, signal),
      list: (workspace, signal) => self.list('gpu', workspace, signal),
      destroy: (id, signal) => self.destroy(id, signal),
      stop: (id, signal) => self.stop(id, signal),
    };
    this.standby = {
      name: 'local',
      ensure: (spec, signal) => self.ensure(spec, signal),
      get: (id, signal) => self.get(id, signal),
      list: (workspace, signal) => self.list('standby', workspace, signal),
      stop: (id, signal) => self.stop(id, signal),
      destroy: (id, signal) => self.destroy(id, signal),
    };
  }

  /** One free offer, this machine, meeting any requirements. */
  async search(req: GpuRequirements, signal?: AbortSignal): Promise<GpuSearch> {
    signal?.throwIfAborted();
    return { ok: true, offers: [{ id: OFFER_ID, pricePerHour: 0, gpuName: 'this machine (no GPU)', gpuCount: 1, gpuRamGb: req.minGpuRamGb, location: 'this machine', region: undefined, reliability: 1 }] };
  }

  /** Makes the GPU host named `launch.name`, or adopts the one of that name (its processes started again if they are not running). The image, onstart script and environment are not used: the caller starts what the host runs. */
  async create(offer: GpuOffer, launch: GpuLaunch, signal?: AbortSignal): Promise<ProvisionedHost> {
    if (offer.id !== OFFER_ID) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `offer ${JSON.stringify(offer.id.slice(0, 60))} is not the local provider's (its one offer is "${OFFER_ID}", from search())`, { provider: 'local' });
    return this.#up('gpu', launch.name, this.#fenceKey, signal, launch.onstart);
  }

  /** Makes the standby host named `spec.name` or starts it again; its sshPublicKey is the fencing key authorized. Zone, machine type, disk, spot and startup script mean nothing here; sessions log in as the user this process runs as. */
  async ensure(spec: StandbySpec, signal?: AbortSignal): Promise<ProvisionedHost> {
    let key: PublicKey;
    try {
      key = parsePublicKey(spec.sshPublicKey);
    } catch (err) {
      throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'the standby ssh public key is not one OpenSSH public key line ("ssh-ed25519 AAAA... comment")', { provider: 'local' }, { cause: err });
    }
    return this.#up('standby', spec.name, key, signal);
  }

  /** The host now, or undefined when its folder is gone. */
  async get(id: string, signal?: AbortSignal): Promise<ProvisionedHost | undefined> {
    signal?.throwIfAborted();
    const { role, text } = this.#parseId(id);
    const record = this.#read(role, text);
    return record ? this.#host(role, text, record) : undefined;
  }

  /** Every host of `role` for `workspace`, whatever its epoch. */
  async list(role: LocalRole, workspace: string, signal?: AbortSignal): Promise<ProvisionedHost[]> {
    signal?.throwIfAborted();
    const dir = join(this.baseDir, role);
    if (!existsSync(dir)) return [];
    const out: ProvisionedHost[] = [];
    for (const text of readdirSync(dir).sort()) {
      const name = parseHostName(text);
      if (name?.workspace !== workspace.toLowerCase()) continue;
      const record = this.#read(role, text);
      if (record) out.push(this.#host(role, text, record));
    }
    return out;
  }

  /** Stops the host's processes, keeping its folder (a stopped VM keeps its disk); ensure() starts it again. */
  async stop(id: string, signal?: AbortSignal): Promise<void> {
    const { role, text } = this.#parseId(id);
    await this.#serial(`${role}/${text}`, async () => {
      signal?.throwIfAborted();
      const record = this.#read(role, text);
      if (!record) return;
      await this.#halt(role, text, record);
      this.#write(role, text, { ...record, want: 'stopped', sshdPid: undefined, serverPid: undefined, codeServerPid: undefined });
      this.#log?.info({ provider: 'local', host: `${role}/${text}` }, 'local host stopped (its folder kept)');
    });
  }

  /** Stops the host's processes and removes its folder; done when it is gone or was already. */
  async destroy(id: string, signal?: AbortSignal): Promise<void> {
    const { role, text } = this.#parseId(id);
    await this.#serial(`${role}/${text}`, async () => {
      signal?.throwIfAborted();
      const dir = this.#dir(role, text);
      const record = existsSync(dir) ? this.#read(role, text, false) : undefined;
      await this.#halt(role, text, record);
      rmSync(dir, { recursive: true, force: true });
      this.#log?.info({ provider: 'local', host: `${role}/${text}` }, 'local host destroyed');
    });
  }

  /**
   * "Kill the GPU": SIGKILLs the host's sshd with every connection it serves
   * (and what runs under them), and its workspace server, as a crash would.
   * The folder stays; get() says failed until create/ensure starts it again.
   */
  kill(id: string): void {
    const { role, text } = this.#parseId(id);
    const key = `${role}/${text}`;
    const run = this.#running.get(key);
    if (run) {
      run.sshd.kill('SIGKILL');
      run.server.kill('SIGKILL');
      run.codeServer?.kill('SIGKILL');
      if (run.onstart?.pid !== undefined && run.onstart.exitCode === null) killTree(run.onstart.pid, 'SIGKILL');
    }
    const record = this.#read(role, text, false);
    if (record) for (const pid of this.#foreignPids(role, text, record)) killTree(pid, 'SIGKILL');
    this.#log?.warn({ provider: 'local', host: key }, 'local host killed (SIGKILL)');
  }

  /** Where a host's parts are, or undefined when it does not exist. */
  details(id: string): LocalHostDetails | undefined {
    const { role, text } = this.#parseId(id);
    const record = this.#read(role, text);
    if (!record) return undefined;
    const dir = this.#dir(role, text);
    return {
      id: `${role}/${text}`,
      role,
      dir,
      workspace: join(dir, 'workspace'),
      receiveState: join(dir, 'receive-state'),
      authorizedKeys: join(dir, 'authorized_keys'),
      knownHostsFile: join(dir, 'sshd', 'known_hosts'),
      receiver: `${quoteWord(this.#program)} receive`,
      sshPort: record.sshPort,
      url: `http://127.0.0.1:${record.httpPort}`,
      filesToken: filesToken(this.baseDir),
      pidFile: join(dir, PID_FILE),
      pidFiles: [join(dir, PID_FILE), ...(this.#codeServer ? [join(dir, CODE_SERVER_PID_FILE)] : [])],
      editor: this.#editorDirs(dir),
    };
  }

  /** A host's code-server folders, with `editor` (synced, taken by its receiver). */
  #editorDirs(dir: string): EditorDirs | undefined {
    return this.editor ? codeServerDirs(dir) : undefined;
  }

  /** Stops every process this provider started (the hosts' folders stay). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#queues.values()]);
    const all = [...this.#running.entries()];
    this.#running.clear();
    await Promise.all(all.map(([key, r]) => Promise.all([r.sshd.close(), r.server.close(), r.codeServer?.close(), endChild(r.onstart)]).then(() => {
      rmSync(join(this.baseDir, key, PID_FILE), { force: true });
      rmSync(join(this.baseDir, key, CODE_SERVER_PID_FILE), { force: true });
    })));
  }

  async #up(role: LocalRole, name: HostName, key: PublicKey, signal: AbortSignal | undefined, onstart?: string): Promise<ProvisionedHost> {
    const text = hostNameText(name);
    if (!parseHostName(text)) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `${JSON.stringify(name.workspace.slice(0, 60))} is not a workspace id (letters, digits and "-", at most 40)`, { provider: 'local' });
    return this.#serial(`${role}/${text}`, async () => {
      signal?.throwIfAborted();
      const dir = this.#dir(role, text);
      const existing = this.#read(role, text);
      if (existing && (existing.name.workspace !== name.workspace.toLowerCase() || existing.name.epoch !== name.epoch)) {
        throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `${dir} holds another host (${existing.name.workspace} e${existing.name.epoch}): remove it`, { provider: 'local', dir });
      }
      for (const d of ['workspace', 'receive-state', 'sshd']) mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
      const editor = this.#editorDirs(dir);
      if (editor) for (const d of [join(editor.userDataDir, 'User'), editor.extensionsDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
      this.#layKeys(dir, key);
      // the first-boot script, as a cloud keeps it with the instance: run at each start of the host's processes
      if (onstart !== undefined && onstart.trim() !== '') writeFileSync(join(dir, ONSTART), onstart, { mode: 0o700 });
      let record: HostRecord = existing ?? { version: 1, role, name: { workspace: name.workspace.toLowerCase(), epoch: name.epoch }, want: 'running', sshPort: await freePort(), httpPort: await freePort() };
      record = { ...record, want: 'running' };
      const live = this.#liveness(role, text, record);
      if (live.sshd && live.server) {
        this.#write(role, text, record);
        return this.#host(role, text, record);
      }
      // half running (one died, or the other was started by a provider since gone): start both afresh under this one
      await this.#halt(role, text, record);
      signal?.throwIfAborted();
      const run = await this.#start(role, text, record);
      record = { ...record, sshPort: run.sshd.port, httpPort: run.server.port, sshdPid: run.sshd.pid(), serverPid: run.server.pid, ...(run.codeServer ? { codeServerPid: run.codeServer.pid } : { codeServerPid: undefined }) };
      this.#write(role, text, record);
      this.#log?.info({ provider: 'local', host: `${role}/${text}`, sshPort: record.sshPort, url: `http://127.0.0.1:${record.httpPort}`, adopted: existing !== undefined }, existing ? 'local host started again' : 'local host created');
      return this.#host(role, text, record);
    });
  }

  /** authorized_keys as the installer lays it down: `key` the one fencing key, with the receiver as its forced command; the writers' entries the proxy added are kept. */
  #layKeys(dir: string, key: PublicKey): void {
    const file = join(dir, 'authorized_keys');
    const editor = this.#editorDirs(dir);
    const editorRoots = editorReceiveRoots(editor).flatMap((r) => ['--root', r]); // as the installer lists them
    const args = ['receive', '--allow-fence', '--state-dir', join(dir, 'receive-state'), '--root', join(dir, 'workspace'), ...editorRoots, '--authorized-keys', file];
    for (const old of fencingKeys(file)) if (old.blob !== key.blob) revokeWriter(file, old);
    authorizeWriter(file, key, `${quoteWord(this.#program)} ${quoteWords(args)}`);
  }

  async #start(role: LocalRole, text: string, record: HostRecord): Promise<Running> {
    if (this.#closed) throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', 'the local provider is closed', { provider: 'local' });
    const dir = this.#dir(role, text);
    const wrap = dieWithParentPrefix();
    const sshd = await startSshd({
      dir: join(dir, 'sshd'),
      port: record.sshPort,
      authorizedKeysFile: join(dir, 'authorized_keys'),
      wrap,
      startTimeoutMs: this.#startTimeoutMs,
      ...(this.#path !== undefined ? { path: this.#path } : {}),
    });
    let server: WorkspaceServer;
    let codeServer: CodeServerProcess | undefined;
    try {
      if (this.#codeServer) {
        codeServer = await startCodeServerProcess({
          name: `the code-server of ${role}/${text}`,
          entry: this.#codeServer.entry,
          ...(this.#codeServer.node !== undefined ? { node: this.#codeServer.node } : {}),
          folder: join(dir, 'workspace'),
          ...codeServerDirs(dir), // there with or without `editor`: it only decides whether they are synced
          startTimeoutMs: Math.max(this.#startTimeoutMs, CODE_SERVER_START_MS),
        });
      }
      const httpPort = (await portFree(record.httpPort)) ? record.httpPort : await freePort();
      server = await startWorkspaceServer({ name: `${role}/${text}`, port: httpPort, wrap, startTimeoutMs: this.#startTimeoutMs, root: join(dir, 'workspace'), filesToken: filesToken(this.baseDir), ...(codeServer ? { upstream: codeServer.url } : {}) });
    } catch (err) {
      await Promise.all([sshd.stop(), codeServer?.close()]);
      throw err;
    }
    const run: Running = { sshd, server, codeServer, onstart: role === 'gpu' ? this.#onstart(dir, wrap) : undefined };
    this.#running.set(`${role}/${text}`, run);
    writeStateFile(join(dir, PID_FILE), `${server.pid}\n`, { what: "the workspace server's pid file" });
    if (codeServer) writeStateFile(join(dir, CODE_SERVER_PID_FILE), `${codeServer.pid}\n`, { what: "code-server's pid file" });
    return run;
  }

  /**
   * Runs the host's first-boot script, if it has one, as a cloud would at boot: in its folder, with
   * STANDBY_HOST_DIR (the folder) and STANDBY_PROGRAM (the standby program) in its environment, its
   * output in onstart.log. What it starts (the GPU's agent) is part of the host: killed with it.
   */
  #onstart(dir: string, wrap: string[]): ChildProcess | undefined {
    const script = join(dir, ONSTART);
    if (!existsSync(script)) return undefined;
    const out = openSync(join(dir, 'onstart.log'), 'a', 0o600);
    try {
      const argv = [...wrap, 'sh', script];
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: dir,
        stdio: ['ignore', out, out],
        env: { ...process.env, ...(this.#path !== undefined ? { PATH: this.#path } : {}), STANDBY_HOST_DIR: dir, STANDBY_PROGRAM: this.#program },
        detached: true, // its own process group: the host's kill takes the whole tree
      });
      child.on('error', (err) => this.#log?.error({ provider: 'local', dir, err }, 'the host\'s onstart script could not start'));
      child.on('exit', (code, sig) => {
        if (code === 0 || code === null) return this.#log?.info({ provider: 'local', dir, code, signal: sig }, 'the host\'s onstart script ended');
        // what a cloud's boot log would show: why the host's agent never came
        this.#log?.error({ provider: 'local', dir, code, tail: logTail(join(dir, 'onstart.log')) }, `the host's onstart script failed (exit ${code}): see ${join(dir, 'onstart.log')}`);
      });
      return child;
    } finally {
      closeSync(out);
    }
  }

  /** Ends the host's processes, this provider's and any another provider object left (by pid), and waits for this one's to exit. */
  async #halt(role: LocalRole, text: string, record: HostRecord | undefined): Promise<void> {
    const key = `${role}/${text}`;
    const run = this.#running.get(key);
    this.#running.delete(key);
    if (record) for (const pid of this.#foreignPids(role, text, record)) killTree(pid, 'SIGKILL');
    if (run) await Promise.all([run.sshd.stop(), run.server.close(), run.codeServer?.close(), endChild(run.onstart)]);
    rmSync(join(this.#dir(role, text), PID_FILE), { force: true });
    rmSync(join(this.#dir(role, text), CODE_SERVER_PID_FILE), { force: true });
  }

  /** The recorded pids that still run this host's sshd or server but are not this provider's children. */
  #foreignPids(role: LocalRole, text: string, record: HostRecord): number[] {
    const run = this.#running.get(`${role}/${text}`);
    const out: number[] = [];
    const live = this.#liveness(role, text, record);
    if (live.sshdPid !== undefined && live.sshdPid !== run?.sshd.pid()) out.push(live.sshdPid);
    if (live.serverPid !== undefined && live.serverPid !== run?.server.pid) out.push(live.serverPid);
    // a code-server another provider object started: its command line names this host's user data folder
    const cs = record.codeServerPid;
    if (cs !== undefined && cs !== run?.codeServer?.pid && commandLineOf(cs).includes(join(this.#dir(role, text), 'code-server', 'user-data'))) out.push(cs);
    return out;
  }

  /** Whether the host's sshd and server run: this provider's children, or the recorded pids if their command lines are still this host's (a pid is reused). */
  #liveness(role: LocalRole, text: string, record: HostRecord): { sshd: boolean; server: boolean; sshdPid: number | undefined; serverPid: number | undefined } {
    const run = this.#running.get(`${role}/${text}`);
    const dir = this.#dir(role, text);
    const sshdPid = run?.sshd.pid() ?? (record.sshdPid !== undefined && commandLineOf(record.sshdPid).includes(join(dir, 'sshd', 'sshd_config')) ? record.sshdPid : undefined);
    const serverPid = run?.server.running() ? run.server.pid : record.serverPid !== undefined && commandLineOf(record.serverPid).includes(`workspace-server.ts 127.0.0.1 ${record.httpPort} ${role}/${text}`) ? record.serverPid : undefined;
    return { sshd: sshdPid !== undefined, server: serverPid !== undefined, sshdPid, serverPid };
  }

  #host(role: LocalRole, text: string, record: HostRecord): ProvisionedHost {
    const live = this.#liveness(role, text, record);
    const running = live.sshd && live.server;
    const state = record.want === 'stopped' ? 'stopped' : running ? 'running' : 'failed';
    const down = [live.sshd ? undefined : 'sshd', live.server ? undefined : 'the workspace server'].filter(Boolean).join(' and ');
    const detail =
      state === 'running' ? `running (ssh 127.0.0.1:${record.sshPort}, workspace server http://127.0.0.1:${record.httpPort})`
      : state === 'stopped' ? 'stopped, its folder kept: ensure starts it again'
      : `${down} not running (killed, crashed, or started by a provider since gone): create or ensure starts it again`;
    return {
      id: `${role}/${text}`,
      provider: 'local',
      name: parseHostName(text),
      state,
      ssh: running && state === 'running' ? { host: '127.0.0.1', port: record.sshPort, user: userInfo().username } : undefined,
      pricePerHour: 0,
      detail,
      url: `http://127.0.0.1:${record.httpPort}`,
      workspace: join(this.#dir(role, text), 'workspace'),
    };
  }

  /** A local host id: `gpu/<name>` or `standby/<name>`, name as hostNameText makes it. */
  #parseId(id: string): { role: LocalRole; text: string } {
    const m = /^(gpu|standby)\/(standby-[a-z0-9-]{1,40}-e\d{1,9})$/.exec(id);
    if (!m || !parseHostName(m[2]!)) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `${JSON.stringify(id.slice(0, 100))} is not a local host id (gpu/<name> or standby/<name>)`, { provider: 'local' });
    return { role: m[1] as LocalRole, text: m[2]! };
  }

  #dir(role: LocalRole, text: string): string {
    return join(this.baseDir, role, text);
  }

  /** The host's record; undefined when its folder or record is not there. An unreadable record is STANDBY_ERR_STATE_CORRUPT (`strict`), or undefined. */
  #read(role: LocalRole, text: string, strict = true): HostRecord | undefined {
    const file = join(this.#dir(role, text), RECORD);
    const what = { what: 'the local host record', hint: '; remove the host folder (destroy) to start it afresh' };
    let raw: string | undefined;
    try {
      raw = readStateFile(file, what);
    } catch (err) {
      if (strict) throw err;
      return undefined;
    }
    if (raw === undefined) return undefined;
    let parsed: z.ZodSafeParseResult<HostRecord>;
    try {
      parsed = recordSchema.safeParse(JSON.parse(raw));
    } catch (err) {
      if (!strict) return undefined;
      throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `the local host record ${file} is not JSON${what.hint}`, { file }, { cause: err });
    }
    if (parsed.success && parsed.data.role === role) return parsed.data;
    if (!strict) return undefined;
    throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `the local host record ${file} is not one: ${parsed.error?.issues[0]?.message ?? `role ${parsed.data?.role}, in the ${role} folder`}${what.hint}`, { file });
  }

  #write(role: LocalRole, text: string, record: HostRecord): void {
    const { sshdPid, serverPid, codeServerPid, ...rest } = record;
    const clean = { ...rest, ...(sshdPid !== undefined ? { sshdPid } : {}), ...(serverPid !== undefined ? { serverPid } : {}), ...(codeServerPid !== undefined ? { codeServerPid } : {}) };
    writeStateFile(join(this.#dir(role, text), RECORD), JSON.stringify(clean, null, 2) + '\n', { what: 'the local host record' });
  }

  /** Runs `fn` after the host's earlier calls have ended. */
  #serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#queues.get(key) ?? Promise.resolve();
    const next = before.then(fn, fn);
    const settled = next.then(() => undefined, () => undefined);
    this.#queues.set(key, settled);
    void settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
    });
    return next;
  }
}
