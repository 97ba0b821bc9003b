// The whole system on this one machine, with real processes: a proxy (in
// this process) with a `recovery` section on the `local` provider, a CPU
// standby made by that provider (a folder, a real sshd on loopback whose
// only key is the proxy's fencing key with the receiver as forced command,
// the built-in workspace server) running its own agent, and a first GPU made
// the same way whose agent is installed by the real installer with a one-time
// invitation, exactly as the recovery installs a new GPU's. `standby demo`
// and the full-cycle test run on it. killGpu() takes the GPU down as a crash
// would (SIGKILL of its sshd, its workspace server and its agent). With
// `codeServer`, every host (the new GPU the recovery makes included) runs a
// real code-server behind its workspace server, and the kill takes it too.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../core/log.ts';
import { validateSettings, mergeSettings } from '../../config/file.ts';
import { proxyConfigSchema, type ProxyConfig } from '../../config/proxy.ts';
import { dieWithParentPrefix } from '../../core/parent-death.ts';
import { killTree } from '../../core/process-tree.ts';
import { PROGRAM_SOURCE } from '../../core/program-files.ts';
import { ensureAgentKey, ensureFenceKey } from '../../installer/keys.ts';
import { startProxy, type Proxy } from '../../proxy/daemon.ts';
import { LocalProvider, type LocalCodeServer, type LocalHostDetails } from '../../proxy/provision/local.ts';
import { localOnstart } from '../../proxy/recovery-setup.ts';

export const WORLD_ADMIN_TOKEN = 'sba_local-world-admin-token-0123456789';
const STANDBY_AGENT_TOKEN = 'sbt_local-world-standby-agent-token-0123456789';
const WORKSPACE = 'demo';

export interface LocalWorldOptions {
  /** proxy.json settings over the world's own (detector, recovery timeouts...) */
  settings?: Record<string, unknown>;
  log: Logger;
  /** keep the folder when closing (--keep) */
  keep?: boolean;
  /** every host runs this code-server behind its workspace server (installer/code-server.ts's install) */
  codeServer?: LocalCodeServer;
  /** every host has code-server's folders, which the agents sync (default: true with codeServer) */
  editor?: boolean;
}

export interface LocalWorld {
  dir: string;
  proxy: Proxy;
  config: ProxyConfig;
  provider: LocalProvider;
  standby: LocalHostDetails;
  gpu: LocalHostDetails;
  adminToken: string;
  /** GET/POST the admin API */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** SIGKILLs the first GPU: its sshd, its workspace server and its agent */
  killGpu(): void;
  close(): Promise<void>;
}

/** A `standby` child process of this world: it dies with this process (SIGKILL included), its output in `log`. */
function child(args: string[], log: string, env: Record<string, string> = {}): ChildProcess {
  const out = openSync(log, 'a', 0o600);
  try {
    const argv = [...dieWithParentPrefix(), ...args];
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out], env: { ...process.env, ...env }, detached: true });
    c.on('error', () => {}); // a spawn failure shows as its exit, read by whoever waits for the host
    return c;
  } finally {
    closeSync(out);
  }
}

async function ended(c: ChildProcess): Promise<void> {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  const done = new Promise<void>((resolve) => c.once('exit', () => resolve()));
  killTree(c.pid, 'SIGKILL');
  await done;
}

