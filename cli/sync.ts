// `standby sync`: act on the running agent's sync: confirm held deletions, or
// ask for a full reconcile now.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { ConfirmDeletesAnswer } from '../protocol/agent-status.ts';
import { agentUrl, callAgent, endpointOptions, type EndpointArgs } from './support/agent-endpoint.ts';
import { runCommand } from './support/run-command.ts';

interface Args extends EndpointArgs {
  confirmDeletes?: boolean;
  full?: boolean;
}

export const syncCommand: CommandModule<object, Args> = {
  command: 'sync',
  describe: 'act on the running agent: --confirm-deletes applies deletions the guard holds, --full reconciles now',
  builder: (y: Argv) =>
    endpointOptions(y)
      .option('confirm-deletes', { type: 'boolean', describe: 'apply the deletions the mass-deletion guard is holding' })
      .option('full', { type: 'boolean', describe: 'run a full reconcile now' })
      .check((a) => (a['confirm-deletes'] || a.full ? true : 'say what to do: --confirm-deletes or --full')) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const base = agentUrl(argv);
      if (argv.confirmDeletes) {
        const { deletions } = (await callAgent(base, '/confirm-deletes', 'POST')) as ConfirmDeletesAnswer;
        process.stdout.write(`confirmed: the agent applies the held deletions (${deletions}) in a full reconcile now\n`);
      }
      if (argv.full) {
        await callAgent(base, '/resync', 'POST');
        process.stdout.write('full reconcile requested\n');
      }
      return 0;
    }),
};
