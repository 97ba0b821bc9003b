// `standby demo`: a live sync demo on this machine with real processes: a
// standby behind a real sshd on loopback, the agent, files written and shown
// arriving with their lag, then a checksum verify. --keep leaves it running.
// DESIGN.md's whole story (the proxy, a GPU killed, failover, recovery) needs
// recovery, which is not built yet.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { agentConfigSchema } from '../config/agent.ts';
import { startAgent } from '../agent/daemon.ts';
import { verify } from '../agent/verify.ts';
import { validateSettings } from '../config/file.ts';
import { createLogger } from '../core/log.ts';
import { startSshd } from '../proxy/provision/loopback-sshd.ts';
import { runCommand } from './support/run-command.ts';

interface Args {
  keep?: boolean;
}

function digest(file: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}

/** Polls until `file` on the standby has the expected digest (or is gone, for undefined); returns the lag in ms. */
async function arrival(file: string, want: string | undefined, since: number, timeoutMs = 10_000): Promise<number> {
  while (performance.now() - since < timeoutMs) {
    if (digest(file) === want) return performance.now() - since;
    await sleep(5);
  }
  throw new Error(`${file} did not reach the standby within ${timeoutMs} ms`);
}

export const demoCommand: CommandModule<object, Args> = {
  command: 'demo',
  describe: 'a live sync demo on this machine: standby over loopback ssh, the agent, files arriving with their lag',
  builder: (y: Argv) => y.option('keep', { type: 'boolean', describe: 'leave it running and print where things are' }) as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const out = (line: string) => process.stdout.write(line + '\n');
      const top = mkdtempSync(join(tmpdir(), 'standby-demo-'));
      const gpu = join(top, 'gpu-workspace');
      const cpu = join(top, 'standby-workspace');
      mkdirSync(gpu);
      out(`standby demo: GPU workspace ${gpu}`);
      out(`              standby copy  ${cpu} (over ssh to a real sshd on loopback)`);
      const sshd = await startSshd();
      const config = validateSettings(agentConfigSchema, {
        hostId: 'demo-gpu',
        workspace: gpu,
        standby: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, path: cpu, sshOptions: sshd.sshOptions },
        status: { port: 0 },
        logLevel: 'warn',
      }, 'demo');
      const agent = await startAgent(config, createLogger('warn', 'standby-agent'));
      const cleanup = async () => {
        await agent.close();
        await sshd.close();
        rmSync(top, { recursive: true, force: true });
      };
      try {
        const t0 = performance.now();
        await agent.engine.whenReady();
        out(`agent ready (watches set, first full reconcile done) in ${(performance.now() - t0).toFixed(0)} ms\n`);
        const lags: number[] = [];
        const show = async (label: string, rel: string, act: () => void) => {
          const since = performance.now();
          act();
          const lag = await arrival(join(cpu, rel), digest(join(gpu, rel)), since);
          lags.push(lag);
          out(`  ${label.padEnd(46)} on the standby after ${lag.toFixed(0).padStart(5)} ms`);
        };
        out('writing files on the GPU (default batching: quiet 250 ms, at most 1 s):');
        for (let i = 1; i <= 8; i++) {
          const name = `notebooks/cell-${i}.py`;
          await show(`write ${name}`, name, () => {
            mkdirSync(join(gpu, 'notebooks'), { recursive: true });
            writeFileSync(join(gpu, name), `print(${i})\n`.repeat(i * 10));
          });
        }
        await show('rewrite cell-1.py, same size, same second', 'notebooks/cell-1.py', () => writeFileSync(join(gpu, 'notebooks/cell-1.py'), 'print(9)\n'.repeat(10)));
        await show('write "results 2026/ünïcode name.txt"', 'results 2026/ünïcode name.txt', () => {
          mkdirSync(join(gpu, 'results 2026'), { recursive: true });
          writeFileSync(join(gpu, 'results 2026/ünïcode name.txt'), 'ok\n');
        });
        await show('write a 32 MB checkpoint', 'model.ckpt', () => writeFileSync(join(gpu, 'model.ckpt'), Buffer.alloc(32 * 1024 * 1024, 7)));
        await show('rename model.ckpt -> model-final.ckpt', 'model-final.ckpt', () => renameSync(join(gpu, 'model.ckpt'), join(gpu, 'model-final.ckpt')));
        await show('delete notebooks/cell-2.py', 'notebooks/cell-2.py', () => rmSync(join(gpu, 'notebooks/cell-2.py')));
        const sorted = [...lags].sort((a, b) => a - b);
        out(`\nlag: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms, max ${sorted[sorted.length - 1]!.toFixed(0)} ms over ${lags.length} changes`);
        const s = agent.engine.status();
        out(`agent: watermark ${s.watermark}/${s.lastSeq}, ${s.passes} passes, ${s.filesSent} files and ${s.bytesSent} bytes sent`);
        const diffs = await verify(config);
        out(diffs.length === 0 ? 'standby verify: checksums match, nothing differs' : `standby verify: ${diffs.length} difference(s): ${JSON.stringify(diffs.slice(0, 5))}`);
        if (argv.keep) {
          out(`\n--keep: running. Write into ${gpu} and watch ${cpu}; status: http://127.0.0.1:${agent.status.port}/status. Ctrl-C stops.`);
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
        }
        return diffs.length === 0 ? 0 : 1;
      } finally {
        await cleanup();
      }
    }),
};
