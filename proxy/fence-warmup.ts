// An SSH connection to the standby opened ahead of a fence: when the GPU's
// heartbeats go missing the proxy may soon have to fence, and the SSH
// handshake is a good part of the fence's time (the blackhole case's switch is
// 1.5 s of detection plus the fence). Opening the connection fences nothing;
// it is handed to the fence once (which closes it), or closed when unused.
// The failover loop asks for it at each evaluation while anything is off (a GPU whose
// agent has not connected yet is "degraded" for as long as that lasts), so a
// connection that fails waits out a backoff before the next: the standby's
// sshd must not see one attempt per tick.
import { Client, type ConnectConfig } from 'ssh2';
import { Backoff } from '../core/backoff.ts';
import type { Logger } from '../core/log.ts';
import { connectOptions, type FenceTarget } from './standby-ssh.ts';

export class FenceWarmup {
  #target: FenceTarget;
  #idleMs: number;
  #log: Logger;
  #client: Client | undefined;
  #ready = false;
  #timer: NodeJS.Timeout | undefined;
  #drop: (() => void) | undefined;
  #backoff: Backoff;
  /** no new attempt before this (performance.now()), after a failed one */
  #notBefore = 0;

  constructor(target: FenceTarget, log: Logger, idleMs = 30_000, backoff = new Backoff(500, 30_000)) {
    this.#target = target;
    this.#log = log;
    this.#idleMs = idleMs;
    this.#backoff = backoff;
  }

  /** Opens a connection if none is open or opening. Failures are quiet: the fence connects (and reports) itself. */
  warm(): void {
    if (this.#client || performance.now() < this.#notBefore) return;
    let options: ConnectConfig;
    try {
      options = connectOptions(this.#target, 5_000);
    } catch {
      this.#notBefore = performance.now() + this.#backoff.next();
      return; // the fence will say what is wrong with the key or known_hosts
    }
    const client = new Client();
    this.#client = client;
    this.#ready = false;
    const drop = (): void => {
      if (this.#client !== client) return;
      // never ready: refused, unreachable or timed out; wait before trying again
      if (!this.#ready) this.#notBefore = performance.now() + this.#backoff.next();
      this.#client = undefined;
      this.#ready = false;
      if (this.#timer) clearTimeout(this.#timer);
      client.destroy();
    };
    this.#drop = drop;
    client.on('ready', () => {
      if (this.#client !== client) return;
      this.#ready = true;
      this.#backoff.reset();
    });
    client.on('error', drop);
    client.on('close', drop);
    this.#timer = setTimeout(drop, this.#idleMs);
    this.#timer.unref();
    try {
      client.connect(options);
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'fence warm-up could not connect');
      drop();
    }
  }

  /** The ready connection, handed over (the caller owns and closes it), or undefined. */
  take(): Client | undefined {
    const client = this.#client;
    if (!client || !this.#ready) return undefined;
    this.#client = undefined;
    this.#ready = false;
    if (this.#timer) clearTimeout(this.#timer);
    client.removeAllListeners('ready');
    client.removeAllListeners('error');
    client.removeAllListeners('close');
    return client;
  }

  close(): void {
    this.#drop?.();
  }
}
