// Where the systems under test send to: the sshd fixture, reached either on its
// own port or through a relay port in front of it. The fixture's known_hosts names
// `[127.0.0.1]:<sshd port>`; a relay port gets its own known_hosts line with the
// same host key, so host key checking stays strict.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SshTarget as AgentTarget } from '../test/fixtures/agent-process.ts';
import { startSshd, type Sshd } from '../proxy/provision/loopback-sshd.ts';
import { removeOnInterrupt } from './scratch.ts';

/** The standby's sshd for a benchmark: the test fixture (whose sessions get an empty HOME), removed on interrupt. */
export async function startBenchSshd(): Promise<Sshd> {
  const sshd = await startSshd();
  removeOnInterrupt(sshd.dir);
  return sshd;
}

/** The agent's target (`-o` options: known hosts, strict checking, log level) and its known_hosts file. */
export interface SshTarget extends AgentTarget {
  knownHostsFile: string;
}

/** The sshd reached through `port` (its own, or a relay's); writes a known_hosts file into `dir`. */
export function sshTarget(sshd: Sshd, port: number, dir: string): SshTarget {
  const knownHostsFile = join(dir, `known_hosts_${port}`);
  const line = readFileSync(join(sshd.dir, 'known_hosts'), 'utf8').trim().split('\n')[0] ?? '';
  const key = line.split(' ').slice(1).join(' ');
  writeFileSync(knownHostsFile, `[${sshd.host}]:${port} ${key}\n`);
  return {
    host: sshd.host,
    port,
    user: sshd.user,
    identityFile: sshd.identityFile,
    sshOptions: ['-o', `UserKnownHostsFile=${knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'LogLevel=ERROR'],
    knownHostsFile,
  };
}

/** The ssh command line rsync runs (`-e`): a fresh connection each time, as a one-shot rsync pays. */
export function rshCommand(t: SshTarget): string {
  return ['ssh', '-p', String(t.port), '-i', t.identityFile, ...t.sshOptions].join(' ');
}

export function remote(t: SshTarget, path: string): string {
  return `${t.user}@${t.host}:${path.endsWith('/') ? path : path + '/'}`;
}
