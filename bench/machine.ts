// The machine a benchmark ran on, so figures from two runs can be compared
// knowing what they came from.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';

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
