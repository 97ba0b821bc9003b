// `standby switch-back`: after a failover, move the URL back to the GPU by
// hand (until recovery does it): the proxy checks the GPU's agent is
// connected and heartbeating, its code-server answers, and its workspace is
// the standby's (its agent compares them; --restored: the admin's word when
// the comparison cannot run), then freezes the standby,
// logs a new epoch, fences the standby's receiver under it, grants the GPU
// primary and routes to it. This waits until the GPU serves.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { StandbyError } from '../core/errors.ts';
import { callProxy, problemOf, proxyEndpoint, proxyOptions, type ProxyArgs } from './support/proxy-endpoint.ts';
import { runCommand } from './support/run-command.ts';

interface Args extends ProxyArgs {
  restored?: boolean;
  wait?: number;
  json?: boolean;
}

export const switchBackCommand: CommandModule<object, Args> = {
  command: 'switch-back',
  describe: "move the URL back to the GPU after a failover, once its agent is connected and its workspace equals the standby's",
  builder: (y: Argv) =>
    proxyOptions(y)
      .option('restored', { type: 'boolean', describe: "you restored the GPU's workspace from the standby: counts only when its agent cannot compare them (differences always refuse)" })
      .option('wait', { type: 'number', default: 60, describe: 'seconds to wait for the GPU to serve (0: do not wait)' })
      .option('json', { type: 'boolean', describe: 'print the final status as JSON' }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const endpoint = proxyEndpoint(argv);
      const started = performance.now();
      // the proxy answers once the agent has compared its workspace with the standby's (up to 2 minutes)
      const r = await callProxy(endpoint, 'switch-back', 'POST', argv.restored ? { confirmRestored: true } : {}, 180_000);
      if (r.status === 409) throw new StandbyError('STANDBY_ERR_CONFLICT', problemOf(r.body, r.status, 'the proxy refused to switch back'));
      if (r.status !== 202) throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `the proxy answered ${r.status}: ${JSON.stringify(r.body)}`);
      process.stderr.write(`${(r.body as { message: string }).message}\n`);
      if ((argv.wait ?? 60) === 0) return 0;
      const deadline = started + (argv.wait ?? 60) * 1000;
      let last: { phase?: string; active?: string; lastFenceError?: string | null } = {};
      while (performance.now() < deadline) {
        last = (await callProxy(endpoint, 'status')).body as typeof last;
        if (last.active === 'primary' && last.phase === 'normal') {
          if (argv.json) process.stdout.write(JSON.stringify(last, null, 2) + '\n');
          else process.stdout.write(`the GPU serves again (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
          return 0;
        }
        await new Promise((res) => setTimeout(res, 200));
      }
      throw new StandbyError('STANDBY_ERR_CONFLICT', `the proxy has not finished switching back after ${argv.wait} s (phase ${last.phase ?? '?'}${last.lastFenceError ? `; fence: ${last.lastFenceError}` : ''})`);
    }),
};
