// `standby agent --config agent.json`: run the sync agent on a GPU host.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { loadSettings } from '../config/file.ts';
import { agentConfigSchema } from '../config/agent.ts';
import { startAgent } from '../agent/daemon.ts';
import { summarizeSync } from '../protocol/agent-status.ts';
import { SdNotify } from '../systemd/notify.ts';
import { createLogger } from '../core/log.ts';
import { overridesFrom } from './support/config-flags.ts';
import { runCommand } from './support/run-command.ts';
import { supervise } from '../systemd/supervise.ts';

interface Args {
  config?: string;
}

export const agentCommand: CommandModule<object, Args> = {
  command: 'agent',
  describe: 'run the agent on a GPU host: mirror the workspace to the standby',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: 'agent settings (JSON); flags like --sync.delayMs 500 override it' })
      .example('$0 agent --config /etc/standby/agent.json', '')
      .example('$0 agent --config agent.json --sync.delayMs 1000', '') as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const config = loadSettings(agentConfigSchema, argv.config, overridesFrom(argv));
      const log = createLogger(config.logLevel);
      const notify = SdNotify.fromEnv(log);
      const agent = await startAgent(config, log);
      // systemd: READY once the first full reconcile landed (or the proxy said this host is not
      // primary: then there is nothing to reconcile yet); STATUS every few seconds; the watchdog
      // pinged while the sync loop does its work.
      const status = () => summarizeSync(agent.engine.status());
      const readyCheck = notify ? setInterval(() => {
        const s = agent.engine.status();
        if (s.ready || agent.heartbeat?.role === 'fenced') {
          clearInterval(readyCheck);
          notify.ready(s.ready ? summarizeSync(s) : 'not primary: waiting for the proxy to grant it');
        }
      }, 100) : undefined;
      await supervise({
        notify,
        log,
        status,
        alive: () => agent.engine.alive(),
        stuck: 'sync loop stuck (rsync moved no data for twice the I/O timeout): withholding the watchdog so systemd restarts the agent',
        async stop(signal) {
          clearInterval(readyCheck);
          if (signal === 'SIGTERM' && config.notices.stopSignal) {
            // a container runtime's stop: the GPU goes away; hand over before exiting
            const fenced = await agent.preempted('stop-signal', config.notices.stopGraceMs);
            log.info({ fenced }, fenced ? 'handed over: the standby has every change' : 'no planned failover in time: stopping anyway');
          }
          log.info({ signal }, 'stopping: cancelling the pass in flight, closing ssh');
          await agent.close().catch((err: unknown) => log.error({ err }, 'error while stopping'));
        },
      });
      return 0;
    }),
};