export async function startLocalWorld(o: LocalWorldOptions): Promise<LocalWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'standby-world-'));
  const program = join(PROGRAM_SOURCE, 'bin', 'standby');
  const cleanups: (() => Promise<unknown> | unknown)[] = [() => (o.keep ? undefined : rmSync(dir, { recursive: true, force: true }))];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    const keys = join(dir, 'keys');
    const fence = ensureFenceKey(keys);
    const baseDir = join(dir, 'hosts');
    const editor = o.editor ?? o.codeServer !== undefined;
    const provider = new LocalProvider({ baseDir, fenceKey: fence.publicKey, log: o.log, editor, ...(o.codeServer ? { codeServer: o.codeServer } : {}) });
    cleanups.push(() => provider.close());
    const standbyHost = await provider.standby.ensure({ name: { workspace: WORKSPACE, epoch: 0 }, zone: 'local', machineType: 'local', diskGb: 1, spot: false, sshPublicKey: fence.publicKey, sshUser: 'root' });
    const found = await provider.gpu.search({ minGpuRamGb: 0, maxPricePerHour: 0, regions: [], diskGb: 1 });
    if (!found.ok) throw new Error(`the local provider offers no GPU: ${found.reason}`);
    const gpuHost = await provider.gpu.create(found.offers[0]!, { name: { workspace: WORKSPACE, epoch: 1 }, image: 'local', onstart: '', diskGb: 1 });
    const standby = provider.details(standbyHost.id)!;
    const gpu = provider.details(gpuHost.id)!;
    const stateDir = join(dir, 'proxy-state');
    mkdirSync(stateDir, { mode: 0o700 });
    const config = validateSettings(proxyConfigSchema, mergeSettings({
      listen: { host: '127.0.0.1', port: 0 },
      stateDir,
      adminToken: WORLD_ADMIN_TOKEN,
      primary: { id: 'gpu-1', url: gpu.url, provider: 'local', providerId: gpuHost.id },
      standby: {
        id: 'cpu-1',
        url: standby.url,
        agentToken: STANDBY_AGENT_TOKEN,
        ssh: { host: '127.0.0.1', port: standby.sshPort, user: standbyHost.ssh!.user, identityFile: fence.identityFile, knownHostsFile: standby.knownHostsFile, waitMs: 2_000, timeoutMs: 10_000 },
      },
      detector: { heartbeatIntervalMs: 250, missedHeartbeats: 4, probeIntervalMs: 100, probeTimeoutMs: 300 },
      recovery: { workspace: WORKSPACE, gpu: { provider: 'local' }, local: { baseDir, editor, ...(o.codeServer ? { codeServer: o.codeServer } : {}) }, retryDelayS: 1, provisionS: 60, sshWaitS: 30, agentWaitS: 60, restoreS: 120 },
      logLevel: 'info',
    }, o.settings ?? {}), 'the local world');
    const proxy = await startProxy(config, o.log);
    cleanups.push(() => proxy.close());
    const api = (path: string, init: RequestInit = {}) => fetch(`${proxy.url}/_standby/api/v1/${path}`, { ...init, headers: { authorization: `Bearer ${WORLD_ADMIN_TOKEN}`, ...(init.headers ?? {}) }, signal: AbortSignal.timeout(10_000) });

    // the standby's agent: fenced until a recovery grants it a new GPU to restore; it freezes its workspace server at switch back
    const standbyKey = ensureAgentKey(join(keys, 'standby-agent'));
    const standbyConfig = join(dir, 'standby-agent.json');
    writeFileSync(standbyConfig, JSON.stringify({
      hostId: 'cpu-1',
      workspace: standby.workspace,
      identityFile: standbyKey.identityFile,
      proxy: { url: proxy.url.replace(/^http/, 'ws') + '/_standby/agent', token: STANDBY_AGENT_TOKEN, heartbeatIntervalMs: 250 },
      freeze: { pidFiles: standby.pidFiles },
      // its code-server's folders: restored to where each new GPU's receiver keeps its own (the grant names them)
      ...(standby.editor ? { editor: { userDataDir: standby.editor.userDataDir, extensionsDir: standby.editor.extensionsDir } } : {}),
      status: { port: 0 },
      runDir: join(dir, 'standby-agent-run'),
      logLevel: 'info',
    }, null, 2), { mode: 0o600 });
    const standbyAgent = child([program, 'agent', '--config', standbyConfig], join(dir, 'standby-agent.log'));
    cleanups.push(() => ended(standbyAgent));

    // the first GPU's agent, installed as a new GPU's is: the real installer, a one-time invitation
    const invitation = proxy.hosts.invite('gpu-1', 600_000).token;
    const gpuAgent = child(['sh', '-c', localOnstart(proxy.url, invitation, { editor })], join(gpu.dir, 'onstart.log'), { STANDBY_HOST_DIR: gpu.dir, STANDBY_PROGRAM: program });
    cleanups.push(() => ended(gpuAgent));

    return {
      dir,
      proxy,
      config,
      provider,
      standby,
      gpu,
      adminToken: WORLD_ADMIN_TOKEN,
      api,
      killGpu() {
        provider.kill(gpuHost.id);
        if (gpuAgent.pid !== undefined && gpuAgent.exitCode === null) killTree(gpuAgent.pid, 'SIGKILL');
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The last lines of a world's log file, for an error message. */
export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
