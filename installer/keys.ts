// The agent's ssh key: made once with ssh-keygen, never regenerated.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { StandbyError } from '../core/errors.ts';

export interface AgentKey {
  /** the private key file */
  identityFile: string;
  /** the public key line, "ssh-ed25519 AAAA... comment" */
  publicKey: string;
  /** false when the key was there already */
  created: boolean;
}

/** Makes keyDir (0700) and an ed25519 key in it unless one is there: the agent's (id_ed25519), or another role's name and comment. */
/** The proxy's fencing key file in keyDir: apart from the agent's, so a proxy and an agent on one machine (one --root) never share a key. */
export const FENCE_KEY_FILE = 'fence_ed25519';

/** The proxy's fencing key, labelled as such (`standby-proxy-fence@HOST`). */
export function ensureFenceKey(keyDir: string, file = FENCE_KEY_FILE): AgentKey {
  return ensureAgentKey(keyDir, { file, comment: `standby-proxy-fence@${hostname()}` });
}

export function ensureAgentKey(keyDir: string, o: { file?: string; comment?: string } = {}): AgentKey {
  mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  chmodSync(keyDir, 0o700);
  const identityFile = join(keyDir, o.file ?? 'id_ed25519');
  let created = false;
  if (!existsSync(identityFile)) {
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', o.comment ?? `standby-agent@${hostname()}`, '-f', identityFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
      if (e.code === 'ENOENT') throw new StandbyError('STANDBY_ERR_MISSING_BINARY', 'ssh-keygen not found: install openssh-client (apt-get install openssh-client), then run the install again', { binary: 'ssh-keygen' });
      throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', `ssh-keygen could not make ${identityFile}: ${e.stderr?.toString().trim() || e.message}`, { identityFile }, { cause: err });
    }
    created = true;
  }
  const pub = `${identityFile}.pub`;
  if (!existsSync(pub)) {
    // the private key is there but its .pub went missing: derive it and put it back (the key stays the same;
    // the proxy role chowns the .pub, and the next run need not derive it again)
    const derived = execFileSync('ssh-keygen', ['-y', '-f', identityFile], { encoding: 'utf8' }).trim();
    writeFileSync(pub, derived + '\n', { mode: 0o644 });
    chmodSync(pub, 0o644); // whatever the umask
    return { identityFile, publicKey: derived, created };
  }
  return { identityFile, publicKey: readFileSync(pub, 'utf8').trim(), created };
}
