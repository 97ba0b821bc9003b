// `standby status`: what the proxy knows, or with --agent what the local
// agent knows about its sync.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { describeDestination, describeProgress, summarizeSync, type SyncStatus } from '../protocol/agent-status.ts';
import type { RecoveryStatus } from '../protocol/admin-api.ts';
import { StandbyError } from '../core/errors.ts';
import { agentUrl, callAgent, endpointOptions, type EndpointArgs } from './support/agent-endpoint.ts';
import { callProxy, proxyEndpoint, proxyOptions, type ProxyArgs } from './support/proxy-endpoint.ts';
import { runCommand } from './support/run-command.ts';

interface Args extends EndpointArgs, ProxyArgs {
  agent?: boolean;
  json?: boolean;
}

export const statusCommand: CommandModule<object, Args> = {
  command: 'status',
  describe: 'what the proxy knows; with --agent, the local agent\'s sync state',
  builder: (y: Argv) =>
    proxyOptions(endpointOptions(y))
      .option('agent', { type: 'boolean', describe: 'ask the agent on this host' })
      .option('config', { type: 'string', describe: "the proxy's proxy.json (its address and admin token; default /etc/standby/proxy.json when there); with --agent, the agent's agent.json (its status endpoint)" })
      .option('json', { type: 'boolean', describe: 'print JSON for machines' }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      if (!argv.agent) return proxyStatus(argv);
      const s = (await callAgent(agentUrl(argv), '/status')) as SyncStatus;
      if (argv.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return 0;
      }
      const lines = [
        `host        ${s.hostId}${s.ready ? '' : ' (first full reconcile not done yet)'}`,
        `state       ${s.phase}: ${summarizeSync(s)}`,
        `watermark   ${s.watermark} of ${s.lastSeq} changes acknowledged`,
        `sent        ${s.filesSent} files, ${s.bytesSent} bytes in ${s.passes} passes (${s.fullPasses} full, ${s.failedPasses} failed)`,
        `pass time   last ${s.passDurationMs.last ?? '-'} ms, p50 ${s.passDurationMs.p50?.toFixed(0) ?? '-'} ms, p95 ${s.passDurationMs.p95?.toFixed(0) ?? '-'} ms`,
        `rsync       ${s.rsync.here ?? '?'} here, ${s.rsync.standby ?? '?'} on the standby${s.rsync.standby === null ? ' (not checked yet)' : ''}`,
      ];
      // an older agent's answer has neither
      if (s.destination !== undefined) lines.splice(1, 0, `pushing to  ${describeDestination(s.destination)}`);
      if (s.progress) lines.push(`full pass   ${describeProgress(s.progress)}`);
      // older agents' answers lack it
      if (s.settings) lines.push(`settings    ${s.settings.delayMs} ms quiet, ${s.settings.maxDelayMs} ms at most, excludes ${s.settings.exclude.length > 0 ? s.settings.exclude.join(' ') : '(defaults only)'}${s.settings.pushed ? ' (pushed by the proxy)' : ''}`);
      if (s.lastError) lines.push(`last error  ${s.lastError.message} (${(s.lastError.ageMs / 1000).toFixed(0)} s ago)`);
      if (s.held) lines.push(`HELD        ${s.held.deletions} deletions: ${s.held.reason}; apply with: standby sync --confirm-deletes`);
      process.stdout.write(lines.join('\n') + '\n');
      return 0;
    }),
};

interface ProxyView {
  phase: string;
  active: string;
  epoch: number;
  fencedEpoch: number;
  failovers: number;
  lastFenceError: string | null;
  rpoAtFailover: { watermark: number; unacknowledgedChanges: number | null } | null;
  backends: { side: string; id: string; url: string; probe: { ok: boolean; ageMs: number; error: string | null } | null }[];
  agents: { hostId: string; connected: boolean; fenced?: string | null; heartbeatAgeMs: number; sync: { watermark: number; lastSeq: number; oldestPendingAgeMs: number | null } | null }[];
  recovery?: RecoveryStatus;
}

/** The recovery in one line (with the restore's progress while it runs). */
function recoveryLine(r: RecoveryStatus | undefined): string {
  if (!r) return 'unknown (an older proxy)';
  if (!r.configured) return `not configured: ${r.why}`;
  if (r.step === null) return `configured (${r.provider}${r.autoRecovery ? ', automatic' : ', started by hand: POST /_standby/api/v1/recovery'}); none ran`;
  const gpu = r.newGpu ? `, new GPU ${r.newGpu.id} (${r.newGpu.ssh})` : '';
  const p = r.restore;
  const restore = p ? `; restore ${p.files}${p.totalFiles !== null ? `/${p.totalFiles}` : ''} files, ${(p.bytes / 1e6).toFixed(1)} MB at ${(p.rateBps / 1e6).toFixed(1)} MB/s, ${p.pending} pending${p.ready ? ', level' : ''}` : '';
  return `${r.running ? 'running' : 'stopped'}: epoch ${r.epoch}, try ${r.attempt}, step ${r.step}${gpu}${restore}${r.error ? `; last error: ${r.error}` : ''}`;
}

async function proxyStatus(argv: ProxyArgs & { json?: boolean }): Promise<number> {
  const { status, body } = await callProxy(proxyEndpoint(argv), 'status');
  if (status !== 200) throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `the proxy answered ${status}: ${JSON.stringify(body)}`);
  if (argv.json) {
    process.stdout.write(JSON.stringify(body, null, 2) + '\n');
    return 0;
  }
  const s = body as ProxyView;
  const lines = [`phase       ${s.phase} (epoch ${s.epoch}, ${s.failovers} failovers)`, `serving     ${s.active}`];
  for (const b of s.backends) lines.push(`${b.side.padEnd(11)} ${b.id} ${b.url}: ${b.probe ? (b.probe.ok ? 'code-server answers' : `code-server down (${b.probe.error})`) : 'not probed yet'}`);
  for (const a of s.agents) {
    const sync = a.sync ? `, watermark ${a.sync.watermark} of ${a.sync.lastSeq}${a.sync.oldestPendingAgeMs !== null ? `, oldest pending ${a.sync.oldestPendingAgeMs} ms` : ''}` : '';
    const fenced = a.fenced ? ` (fenced for good: ${a.fenced.split(':')[0]}; what it never synced goes to the standby's conflicts folder when a recovery retires it)` : '';
    lines.push(`agent       ${a.hostId}: ${a.connected ? 'connected' : 'not connected'}${fenced}, last heartbeat ${(a.heartbeatAgeMs / 1000).toFixed(1)} s ago${sync}`);
  }
  if (s.rpoAtFailover) lines.push(`at failover watermark ${s.rpoAtFailover.watermark}, ${s.rpoAtFailover.unacknowledgedChanges ?? '?'} changes not acknowledged (RPO)`);
  if (s.lastFenceError) lines.push(`FENCE       ${s.lastFenceError}`);
  lines.push(`recovery    ${recoveryLine(s.recovery)}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
