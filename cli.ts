#!/usr/bin/env node
// The `standby` CLI: lists the subcommands, nothing else.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { agentCommand } from './cli/agent.ts';
import { demoCommand } from './cli/demo.ts';
import { failoverCommand } from './cli/failover.ts';
import { drillCommand } from './cli/drill.ts';
import { switchBackCommand } from './cli/switch-back.ts';
import { hostsCommand } from './cli/hosts.ts';
import { installCommand, uninstallCommand } from './cli/install.ts';
import { plannedCommands } from './cli/support/planned.ts';
import { receiveCommand } from './cli/receive.ts';
import { reportCommand } from './cli/report.ts';
import { proxyCommand } from './cli/proxy.ts';
import { settingsCommand } from './cli/settings.ts';
import { statusCommand } from './cli/status.ts';
import { syncCommand } from './cli/sync.ts';
import { verifyCommand } from './cli/verify.ts';

await yargs(hideBin(process.argv))
  .scriptName('standby')
  .usage('$0 <command> [options]\n\nKeeps a GPU workspace alive when a spot GPU dies.')
  .command(demoCommand)
  .command(agentCommand)
  .command(proxyCommand)
  .command(failoverCommand)
  .command(drillCommand)
  .command(switchBackCommand)
  .command(statusCommand)
  .command(reportCommand)
  .command(settingsCommand)
  .command(hostsCommand)
  .command(syncCommand)
  .command(verifyCommand)
  .command(receiveCommand)
  .command(installCommand)
  .command(uninstallCommand)
  .command(plannedCommands)
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
