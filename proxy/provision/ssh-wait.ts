// "SSH ready", the recovery's phase between provisioning and restore: polls
// the provider's get() until the host runs with an SSH address, then checks
// that an SSH server answers there, with ssh2: the key exchange only (no
// login is tried: the proxy holds no key for a new GPU; its agent enrolls
// itself), recording the host key it presented. Bounded by a timeout
// (recovery.sshWaitS, default 300 s) and an AbortSignal; a host that failed or
// is gone ends the wait at once rather than at the timeout.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'ssh2';
import { StandbyError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { knownHostsName } from '../known-hosts.ts';
import type { ProvisionedHost, SshAddress } from './provider.ts';

/** The host key an SSH server presented. */
export interface SshHostKey {
  /** e.g. "ssh-ed25519" */
  type: string;
  /** the key blob, base64, as known_hosts and authorized_keys hold it */
  base64: string;
  /** as `ssh-keygen -l` prints it: "SHA256:..." */
  fingerprint: string;
  /** a known_hosts line for the address it was seen at: "[host]:port type base64" (port 22: "host type base64") */
  knownHostsLine: string;
}

export interface SshReady {
  /** the host as get() last answered it: running, with its SSH address */
  host: ProvisionedHost;
  ssh: SshAddress;
  hostKey: SshHostKey;
  /** from the call to the handshake that answered, ms */
  waitedMs: number;
  /** get() calls made */
  polls: number;
}

export interface WaitForSshOptions {
  /** the wait between looks, ms (default 5000) */
  pollMs?: number;
  /** one SSH handshake, ms (default 10000; at most what is left of the timeout) */
  handshakeTimeoutMs?: number;
  log?: Logger;
}

/** What waitForSsh needs of a provider: a GpuProvider or a StandbyProvider. */
export interface HostReader {
  readonly name: string;
  get(id: string, signal?: AbortSignal): Promise<ProvisionedHost | undefined>;
}

/** The key's type from its wire-format blob (a uint32 length, then the name). */
function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const n = blob.readUInt32BE(0);
  const name = n > 0 && n < 64 && blob.length >= 4 + n ? blob.subarray(4, 4 + n).toString('latin1') : '';
  return /^[a-z0-9@._-]+$/i.test(name) ? name : 'unknown';
}

