// `standby verify`: prove the standby holds what this host holds (checksums); list every difference.
import { existsSync } from 'node:fs';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { agentConfigSchema } from '../agent/config.ts';
import { verify } from '../agent/verify.ts';
import { loadSettings } from '../config-file.ts';
import { StandbyError } from '../errors.ts';
import { configFile, layoutOf } from '../installer/layout.ts';
import { overridesFrom } from './config-flags.ts';
import { runCommand } from './run-command.ts';

/** Where `standby install agent` writes the agent's settings: read when --config is not given. */
const INSTALLED_AGENT_CONFIG = configFile(layoutOf('/'), 'agent')!;

/** --config, else the installed agent.json; flags alone only when some are given. */
export function verifyConfigFile(given: string | undefined, overrides: Record<string, unknown>, installed = INSTALLED_AGENT_CONFIG): string | undefined {
  if (given) return given;
  if (existsSync(installed)) return installed;
  if (Object.keys(overrides).length > 0) return undefined;
  throw new StandbyError('STANDBY_ERR_CONFIG_UNREADABLE', `no agent settings: ${installed} does not exist (standby install agent writes it). Pass the agent's settings file with --config FILE`, { file: installed });
}

interface Args {
  config?: string;
  json?: boolean;
}

export const verifyCommand: CommandModule<object, Args> = {
  command: 'verify',
  describe: 'compare the workspace and the standby copy by checksum; exit 0 only when they match',
  builder: (y: Argv) =>
    y.option('config', { type: 'string', describe: `the agent settings file (default ${INSTALLED_AGENT_CONFIG}, where standby install agent writes it)` }).option('json', { type: 'boolean', describe: 'print JSON' }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const overrides = overridesFrom(argv, ['json']);
      const config = loadSettings(agentConfigSchema, verifyConfigFile(argv.config, overrides), overrides);
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
