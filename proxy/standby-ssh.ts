// One request to the standby's receiver over SSH, as the proxy makes it (the
// fence, and the per-host writer keys): one connection (the ssh2 library, no
// ssh binary, no shared ControlMaster), one command, its last stdout line read
// as JSON. Bounded in time from connect to answer; the connection is always
// closed. Errors say which standby and what to do:
// STANDBY_ERR_STANDBY_UNREACHABLE when it could not be reached,
// STANDBY_ERR_FENCE_FAILED when it was reached but the request did not complete.
// Host keys: checked against knownHostsFile when given; without it any host
// key is accepted (docs/fencing.md says what that risks).
import { readFileSync } from 'node:fs';
import { Client, type ClientErrorExtensions, type ConnectConfig } from 'ssh2';
import { quoteWords } from '../protocol/command-words.ts';
import { RECEIVER_FLAGS } from '../protocol/receiver.ts';
import { StandbyError } from '../core/errors.ts';
import { DEFAULT_RECEIVER } from '../config/proxy.ts';
import { knownHostsChecker } from './known-hosts.ts';

export interface FenceTarget {
  host: string;
  /** default 22 */
  port?: number;
  user: string;
  /** private key of the proxy's key on the standby (an admin key, or one whose forced command has --allow-fence) */
  identityFile: string;
  /** the standby's host key in OpenSSH known_hosts format; without it any host key is accepted */
  knownHostsFile?: string;
}

export interface StandbyRequestOptions {
  /** the receiver command on the standby (default "standby receive") */
  command?: string;
  /** the receiver's state folder on the standby (default: the receiver's default) */
  stateDir?: string;
  /** the whole request, connection included, ms (default 20000) */
  timeoutMs?: number;
  /** connection and SSH handshake, ms (default 10000, at most timeoutMs) */
  connectTimeoutMs?: number;
  /** an SSH connection to the standby already open and ready (proxy/fence-warmup.ts): the handshake is skipped; it is closed after */
  client?: Client;
}

export interface StandbyAnswer {
  /** the receiver's JSON line */
  answer: Record<string, unknown>;
  /** connect to answer, ms */
  durationMs: number;
}

/**
 * ssh2's connect options for the standby: its key read, its host key checked
 * against knownHostsFile (any key without one; `refused` hears why one was
 * refused). Throws when the key or known_hosts file cannot be read.
 */
export function connectOptions(target: FenceTarget, readyTimeout: number, refused: (reason: string) => void = () => {}): ConnectConfig {
  const port = target.port ?? 22;
  const privateKey = readFileSync(target.identityFile);
  const checkKey = target.knownHostsFile ? knownHostsChecker(target.knownHostsFile, target.host, port) : undefined;
  return {
    host: target.host,
    port,
    username: target.user,
    privateKey,
    readyTimeout,
    hostVerifier: (key: Buffer): boolean => {
      if (!checkKey) return true;
      const check = checkKey(key);
      if (!check.ok) refused(check.reason ?? 'not the known key');
      return check.ok;
    },
  };
}

/** `<command> <args...> [--state-dir DIR]`, quoted for the standby's shell and the receiver's own splitting. */
export function receiverCommand(args: readonly string[], options: StandbyRequestOptions = {}): string {
  const all = [...args];
  if (options.stateDir !== undefined) all.push(RECEIVER_FLAGS.stateDir, options.stateDir);
  return `${options.command ?? DEFAULT_RECEIVER} ${quoteWords(all)}`;
}

/** The last non-empty line, whole (stdout is kept to its last 8 KiB): an authorize answer carries a key line and paths. */
function wholeLastLine(text: string): string {
  return text.trim().split('\n').filter((l) => l.trim()).pop() ?? '';
}

/** The same, cut for a message. */
function lastLine(text: string): string {
  return wholeLastLine(text).slice(0, 500);
}

