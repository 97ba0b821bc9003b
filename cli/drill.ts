// `standby drill`: a rehearsal on the real thing, through the proxy: a
// planned failover to the standby (marked as a drill), a new GPU from the
// configured provider, the restore and the switch back, then this drill's
// line of the failover report. Needs a recovery section in proxy.json.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { StandbyError } from '../core/errors.ts';
import type { FailoverReport, RecoveryStatus } from '../protocol/admin-api.ts';
import { humanReport } from './report.ts';
import { callProxy, problemOf, proxyEndpoint, proxyOptions, type ProxyArgs } from './support/proxy-endpoint.ts';
import { runCommand } from './support/run-command.ts';

interface Args extends ProxyArgs {
  wait?: number;
  json?: boolean;
}

export const drillCommand: CommandModule<object, Args> = {
  command: 'drill',
  describe: 'a full failover-and-back rehearsal through the proxy: fail over, a new GPU, restore, switch back; measured and reported as a drill',
  builder: (y: Argv) =>
    proxyOptions(y)
      .option('wait', { type: 'number', default: 1800, describe: 'seconds to wait for the switch back to the new GPU' })
      .option('json', { type: 'boolean', describe: "print the drill's report entry as JSON" }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const endpoint = proxyEndpoint(argv);
      const started = performance.now();
      const r = await callProxy(endpoint, 'drill', 'POST');
      if (r.status === 409) throw new StandbyError('STANDBY_ERR_CONFLICT', problemOf(r.body, r.status, 'the proxy refused the drill'));
      if (r.status !== 202) throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `the proxy answered ${r.status}: ${JSON.stringify(r.body)}`);
      const epoch = (r.body as { epoch: number }).epoch;
      process.stderr.write('drill: failing over to the standby, then a new GPU, the restore and the switch back...\n');
      const deadline = started + (argv.wait ?? 1800) * 1000;
      let said = '';
      for (;;) {
        const rec = (await callProxy(endpoint, 'recovery')).body as RecoveryStatus;
        if (rec.configured && rec.epoch !== null && rec.epoch >= epoch) {
          const line = `  ${rec.step}${rec.newGpu ? ` (${rec.newGpu.id})` : ''}`;
          if (line !== said) process.stderr.write(`${line}\n`);
          said = line;
          if (rec.step === 'old-gpu') break;
          if (rec.step === 'gave-up') throw new StandbyError('STANDBY_ERR_CONFLICT', `the drill's recovery gave up: ${rec.error ?? 'no reason given'}; the standby serves (standby status)`);
        }
        if (performance.now() > deadline) throw new StandbyError('STANDBY_ERR_CONFLICT', `the drill has not switched back after ${argv.wait} s (last step ${said.trim() || 'none'}); it goes on: standby status`);
        await new Promise((res) => setTimeout(res, 500));
      }
      const report = (await callProxy(endpoint, 'failover/report?days=1')).body as FailoverReport;
      const mine = report.list.find((f) => f.epoch === epoch);
      if (argv.json) process.stdout.write(JSON.stringify(mine ?? null, null, 2) + '\n');
      else {
        process.stdout.write(`drill done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
        if (mine) process.stdout.write(humanReport({ ...report, list: [mine] }));
      }
      return 0;
    }),
};
