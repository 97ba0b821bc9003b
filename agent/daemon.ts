// The agent daemon: checks, engine, status endpoint, periodic status log.
// close() stops them in reverse order.
import type { Logger } from '../log.ts';
import type { AgentConfig } from './config.ts';
import { checkInotifyLimits, inotifyWatchesHeld, requireBinary, requireRoots } from './preflight.ts';
import { startStatusServer, type StatusServer } from './status-server.ts';
import { SyncEngine, type SyncStatus } from './sync-engine.ts';

export interface Agent {
  engine: SyncEngine;
  status: StatusServer;
  close(): Promise<void>;
}

/** A one-line summary of the sync state, for logs (and later systemd's STATUS=). */
export function summarize(s: SyncStatus): string {
  const synced = s.lastPassAgeMs === null ? 'never synced' : `synced ${(s.lastPassAgeMs / 1000).toFixed(1)} s ago`;
  const pending = `${s.pending} pending`;
  const oldest = s.oldestPendingAgeMs === null ? '' : `, oldest ${(s.oldestPendingAgeMs / 1000).toFixed(1)} s`;
  const failing = s.failingFor > 0 ? `, failing (${s.lastError?.message ?? 'unknown'})` : '';
  const held = s.held ? `, ${s.held.deletions} deletions held` : '';
  return `${synced}, ${pending}${oldest}${failing}${held}`;
}

export async function startAgent(config: AgentConfig, log: Logger, { statusEveryMs = 30_000 } = {}): Promise<Agent> {
  requireBinary('rsync', 'rsync');
  requireBinary('ssh', 'openssh-client');
  const engine = new SyncEngine(config, log);
  requireRoots(engine.roots);
  await engine.start();
  checkInotifyLimits(log, inotifyWatchesHeld());
  let status: StatusServer;
  try {
    status = await startStatusServer(engine, config.status.host, config.status.port);
  } catch (err) {
    await engine.close();
    throw err;
  }
  log.info({ status: `http://${config.status.host}:${status.port}/status` }, 'agent started');
  const timer = setInterval(() => {
    const s = engine.status();
    log.info({ sync: s }, summarize(s));
  }, statusEveryMs);
  timer.unref();
  return {
    engine,
    status,
    async close() {
      clearInterval(timer);
      await status.close();
      await engine.close();
    },
  };
}