/** Runs the receiver with `args` on the standby; `what` names the request in errors ("fencing ... at epoch 3"). */
export function askStandby(target: FenceTarget, args: readonly string[], what: string, options: StandbyRequestOptions = {}): Promise<StandbyAnswer> {
  const port = target.port ?? 22;
  const where = `${target.user}@${target.host}:${port}`;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const connectTimeoutMs = Math.min(options.connectTimeoutMs ?? 10_000, timeoutMs);
  const command = receiverCommand(args, options);
  const started = performance.now();
  const failed = (message: string, context: Record<string, unknown> = {}, cause?: unknown): StandbyError =>
    new StandbyError('STANDBY_ERR_FENCE_FAILED', `${what} on the standby ${where} failed: ${message}`, { host: target.host, port, ...context }, { cause });
  const unreachable = (message: string, cause?: unknown): StandbyError =>
    new StandbyError('STANDBY_ERR_STANDBY_UNREACHABLE', `the standby ${where} could not be reached for ${what} (${message}): check that it is up and that sshd listens on port ${port}`, { host: target.host, port }, { cause });

  let hostKeyProblem: string | undefined;
  let connect: ConnectConfig | undefined; // none for a warm connection: it is connected already
  if (!options.client) {
    try {
      connect = connectOptions(target, connectTimeoutMs, (reason) => (hostKeyProblem = reason));
    } catch (err) {
      return Promise.reject(new StandbyError('STANDBY_ERR_CONFIG_INVALID', `cannot reach ${where} for ${what}: ${(err as Error).message} (standby.ssh.identityFile / knownHostsFile)`, { host: target.host }, { cause: err }));
    }
  }

  return new Promise<StandbyAnswer>((resolve, reject) => {
    const warm = options.client;
    const client = warm ?? new Client();
    let connected = false;
    let settled = false;
    let stdout = '';
    let stderr = '';
    const finish = (err: StandbyError | undefined, result?: StandbyAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.destroy(); // never leave the connection (or a half-open handshake) behind
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(() => {
      finish(connected
        ? failed(`no answer within ${timeoutMs} ms${stderr ? ` (standby said: ${lastLine(stderr)})` : ''}`, { timeoutMs })
        : unreachable(`no SSH connection within ${timeoutMs} ms`));
    }, timeoutMs);

    const run = (): void => {
      connected = true;
      client.exec(command, (err, stream) => {
        if (err) return finish(failed(`could not run "${command}": ${err.message}`, {}, err));
        stream.on('data', (d: Buffer) => {
          stdout = (stdout + d.toString()).slice(-8192);
        });
        stream.stderr.on('data', (d: Buffer) => {
          stderr = (stderr + d.toString()).slice(-8192);
        });
        stream.on('close', (code: number | null, signal?: string) => {
          if (code !== 0) {
            const said = lastLine(stderr) || lastLine(stdout);
            const why = code === 127 ? `"${options.command ?? DEFAULT_RECEIVER}" was not found on the standby (install it, or set standby.ssh.command)` : `"${command}" exited ${code ?? `on ${signal ?? 'a signal'}`}`;
            return finish(failed(`${why}${said ? `: ${said}` : ''}`, { exitCode: code, stderr: said }));
          }
          let answer: unknown;
          try {
            answer = JSON.parse(wholeLastLine(stdout));
          } catch {
            answer = undefined;
          }
          if (!answer || typeof answer !== 'object') return finish(failed(`the standby's answer is not the receiver's JSON line: ${JSON.stringify(lastLine(stdout))}`, { stdout: lastLine(stdout) }));
          finish(undefined, { answer: answer as Record<string, unknown>, durationMs: Math.round(performance.now() - started) });
        });
      });
    };
    client.on('ready', run);
    client.on('error', (err: Error & ClientErrorExtensions) => {
      if (hostKeyProblem) return finish(failed(`host key refused: ${hostKeyProblem}`, { hostKey: hostKeyProblem }, err));
      if (err.level === 'client-socket' || err.level === 'client-timeout') return finish(unreachable(err.message, err));
      if (err.level === 'client-authentication') return finish(failed(`the standby refused the login of ${target.user} with ${target.identityFile}: authorize that key on the standby`, {}, err));
      finish(connected ? failed(err.message, {}, err) : unreachable(err.message, err));
    });
    client.on('close', () => finish(connected ? failed('the connection closed before the receiver answered') : unreachable('the connection closed during the handshake')));

    if (!connect) {
      run();
      return;
    }
    try {
      client.connect(connect);
    } catch (err) {
      // e.g. a key ssh2 cannot read (encrypted, unknown format)
      finish(new StandbyError('STANDBY_ERR_CONFIG_INVALID', `cannot reach ${where} for ${what}: ${(err as Error).message} (standby.ssh.identityFile ${target.identityFile})`, { host: target.host }, { cause: err }));
    }
  });
}
