// The proxy's side of the fence: one fresh SSH connection to the standby (the
// ssh2 library, no ssh binary, no shared ControlMaster), running
// `standby receive --fence <epoch>` there and reading its JSON line. Bounded
// in time from connect to answer; the connection is always closed. Errors say
// which standby and what to do: STANDBY_ERR_STANDBY_UNREACHABLE when it could
// not be reached (the route must not move there), STANDBY_ERR_FENCE_FAILED
// when it was reached but the fence did not complete.
// Host keys: checked against knownHostsFile when given; without it any host
// key is accepted (docs/fencing.md says what that risks).
import { readFileSync } from 'node:fs';
import { Client, type ClientErrorExtensions } from 'ssh2';
import type { FenceResult as StandbyFenceResult } from '../agent/standby-fence.ts';
import type { KilledReceiver } from '../agent/receiver-registry.ts';
import { StandbyError } from '../errors.ts';
import { knownHostsChecker, type HostKeyCheck } from './known-hosts.ts';

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

export interface FenceOptions {
  /** the receiver command on the standby (default "standby receive") */
  command?: string;
  /** the receiver's state folder on the standby (default: the receiver's default) */
  stateDir?: string;
  /** how long writers of older epochs may finish before the standby kills them, ms (default: the receiver's, 10000) */
  waitMs?: number;
  /** the whole fence, connection included, ms (default waitMs + 10000) */
  timeoutMs?: number;
  /** connection and SSH handshake, ms (default 10000, at most timeoutMs) */
  connectTimeoutMs?: number;
  /** an SSH connection to the standby already open and ready (proxy/fence-warmup.ts): the fence skips the handshake; it is closed after */
  client?: Client;
}

/** What the standby reported (its JSON line), plus where and how long the whole fence took from here. */
export interface FenceResult extends StandbyFenceResult {
  host: string;
  /** connect to answer, ms */
  durationMs: number;
}

const DEFAULT_WAIT_MS = 10_000;

/** Quotes one argument for the standby's shell (and the receiver's own splitting). */
function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function fenceCommand(epoch: number, options: FenceOptions = {}): string {
  const args = ['--fence', String(epoch)];
  if (options.waitMs !== undefined) args.push('--wait-ms', String(options.waitMs));
  if (options.stateDir !== undefined) args.push('--state-dir', options.stateDir);
  return `${options.command ?? 'standby receive'} ${args.map(quote).join(' ')}`;
}

function parseResult(stdout: string): Omit<FenceResult, 'host' | 'durationMs'> | undefined {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    const r = JSON.parse(line) as Record<string, unknown>;
    if (typeof r['epoch'] !== 'number' || typeof r['previousEpoch'] !== 'number' || typeof r['waitedMs'] !== 'number' || typeof r['killed'] !== 'number') return undefined;
    return {
      epoch: r['epoch'],
      previousEpoch: r['previousEpoch'],
      waitedMs: r['waitedMs'],
      killed: r['killed'],
      signalled: Array.isArray(r['signalled']) ? (r['signalled'] as KilledReceiver[]) : [],
      locked: r['locked'] !== false,
    };
  } catch {
    return undefined;
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter((l) => l.trim()).pop()?.slice(0, 500) ?? '';
}

/**
 * Fences the standby at `epoch`: resolves once it reports the epoch written and
 * no writer of an older one left. Idempotent; safe to retry.
 */
export function fenceStandby(target: FenceTarget, epoch: number, options: FenceOptions = {}): Promise<FenceResult> {
  const port = target.port ?? 22;
  const where = `${target.user}@${target.host}:${port}`;
  const timeoutMs = options.timeoutMs ?? (options.waitMs ?? DEFAULT_WAIT_MS) + 10_000;
  const connectTimeoutMs = Math.min(options.connectTimeoutMs ?? 10_000, timeoutMs);
  const command = fenceCommand(epoch, options);
  const started = performance.now();
  const failed = (message: string, context: Record<string, unknown> = {}, cause?: unknown): StandbyError =>
    new StandbyError('STANDBY_ERR_FENCE_FAILED', `fencing the standby ${where} at epoch ${epoch} failed: ${message}; the route does not move to it until a fence succeeds`, { host: target.host, port, epoch, ...context }, { cause });
  const unreachable = (message: string, cause?: unknown): StandbyError =>
    new StandbyError('STANDBY_ERR_STANDBY_UNREACHABLE', `the standby ${where} could not be reached to fence it at epoch ${epoch} (${message}): the route does not move to it; check that it is up and that sshd listens on port ${port}`, { host: target.host, port, epoch }, { cause });

  let privateKey: Buffer;
  let checkKey: ((key: Buffer) => HostKeyCheck) | undefined;
  try {
    privateKey = readFileSync(target.identityFile);
    if (target.knownHostsFile) checkKey = knownHostsChecker(target.knownHostsFile, target.host, port);
  } catch (err) {
    return Promise.reject(new StandbyError('STANDBY_ERR_CONFIG_INVALID', `cannot fence ${where}: ${(err as Error).message} (standby.ssh.identityFile / knownHostsFile)`, { host: target.host }, { cause: err }));
  }

  return new Promise<FenceResult>((resolve, reject) => {
    const warm = options.client;
    const client = warm ?? new Client();
    let connected = false;
    let settled = false;
    let hostKeyProblem: string | undefined;
    let stdout = '';
    let stderr = '';
    const finish = (err: StandbyError | undefined, result?: FenceResult): void => {
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
            const why = code === 127 ? `"${options.command ?? 'standby receive'}" was not found on the standby (install it, or set standby.ssh.command)` : `"${command}" exited ${code ?? `on ${signal ?? 'a signal'}`}`;
            return finish(failed(`${why}${said ? `: ${said}` : ''}`, { exitCode: code, stderr: said }));
          }
          const parsed = parseResult(stdout);
          if (!parsed) return finish(failed(`the standby's answer is not the fence's JSON line: ${JSON.stringify(lastLine(stdout))}`, { stdout: lastLine(stdout) }));
          if (parsed.epoch !== epoch) return finish(failed(`the standby reports epoch ${parsed.epoch}, not ${epoch}`, { reported: parsed.epoch }));
          finish(undefined, { host: target.host, ...parsed, durationMs: Math.round(performance.now() - started) });
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
    client.on('close', () => finish(connected ? failed('the connection closed before the fence answered') : unreachable('the connection closed during the handshake')));

    if (warm) {
      run();
      return;
    }
    try {
      client.connect({
        host: target.host,
        port,
        username: target.user,
        privateKey,
        readyTimeout: connectTimeoutMs,
        hostVerifier: (key: Buffer): boolean => {
          if (!checkKey) return true;
          const check = checkKey(key);
          if (!check.ok) hostKeyProblem = check.reason;
          return check.ok;
        },
      });
    } catch (err) {
      // e.g. a key ssh2 cannot read (encrypted, unknown format)
      finish(new StandbyError('STANDBY_ERR_CONFIG_INVALID', `cannot fence ${where}: ${(err as Error).message} (standby.ssh.identityFile ${target.identityFile})`, { host: target.host }, { cause: err }));
    }
  });
}
