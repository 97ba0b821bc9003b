// `standby status`: what the proxy knows (proxy: a later issue), or with
// --agent what the local agent knows about its sync.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { summarize } from '../agent/daemon.ts';
import type { SyncStatus } from '../agent/sync-engine.ts';
import { StandbyError } from '../errors.ts';
import { agentUrl, callAgent, endpointOptions, type EndpointArgs } from './agent-endpoint.ts';
import { runCommand } from './run-command.ts';

interface Args extends EndpointArgs {
  agent?: boolean;
  json?: boolean;
}

export const statusCommand: CommandModule<object, Args> = {
  command: 'status',
  describe: 'what the proxy knows; with --agent, the local agent\'s sync state',
  builder: (y: Argv) =>
    endpointOptions(y)
      .option('agent', { type: 'boolean', describe: 'ask the agent on this host' })
      .option('json', { type: 'boolean', describe: 'print JSON for machines' }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      if (!argv.agent) {
        throw new StandbyError('STANDBY_ERR_NOT_BUILT', 'standby status needs the proxy, which is not built yet (issue #3); use `standby status --agent` for this host\'s sync state');
      }
      const s = (await callAgent(agentUrl(argv), '/status')) as SyncStatus;
      if (argv.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return 0;
      }
      const lines = [
        `host        ${s.hostId}${s.ready ? '' : ' (first full reconcile not done yet)'}`,
        `state       ${s.phase}: ${summarize(s)}`,
        `watermark   ${s.watermark} of ${s.lastSeq} changes acknowledged`,
        `sent        ${s.filesSent} files, ${s.bytesSent} bytes in ${s.passes} passes (${s.fullPasses} full, ${s.failedPasses} failed)`,
        `pass time   last ${s.passDurationMs.last ?? '-'} ms, p50 ${s.passDurationMs.p50?.toFixed(0) ?? '-'} ms, p95 ${s.passDurationMs.p95?.toFixed(0) ?? '-'} ms`,
      ];
      if (s.lastError) lines.push(`last error  ${s.lastError.message} (${(s.lastError.ageMs / 1000).toFixed(0)} s ago)`);
      if (s.held) lines.push(`HELD        ${s.held.deletions} deletions: ${s.held.reason}; apply with: standby sync --confirm-deletes`);
      process.stdout.write(lines.join('\n') + '\n');
      return 0;
    }),
};