export function describeHostKey(blob: Buffer, host: string, port: number): SshHostKey {
  const type = keyType(blob);
  const base64 = blob.toString('base64');
  return {
    type,
    base64,
    fingerprint: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`,
    knownHostsLine: `${knownHostsName(host, port)} ${type} ${base64}`,
  };
}

/**
 * One SSH handshake with `address`: resolves with the host key once the key
 * exchange is done and the server offers authentication (which is then
 * declined: no login). Rejects with the reason (refused, no answer, not SSH)
 * when it does not get that far within `timeoutMs`. The connection is always closed.
 */
export function sshHandshake(address: Pick<SshAddress, 'host' | 'port'> & { user?: string }, timeoutMs: number, signal?: AbortSignal): Promise<SshHostKey> {
  return new Promise<SshHostKey>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const client = new Client();
    let key: Buffer | undefined;
    let settled = false;
    const finish = (err: unknown, result?: SshHostKey): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      client.destroy();
      if (err !== undefined) reject(err);
      else resolve(result!);
    };
    const onAbort = (): void => finish(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => finish(new Error(key ? `the SSH server sent its key but did not finish the handshake within ${timeoutMs} ms` : `no SSH handshake within ${timeoutMs} ms`)), timeoutMs);
    const done = (): void => (key ? finish(undefined, describeHostKey(key, address.host, address.port)) : finish(new Error('the SSH server presented no host key')));
    client.on('error', (err: Error & { level?: string }) => {
      // declining to authenticate comes only after the key exchange and the server's service accept: the handshake is done
      if (err.level === 'client-authentication') return done();
      finish(new Error(err.level === 'client-timeout' ? `no SSH handshake within ${timeoutMs} ms` : err.message));
    });
    client.on('ready', done); // a server that lets anyone in with no authentication at all: it answered
    client.on('close', () => finish(new Error('the connection closed before the SSH handshake ended')));
    try {
      client.connect({
        host: address.host,
        port: address.port,
        username: address.user ?? 'root',
        readyTimeout: timeoutMs,
        hostVerifier: (k: Buffer) => {
          key = Buffer.from(k);
          return true;
        },
        // no authentication at all: the handshake is what is checked
        authHandler: () => false,
      });
    } catch (err) {
      finish(err);
    }
  });
}

/**
 * Waits until host `id` runs with an SSH address at which an SSH server
 * completes a handshake, and answers with that address and its host key.
 * Throws STANDBY_ERR_PROVIDER_FAILED when the host failed or is gone (at
 * once), or when `timeoutMs` passes first (context.timedOut: true, with what
 * was last seen), and the signal's reason on abort. A provider call that
 * fails is tried again at the next look, except a refused credential
 * (STANDBY_ERR_PROVIDER_AUTH), which is thrown.
 */
export async function waitForSsh(provider: HostReader, id: string, timeoutMs: number, signal?: AbortSignal, options: WaitForSshOptions = {}): Promise<SshReady> {
  const pollMs = options.pollMs ?? 5_000;
  const handshakeMs = options.handshakeTimeoutMs ?? 10_000;
  const started = performance.now();
  const deadline = started + timeoutMs;
  const context = { provider: provider.name, id, timeoutMs };
  let last = 'not looked at yet';
  let polls = 0;
  // bounded in time, and in count whatever the clock does
  for (let i = 0; i < 1_000_000; i++) {
    signal?.throwIfAborted();
    polls++;
    let host: ProvisionedHost | undefined;
    let asked = true;
    try {
      host = await provider.get(id, signal);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (err instanceof StandbyError && err.code === 'STANDBY_ERR_PROVIDER_AUTH') throw err;
      asked = false;
      last = `the ${provider.name} API could not be asked: ${(err as Error).message}`;
      options.log?.warn({ ...context, err: (err as Error).message }, 'waiting for SSH: could not look at the host; trying again');
    }
    if (asked) {
      if (host === undefined || host.state === 'gone') {
        throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `${provider.name} host ${id} is gone (destroyed, or never made) while waiting for it to answer SSH: provision another`, { ...context, phase: 'ssh-ready' });
      }
      if (host.state === 'failed') {
        throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `${provider.name} host ${id} failed while waiting for it to answer SSH (${host.detail}): destroy it and provision another`, { ...context, phase: 'ssh-ready', detail: host.detail });
      }
      if (host.state === 'running' && host.ssh) {
        const ssh = host.ssh;
        const left = deadline - performance.now();
        try {
          const hostKey = await sshHandshake(ssh, Math.max(100, Math.min(handshakeMs, left)), signal);
          const waitedMs = Math.round(performance.now() - started);
          options.log?.info({ ...context, ssh: `${ssh.host}:${ssh.port}`, fingerprint: hostKey.fingerprint, waitedMs, polls }, 'the host answers SSH');
          return { host, ssh, hostKey, waitedMs, polls };
        } catch (err) {
          if (signal?.aborted) throw signal.reason;
          last = `running at ${ssh.host}:${ssh.port}, where SSH does not answer yet (${(err as Error).message})`;
        }
      } else {
        last = host.state === 'running' ? `running, but ${provider.name} gives no SSH address yet (${host.detail})` : `${host.state} (${host.detail})`;
      }
    }
    const left = deadline - performance.now();
    if (left <= 0) break;
    try {
      await sleep(Math.min(pollMs, left), undefined, signal ? { signal } : {});
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw err;
    }
  }
  throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `${provider.name} host ${id} did not answer SSH within ${formatMs(timeoutMs)} (recovery.sshWaitS); last seen: ${last}. Destroy it and provision another`, { ...context, phase: 'ssh-ready', timedOut: true, last });
}

function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
