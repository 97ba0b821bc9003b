// The machine a benchmark ran on, so figures from two runs can be compared
// knowing what they came from.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Machine {
  cpu: string;
  cores: number;
  memory: string;
  kernel: string;
  rsync: string;
  lsyncd: string;
  openssh: string;
  node: string;
}

function firstLine(file: string, args: string[]): string {
  try {
    const out = execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5_000 });
    return out.trim().split('\n')[0] ?? 'unknown';
  } catch (err) {
    const e = err as { stderr?: string };
    const line = e.stderr?.trim().split('\n')[0];
    return line || 'not installed';
  }
}

function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return match?.[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function describeMachine(): Machine {
  // `ssh -V` writes its version to stderr.
  const openssh = firstLine('sh', ['-c', 'ssh -V 2>&1']);
  return {
    cpu: cpuModel(),
    cores: availableParallelism(),
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: `Linux ${release()}`,
    rsync: firstLine('rsync', ['--version']).replace(/\s+/g, ' '),
    lsyncd: firstLine('lsyncd', ['--version']).replace(/^Version:\s*/, 'lsyncd '),
    openssh: openssh.split(',')[0] ?? openssh,
    node: `Node ${process.version}`,
  };
}

export function machineLines(m: Machine): string[] {
  return [
    `cpu: ${m.cpu}, ${m.cores} cores`,
    `memory: ${m.memory}`,
    `kernel: ${m.kernel}`,
    `tools: ${m.rsync}; ${m.lsyncd}; ${m.openssh}; ${m.node}`,
  ];
}

function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] ?? 0; // idle only: iowait counts as busy, since another process's disk traffic slows ours
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** The fraction of all cores busy (or waiting for the disk) over `ms`, from /proc/stat. */
async function busyFraction(ms = 2_000): Promise<number> {
  const a = cpuTimes();
  await sleep(ms);
  const b = cpuTimes();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

/**
 * Waits (at most `maxMs`) until other work on the machine uses under `threshold` of its
 * CPU, so figures are not taken while a test suite runs beside them. Returns what it saw.
 */
export async function waitForQuiet(maxMs: number, threshold = 0.15): Promise<string> {
  const deadline = performance.now() + maxMs;
  let busy = await busyFraction();
  while (busy >= threshold && performance.now() < deadline) {
    process.stderr.write(`bench: the machine is ${(busy * 100).toFixed(0)} % busy (load ${loadavg()[0]!.toFixed(2)}); waiting for it to calm down\n`);
    await sleep(10_000);
    busy = await busyFraction();
  }
  const state = `${(busy * 100).toFixed(0)} % busy over 2 s before the case started, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`;
  return busy >= threshold ? `${state} (NOT QUIET: other work was running; figures may be inflated)` : state;
}
