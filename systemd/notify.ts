// systemd's notify protocol for the agent and the proxy (Type=notify):
// READY=1 once really ready, STATUS= a one-line summary, WATCHDOG=1 from a
// liveness check, STOPPING=1 on shutdown. Messages are datagrams on the
// AF_UNIX socket named by $NOTIFY_SOCKET. Node cannot send unix datagrams, and
// spawning `systemd-notify` per message races (it exits before systemd can
// tell which unit sent it), so one long-lived sender runs beside the daemon
// for its whole life, in its cgroup: perl with its Socket module, from
// perl-base, which every Debian and Ubuntu system has (Essential: yes).
// The units set NotifyAccess=all so systemd takes messages from that child.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../core/log.ts';

// Reads NUL-separated messages on stdin, sends each as one datagram.
const SENDER = `
use strict; use Socket;
my $path = $ENV{NOTIFY_SOCKET}; $path =~ s/^\\@/\\0/;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\\n";
my $addr = pack_sockaddr_un($path);
$/ = "\\0";
while (my $msg = <STDIN>) { chomp $msg; send($s, $msg, 0, $addr) or warn "sd_notify: $!\\n"; }
`;

export interface Watchdog {
  /** the period systemd expects WATCHDOG=1 within, ms */
  intervalMs: number;
}

export class SdNotify {
  #child: ChildProcess;
  #log: Logger;
  #watchdogTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(child: ChildProcess, log: Logger) {
    this.#child = child;
    this.#log = log;
    child.on('error', (err) => this.#log.warn({ err: err.message }, 'sd_notify sender failed: systemd will not hear from this daemon (is perl installed?)'));
    child.stderr?.on('data', (d: Buffer) => this.#log.warn({ err: d.toString().trim() }, 'sd_notify sender'));
    child.stdin?.on('error', () => undefined); // the sender died: its 'error'/'exit' is what gets reported
  }

  /** A notifier when started by systemd with Type=notify (NOTIFY_SOCKET set), otherwise undefined. */
  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): SdNotify | undefined {
    const socket = env.NOTIFY_SOCKET;
    if (!socket) return undefined;
    const child = spawn('perl', ['-e', SENDER], { stdio: ['pipe', 'ignore', 'pipe'], env: { NOTIFY_SOCKET: socket, PATH: env.PATH ?? '/usr/bin:/bin' } });
    child.unref();
    (child.stdin as unknown as { unref?: () => void })?.unref?.();
    return new SdNotify(child, log);
  }

  /** The watchdog systemd asks for ($WATCHDOG_USEC, for this process), or undefined. */
  static watchdog(env: NodeJS.ProcessEnv = process.env): Watchdog | undefined {
    const usec = Number(env.WATCHDOG_USEC);
    if (!Number.isFinite(usec) || usec <= 0) return undefined;
    if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return undefined;
    return { intervalMs: usec / 1000 };
  }

  send(fields: Record<string, string | number>): void {
    if (this.#closed) return;
    const lines = Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`);
    this.#child.stdin?.write(lines.join('\n') + '\0');
  }

  ready(status: string): void {
    this.send({ READY: 1, STATUS: status, MAINPID: process.pid });
  }

  status(status: string): void {
    this.send({ STATUS: status });
  }

  /**
   * WATCHDOG=1 at half the period, but only while `alive()` says the work
   * loop is alive: a stuck loop stops the pings and systemd restarts the
   * daemon. (A timer alone would prove only that timers fire.)
   */
  startWatchdog(w: Watchdog, alive: () => boolean, onMissed?: () => void): void {
    const every = Math.max(50, w.intervalMs / 2);
    let missing = false;
    this.#watchdogTimer = setInterval(() => {
      if (alive()) {
        this.send({ WATCHDOG: 1 });
        missing = false;
      } else if (!missing) {
        missing = true;
        onMissed?.();
      }
    }, every);
    this.#watchdogTimer.unref();
  }

  stopping(status = 'stopping'): void {
    if (this.#watchdogTimer) clearInterval(this.#watchdogTimer);
    this.send({ STOPPING: 1, STATUS: status });
  }

  /** Ends the sender after the messages written so far. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    if (this.#watchdogTimer) clearInterval(this.#watchdogTimer);
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 2_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.stdin?.end();
    });
  }
}
