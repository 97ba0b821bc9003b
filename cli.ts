#!/usr/bin/env node
// The `standby` CLI: lists the subcommands, nothing else. A command line that
// names one loads that command's module alone: the agent started in 0.67-0.82 s
// to "watching" with every command loaded, 0.29-0.34 s alone with bin/standby's
// compile cache, and it starts on every boot of a GPU host, the recovery's
// "agent ready" among them. With no command, an unknown one or a top-level
// --help, all are loaded.
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';

/** each command has its own argument type: yargs checks them where the commands are written */
type Loader = () => Promise<CommandModule<object, any>[]>;

/** The contract's commands that later issues build: one module says so for all of them. */
const planned: Loader = async () => (await import('./cli/support/planned.ts')).plannedCommands;

/** Every command, by the name that starts its command line, in --help's order. */
const COMMANDS: Record<string, Loader> = {
  demo: async () => [(await import('./cli/demo.ts')).demoCommand],
  agent: async () => [(await import('./cli/agent.ts')).agentCommand],
  proxy: async () => [(await import('./cli/proxy.ts')).proxyCommand],
  failover: async () => [(await import('./cli/failover.ts')).failoverCommand],
  drill: async () => [(await import('./cli/drill.ts')).drillCommand],
  'switch-back': async () => [(await import('./cli/switch-back.ts')).switchBackCommand],
  status: async () => [(await import('./cli/status.ts')).statusCommand],
  report: async () => [(await import('./cli/report.ts')).reportCommand],
  settings: async () => [(await import('./cli/settings.ts')).settingsCommand],
  hosts: async () => [(await import('./cli/hosts.ts')).hostsCommand],
  sync: async () => [(await import('./cli/sync.ts')).syncCommand],
  verify: async () => [(await import('./cli/verify.ts')).verifyCommand],
  receive: async () => [(await import('./cli/receive.ts')).receiveCommand],
  install: async () => [(await import('./cli/install.ts')).installCommand],
  uninstall: async () => [(await import('./cli/install.ts')).uninstallCommand],
  snapshots: planned,
  restore: planned,
};

const argv = hideBin(process.argv);
const named = argv[0] !== undefined && Object.hasOwn(COMMANDS, argv[0]) ? COMMANDS[argv[0]] : undefined;
const modules = (await Promise.all((named ? [named] : [...new Set(Object.values(COMMANDS))]).map((load) => load()))).flat();

let cli = yargs(argv)
  .scriptName('standby')
  .usage('$0 <command> [options]\n\nKeeps a GPU workspace alive when a spot GPU dies.');
for (const m of modules) cli = cli.command(m);
await cli
  .demandCommand(1, 'name a command; see --help')
  .recommendCommands()
  .strictCommands()
  .fail((msg, err, y) => {
    // usage mistakes (unknown command, failed .check()) exit 2 with the reason; errors from handlers are theirs
    if (err && !msg) throw err;
    y.showHelp();
    process.stderr.write(`\nstandby: ${msg ?? err?.message}\n`);
    process.exit(2);
  })
  .help()
  .version()
  .parseAsync();
