// Commands of the CLI contract (DESIGN.md) that later issues build. Each says
// so plainly and exits 2, so scripts can tell "not yet" from a failure.
import type { CommandModule } from 'yargs';

const PLANNED: ReadonlyArray<[command: string, describe: string, issue: number | undefined]> = [
  ['snapshots', 'list restic snapshots of the standby copy', undefined],
  ['restore', 'restore a snapshot beside the workspace', undefined],
];

export const plannedCommands: CommandModule[] = PLANNED.map(([command, describe, issue]) => ({
  command,
  describe: `${describe} (not built yet)`,
  builder: (y) => y.strict(false),
  handler: () => {
    const name = command.split(' ')[0];
    process.stderr.write(`standby ${name}: not built yet (${issue ? `planned in issue #${issue}` : 'planned in a later issue'}; see the README)\n`);
    process.exitCode = 2;
  },
}));
