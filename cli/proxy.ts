// `standby proxy --config proxy.json`: run the failover proxy.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { loadSettings } from '../config/file.ts';
import { createLogger } from '../core/log.ts';
import { proxyConfigSchema } from '../config/proxy.ts';
import { SdNotify } from '../systemd/notify.ts';
import { overridesFrom } from './support/config-flags.ts';
import { runCommand } from './support/run-command.ts';
import { supervise } from '../systemd/supervise.ts';

interface Args {
  config?: string;
}

export const proxyCommand: CommandModule<object, Args> = {
  command: 'proxy',
  describe: "run the failover proxy: the developer's one URL, routed to the GPU or the standby",
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: 'proxy settings (JSON); flags like --listen.port 8443 override it' })
      .example('$0 proxy --config /etc/standby/proxy.json', '') as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const config = loadSettings(proxyConfigSchema, argv.config, overridesFrom(argv));
      const log = createLogger(config.logLevel);
      const notify = SdNotify.fromEnv(log);
      const { startProxy } = await import('../proxy/daemon.ts'); // loaded by this command only: every other command starts faster
      const proxy = await startProxy(config, log);
      const status = () => {
        const s = proxy.store.state;
        return `${s.active === 'primary' ? config.primary.id : config.standby.id} serves; phase ${s.phase}, epoch ${s.epoch}`;
      };
      // SIGHUP: proxy.json's admin tokens read again (the rest needs a restart); the former adminToken stays valid for auth.rotationGraceMs
      const reload = () => {
        try {
          const fresh = loadSettings(proxyConfigSchema, argv.config, overridesFrom(argv));
          proxy.reloadAdminTokens(fresh);
        } catch (err) {
          log.error({ err: (err as Error).message }, 'SIGHUP: proxy.json not reloaded (the admin tokens in force stay)');
        }
      };
      process.on('SIGHUP', reload);
      // listening and state loaded: ready; every transition of the state machine updates STATUS at once (supervise() refreshes it every 5 s)
      notify?.ready(status());
      const unlisten = notify ? proxy.failover.onTransition(() => notify.status(status())) : undefined;
      await supervise({
        notify,
        log,
        status,
        // the state machine's loop runs every 25 ms: silence for a second means it is stuck
        alive: () => performance.now() - proxy.failover.lastEvaluatedAt < 1_000,
        stuck: 'failover loop stuck: withholding the watchdog so systemd restarts the proxy',
        async stop(signal) {
          log.info({ signal }, 'stopping the proxy');
          unlisten?.();
          await proxy.close().catch((err: unknown) => log.error({ err }, 'error while stopping'));
        },
      });
      return 0;
    }),
};
