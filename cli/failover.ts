// `standby failover`: ask the proxy to fail over to the standby now (planned:
// freeze, final sync, fence, route), and wait until it has. With --abort: call
// off a failover whose fence has not completed, while the GPU still answers.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { StandbyError } from '../core/errors.ts';
import { callProxy, problemOf, proxyEndpoint, proxyOptions, type ProxyArgs } from './support/proxy-endpoint.ts';
import { runCommand } from './support/run-command.ts';

interface Args extends ProxyArgs {
  abort?: boolean;
  wait?: number;
  json?: boolean;
}

export const failoverCommand: CommandModule<object, Args> = {
  command: 'failover',
  describe: 'fail over to the standby now, through the proxy (freeze, final sync, fence, route)',
  builder: (y: Argv) =>
    proxyOptions(y)
      .option('abort', { type: 'boolean', describe: 'call off a failover whose fence has not completed (the standby unreachable) while the GPU still answers: the GPU serves again' })
      .option('wait', { type: 'number', default: 60, describe: 'seconds to wait for the standby to serve (0: do not wait)' })
      .option('json', { type: 'boolean', describe: 'print the final status as JSON' }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const endpoint = proxyEndpoint(argv);
      if (argv.abort) {
        // the proxy waits for a fence attempt in flight (up to standby.ssh.timeoutMs): it may still succeed
        const a = await callProxy(endpoint, 'failover/abort', 'POST', undefined, 120_000);
        if (a.status === 409) throw new StandbyError('STANDBY_ERR_CONFLICT', problemOf(a.body, a.status, 'the proxy refused the abort'));
        if (a.status !== 200) throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `the proxy answered ${a.status}: ${JSON.stringify(a.body)}`);
        if (argv.json) process.stdout.write(JSON.stringify(a.body, null, 2) + '\n');
        else process.stdout.write(`${(a.body as { message: string }).message}\n`);
        return 0;
      }
      const started = performance.now();
      const r = await callProxy(endpoint, 'failover', 'POST');
      if (r.status === 409) throw new StandbyError('STANDBY_ERR_CONFLICT', problemOf(r.body, r.status, 'the proxy refused the failover'));
      if (r.status !== 202) throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `the proxy answered ${r.status}: ${JSON.stringify(r.body)}`);
      process.stderr.write('failing over: freeze, final sync, fence, route...\n');
      const deadline = started + (argv.wait ?? 60) * 1000;
      let last: { phase?: string; active?: string; lastFenceError?: string | null } = {};
      while (performance.now() < deadline) {
        last = (await callProxy(endpoint, 'status')).body as typeof last;
        if (last.active === 'standby' && (last.phase === 'failed_over' || last.phase === 'recovering')) {
          if (argv.json) process.stdout.write(JSON.stringify(last, null, 2) + '\n');
          else process.stdout.write(`the standby serves (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
          return 0;
        }
        await new Promise((res) => setTimeout(res, 200));
      }
      if ((argv.wait ?? 60) === 0) return 0;
      throw new StandbyError('STANDBY_ERR_CONFLICT', `the proxy has not finished failing over after ${argv.wait} s (phase ${last.phase ?? '?'}${last.lastFenceError ? `; fence: ${last.lastFenceError}` : ''})`);
    }),
};
