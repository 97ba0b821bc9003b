// The agent daemon: checks, engine, status endpoint, periodic status log.
// close() stops them in reverse order.
import { requirePrivateFile } from '../config/file.ts';
import type { Logger } from '../core/log.ts';
import { editorRoots, type AgentConfig } from '../config/agent.ts';
import { HeartbeatClient } from './heartbeat.ts';
import { parentDeathAvailable } from '../core/parent-death.ts';
import { GcpPreemptionWatcher, onGcp } from './notices/gcp-metadata.ts';
import { checkInotifyLimits, inotifyWatchesHeld, ensureEditorRoots, requireBinary, requireRoots } from './preflight.ts';
import { startStatusServer, type StatusServer } from './status-server.ts';
import { localRsyncVersion } from './rsync-version.ts';
import { describeDestination, describeProgress, summarizeSync } from '../protocol/agent-status.ts';
import { SyncEngine } from './sync-engine.ts';
import { verify } from './verify.ts';
import { writePublicKey } from './write-identity.ts';
import { Freezer } from './freeze.ts';
import { Resumer } from './resume.ts';

export interface Agent {
  engine: SyncEngine;
  status: StatusServer;
  /** the proxy connection, when a proxy is configured */
  heartbeat: HeartbeatClient | undefined;
  /**
   * Reports a preemption notice and waits (up to graceMs) for the proxy's
   * planned failover to fence this agent: its final pass is then done.
   * Resolves true when fenced in time.
   */
  preempted(source: string, graceMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export async function startAgent(config: AgentConfig, log: Logger, { statusEveryMs = 30_000, progressEveryMs = 5_000 } = {}): Promise<Agent> {
  if (config.standby?.identityFile) requirePrivateFile(config.standby.identityFile, "the agent's private ssh key (standby.identityFile)");
  if (config.identityFile) requirePrivateFile(config.identityFile, "the agent's private ssh key for granted targets (identityFile)");
  requireBinary('rsync', 'rsync');
  requireBinary('ssh', 'openssh-client');
  await localRsyncVersion(); // too old here: refused at start, naming the version and what to install
  if (!parentDeathAvailable()) log.warn('setpriv is not installed (Debian/Ubuntu: apt-get install util-linux): if this agent is killed, its ssh and rsync children and its session on the standby outlive it');
  const made = ensureEditorRoots(editorRoots(config));
  if (made.length) log.info({ made }, 'made the editor folders code-server has not made yet (owned like the folder above each)');
  const engine = new SyncEngine(config, log);
  requireRoots(engine.roots);
  // Connect first: nothing is pushed until the proxy grants primary.
  const heartbeat = config.proxy ? new HeartbeatClient(config.proxy, config.hostId, engine, log, config.codeServer?.url) : undefined;
  if (heartbeat) {
    // with where passes go now: a granted target (a restore) included
    heartbeat.verifier = () => verify(engine.config, engine.toldEpoch, engine.destination?.ssh ?? config.standby, engine.destination?.editor);
    heartbeat.publicKey = writePublicKey(config, log);
    heartbeat.freezer = new Freezer(config.freeze, log);
    const resumer = new Resumer(config, log);
    resumer.onChange = () => heartbeat.beatNow();
    heartbeat.resumer = resumer;
  }
  heartbeat?.start();
  const n = config.notices;
  const gcp = heartbeat && (n.gcpMetadata === true || (n.gcpMetadata === 'auto' && onGcp()))
    ? new GcpPreemptionWatcher(n.gcpMetadataUrl, (source) => heartbeat.notice(source), log)
    : undefined;
  gcp?.start();
  const stopReporting = () => {
    gcp?.close();
    heartbeat?.close();
  };
  try {
    await engine.start();
  } catch (err) {
    stopReporting();
    throw err;
  }
  checkInotifyLimits(log, inotifyWatchesHeld());
  let status: StatusServer;
  try {
    status = await startStatusServer(engine, config.status.host, config.status.port);
  } catch (err) {
    stopReporting();
    await engine.close();
    throw err;
  }
  log.info({ status: `http://${config.status.host}:${status.port}/status` }, 'agent started');
  const timer = setInterval(() => {
    const s = engine.status();
    log.info({ sync: s }, summarizeSync(s));
  }, statusEveryMs);
  timer.unref();
  // a full pass (a restore to a new GPU above all) says how far it got more often than the status line
  const progressTimer = setInterval(() => {
    const s = engine.status();
    if (s.progress) log.info({ destination: s.destination, progress: s.progress }, `full pass to ${describeDestination(s.destination)}: ${describeProgress(s.progress)}`);
  }, progressEveryMs);
  progressTimer.unref();
  return {
    engine,
    status,
    heartbeat,
    async preempted(source, graceMs) {
      if (!heartbeat || !engine.pushing) return false;
      heartbeat.notice(source);
      log.warn({ source, graceMs }, 'preemption notice: waiting for the proxy to take the final pass and fence this agent');
      const deadline = performance.now() + graceMs;
      while (engine.pushing && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      return !engine.pushing;
    },
    async close() {
      clearInterval(timer);
      clearInterval(progressTimer);
      stopReporting();
      await status.close();
      await engine.close();
    },
  };
}
