// `standby verify`: prove the standby holds what this host holds (checksums); list every difference.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { agentConfigSchema } from '../agent/config.ts';
import { verify } from '../agent/verify.ts';
import { loadSettings } from '../config-file.ts';
import { overridesFrom } from './config-flags.ts';
import { runCommand } from './run-command.ts';

interface Args {
  config?: string;
  json?: boolean;
}

export const verifyCommand: CommandModule<object, Args> = {
  command: 'verify',
  describe: 'compare the workspace and the standby copy by checksum; exit 0 only when they match',
  builder: (y: Argv) =>
    y.option('config', { type: 'string', describe: 'the agent settings file' }).option('json', { type: 'boolean', describe: 'print JSON' }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const config = loadSettings(agentConfigSchema, argv.config, overridesFrom(argv, ['json']));
      const diffs = await verify(config);
      if (argv.json) process.stdout.write(JSON.stringify({ match: diffs.length === 0, differences: diffs }, null, 2) + '\n');
      else if (diffs.length === 0) process.stdout.write('standby matches: no differences\n');
      else {
        for (const d of diffs) process.stdout.write(`${d.kind.padEnd(18)} ${d.root}/${d.path}\n`);
        process.stdout.write(`${diffs.length} difference(s)\n`);
      }
      return diffs.length === 0 ? 0 : 1;
    }),
};
