// A daemon's life under systemd, the same for the agent and the proxy: STATUS
// every 5 s, WATCHDOG=1 while its loop proves alive, and on SIGTERM or SIGINT
// STOPPING=1, the daemon's own stop, "stopped", the notify sender closed.
// READY=1 stays with the daemon: when it is ready is its own business.
import type { Logger } from '../core/log.ts';
import { SdNotify } from './notify.ts';

export interface Supervised {
  notify: SdNotify | undefined;
  log: Logger;
  /** the one-line STATUS= */
  status(): string;
  /** the watchdog's check: true while the work loop is alive */
  alive(): boolean;
  /** logged when alive() says no and the watchdog is withheld */
  stuck: string;
  /** the daemon's own shutdown, after STOPPING=1 */
  stop(signal: string): Promise<void>;
}

/** Runs until SIGTERM or SIGINT has stopped the daemon. */
export async function supervise(d: Supervised): Promise<void> {
  const statusTimer = d.notify ? setInterval(() => d.notify!.status(d.status()), 5_000).unref() : undefined;
  const watchdog = SdNotify.watchdog();
  if (d.notify && watchdog) d.notify.startWatchdog(watchdog, d.alive, () => d.log.error(d.stuck));
  await untilStopped(async (signal) => {
    clearInterval(statusTimer);
    d.notify?.stopping(`stopping on ${signal}`);
    await d.stop(signal);
  });
  d.log.info('stopped');
  await d.notify?.close();
}

/** Resolves once SIGTERM or SIGINT has arrived and `stop` (given the signal's name) has finished. */
function untilStopped(stop: (signal: string) => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const on = (signal: string) => void stop(signal).finally(resolve);
    process.once('SIGTERM', () => on('SIGTERM'));
    process.once('SIGINT', () => on('SIGINT'));
  });
}
