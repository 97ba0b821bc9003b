// Where the systems under test send to: the sshd fixture, reached either on its
// own port or through a relay port in front of it. The fixture's known_hosts names
// `[127.0.0.1]:<sshd port>`; a relay port gets its own known_hosts line with the
// same host key, so host key checking stays strict.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSshd, type Sshd } from '../test/fixtures/sshd.ts';
import { removeOnInterrupt } from './scratch.ts';

/**
 * The standby's sshd for a benchmark: the test fixture, with the sessions' HOME set to an
 * empty folder. Every rsync runs `rsync --server` through the user's shell, and root's
 * shell start-up files on a developer machine (pyenv init here: about 0.1 s per session,
 * and a 60 s stall behind a stale lock once) would otherwise weigh on every pass of every
 * system; a standby's account has no such files.
 */
export async function startBenchSshd(tmp: string): Promise<Sshd> {
  const home = join(tmp, 'standby-home');
  mkdirSync(home, { recursive: true });
  const sshd = await startSshd({ config: [`SetEnv HOME=${home}`] });
  removeOnInterrupt(sshd.dir);
  return sshd;
}

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  identityFile: string;
  /** `-o` options: known hosts, strict checking, log level */
  sshOptions: string[];
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
