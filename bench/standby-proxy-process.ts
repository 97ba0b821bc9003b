// The Standby proxy as a user runs it, `bin/standby proxy --config FILE`, in
// its own process, for measuring what it costs on the request path: no agent
// ever connects, the detector's window is long and its probes patient, so it
// routes to the primary for the whole run and never fails over (a failover
// could not fence anyway: the fence key does not exist). State lives in the
// run's folder. STANDBY_BENCH_CLI=path/cli.ts runs another checkout's proxy
// (an older one, to measure a change before and after on the same machine),
// on the same Node and with the same (no) flags as bin/standby gives it.
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { STANDBY_CLI } from '../test/fixtures/program-paths.ts';
import { startServerProcess, startAnswering, type ServerProcess } from './server-process.ts';

/** The Node bin/standby runs (the package's node_modules/.bin/node, else this one): every side of a comparison runs on it. */
export function standbyNode(): string {
  const pinnedNode = join(import.meta.dirname, '..', 'node_modules', '.bin', 'node');
  try {
    accessSync(pinnedNode, constants.X_OK);
    return pinnedNode;
  } catch {
    return process.execPath;
  }
}

export interface StandbyProxyOptions {
  port: number;
  primaryUrl: string;
  standbyUrl: string;
  /** a folder for the config and the state */
  dir: string;
  cpu?: number;
  /** NODE_OPTIONS for it (e.g. --cpu-prof --cpu-prof-dir=...) */
  nodeOptions?: string;
  /** the body its primary answers GET /whoami with, to know it is ready */
  primaryName: string;
}

export interface StandbyProxy {
  url: string;
  process: ServerProcess;
  configFile: string;
  stop(): Promise<void>;
}

export async function startStandbyProxy(o: StandbyProxyOptions): Promise<StandbyProxy> {
  const stateDir = join(o.dir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const configFile = join(o.dir, 'proxy.json');
  writeFileSync(
    configFile,
    JSON.stringify(
      {
        listen: { host: '127.0.0.1', port: o.port },
        stateDir,
        adminToken: 'bench-admin-token',
        primary: { id: 'gpu-bench', url: o.primaryUrl, agentToken: 'bench-agent-token' },
        standby: { id: 'cpu-bench', url: o.standbyUrl, ssh: { host: '127.0.0.1', port: 22, user: 'root', identityFile: join(o.dir, 'no-such-key') } },
        detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100, probeTimeoutMs: 60_000 },
        logLevel: 'info',
      },
      null,
      2,
    ),
    { mode: 0o600 },
  );
  const env = { ...process.env, ...(o.nodeOptions ? { NODE_OPTIONS: o.nodeOptions } : {}) };
  const other = process.env.STANDBY_BENCH_CLI;
  const [program, args] = other ? [standbyNode(), [resolve(other), 'proxy', '--config', configFile]] : [STANDBY_CLI, ['proxy', '--config', configFile]];
  const proc = startServerProcess('standby proxy', program, args, { cpu: o.cpu, env });
  return { ...(await startAnswering(proc, o.port, '/whoami', o.primaryName)), configFile };
}
