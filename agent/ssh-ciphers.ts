// Which cipher the agent's ssh asks for first. OpenSSH offers
// chacha20-poly1305 first; on a CPU with AES instructions AES-GCM moves the
// same bytes for about half the CPU (2 GB through ssh on loopback here:
// 8.7-9.9 s against 3.3-4.8 s), and much of a sync's CPU besides rsync's own
// is ssh's encryption on both ends (a 100,000-file tree to tmpfs: 5.4-5.6 s
// against 4.2-4.9 s, the client's 3.0 CPU-s against 2.2-2.6). A GPU host busy
// training keeps that CPU. The server still chooses among what it allows:
// every name of OpenSSH's default list stays offered, after the AES-GCM ones.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The order offered when this CPU has AES instructions: OpenSSH's default set (6.5 and later), AES-GCM first. */
export const AES_FIRST = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'] as const;

/** Whether /proc/cpuinfo's text lists AES instructions (x86 `flags`, Arm `Features`). */
export function cpuHasAes(cpuinfo: string): boolean {
  return /^(flags|Features)\s*:.*(^|\s)aes(\s|$)/m.test(cpuinfo);
}

/**
 * The value for `-o Ciphers=`, or undefined to leave ssh's own order: the CPU
 * has no AES instructions (then chacha20 is the faster one), or this ssh lacks
 * AES-GCM (built without OpenSSL). Only names `ssh -Q cipher` lists are given,
 * so no ssh refuses the option.
 */
export function cipherOrder(cpuinfo: string, supported: readonly string[]): string | undefined {
  if (!cpuHasAes(cpuinfo) || !supported.includes(AES_FIRST[0])) return undefined;
  return AES_FIRST.filter((c) => supported.includes(c)).join(',');
}

let probed: string[] | undefined;

/** `-o Ciphers=...` for this machine's CPU and ssh, probed once per process (none when either cannot be read). */
export function cipherArgs(): string[] {
  if (probed === undefined) {
    let cpuinfo = '';
    try {
      cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      // not Linux, or no /proc: ssh's own order
    }
    const q = cpuinfo === '' ? undefined : spawnSync('ssh', ['-Q', 'cipher'], { encoding: 'utf8', timeout: 5_000 });
    const order = q?.status === 0 ? cipherOrder(cpuinfo, q.stdout.split('\n').map((l) => l.trim())) : undefined;
    probed = order === undefined ? [] : ['-o', `Ciphers=${order}`];
  }
  return probed;
}
