// The public half of the key this agent writes to a granted target with, as
// the proxy authorizes it on a new GPU's receiver: the first heartbeat of each
// connection carries it. Read from IDENTITY.pub, else derived with
// `ssh-keygen -y`; without a configured key, ssh's own default key's.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../core/log.ts';
import { writeIdentityOf, type AgentConfig } from '../config/agent.ts';

/** ssh's default identities, in the order it offers them (ssh_config(5) IdentityFile). */
const SSH_DEFAULTS = ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk'];

/** The first line of an OpenSSH public key file's text that looks like a key ("type base64 [comment]"). */
function keyLine(text: string): string | undefined {
  const line = text.split('\n').map((l) => l.trim()).find((l) => /^\S+ [A-Za-z0-9+/=]+( .*)?$/.test(l));
  return line === undefined || line.length > 16_384 ? undefined : line;
}

/** The public key line of one private key file, or undefined (the reason logged) when neither its .pub nor ssh-keygen -y gives one. */
export function publicKeyOf(identityFile: string, log: Logger): string | undefined {
  const pub = `${identityFile}.pub`;
  if (existsSync(pub)) {
    const line = keyLine(readFileSync(pub, 'utf8'));
    if (line) return line;
  }
  try {
    const out = execFileSync('ssh-keygen', ['-y', '-f', identityFile], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    const line = keyLine(out);
    if (line) return line;
  } catch (err) {
    log.warn({ identityFile, err: (err as Error).message }, `cannot read the public key of ${identityFile} (no ${pub}, and ssh-keygen -y failed): heartbeats carry no publicKey, so the proxy cannot authorize this agent on a new GPU by itself`);
    return undefined;
  }
  log.warn({ identityFile }, `ssh-keygen -y -f ${identityFile} printed no public key: heartbeats carry no publicKey`);
  return undefined;
}

/** The public key line of the key the agent writes to targets with (identityFile, standby.identityFile, or ssh's default), or undefined. */
export function writePublicKey(config: AgentConfig, log: Logger): string | undefined {
  const identity = writeIdentityOf(config);
  if (identity) return publicKeyOf(identity, log);
  for (const name of SSH_DEFAULTS) {
    const file = join(homedir(), '.ssh', name);
    if (existsSync(file)) return publicKeyOf(file, log);
  }
  log.info('no identityFile configured and no default ssh key in ~/.ssh: heartbeats carry no publicKey');
  return undefined;
}
