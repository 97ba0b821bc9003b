// A preemption notice on a GCP spot VM: the metadata server's
// instance/preempted turns TRUE about 30 s before the VM stops. The agent
// waits on it with wait_for_change=true (a hanging GET that returns on a
// change), so the notice reaches the proxy in the next heartbeat, at once.
// Off GCP the metadata host does not resolve and the watcher stops after
// saying so once. The URL is configurable, so tests serve it.
import { readFileSync } from 'node:fs';
import type { Logger } from '../../core/log.ts';
import { Backoff } from '../../core/backoff.ts';

/** Whether this host is a GCP VM (its DMI product name says so). */
export function onGcp(): boolean {
  try {
    return readFileSync('/sys/class/dmi/id/product_name', 'utf8').includes('Google');
  } catch {
    return false;
  }
}

export class GcpPreemptionWatcher {
  #url: string;
  #log: Logger;
  #onNotice: (source: string) => void;
  #abort = new AbortController();
  #backoff = new Backoff(500, 30_000);
  #closed = false;

  constructor(url: string, onNotice: (source: string) => void, log: Logger) {
    this.#url = url;
    this.#onNotice = onNotice;
    this.#log = log;
  }

  start(): void {
    void this.#loop();
  }

  async #loop(): Promise<void> {
    let etag: string | undefined;
    let failing = false;
    for (let i = 0; !this.#closed && i < 1_000_000; i++) {
      const url = `${this.#url}?wait_for_change=true${etag ? `&last_etag=${encodeURIComponent(etag)}` : ''}`;
      try {
        const res = await fetch(url, { headers: { 'metadata-flavor': 'Google' }, signal: this.#abort.signal });
        if (!res.ok) throw new Error(`the metadata server answered HTTP ${res.status}`);
        etag = res.headers.get('etag') ?? undefined;
        const value = (await res.text()).trim();
        this.#backoff.reset();
        if (failing) this.#log.info('GCP metadata server answers again');
        failing = false;
        if (value === 'TRUE') {
          this.#log.warn({ source: 'gcp-metadata' }, 'preemption notice from the GCP metadata server: asking the proxy for a planned failover');
          this.#onNotice('gcp-metadata');
          return;
        }
      } catch (err) {
        if (this.#closed) return;
        const cause = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
        if (cause === 'ENOTFOUND' || cause === 'EAI_AGAIN') {
          this.#log.info('no GCP metadata server here: not watching for GCP preemption notices');
          return;
        }
        if (!failing) this.#log.warn({ err: (err as Error).message }, 'GCP metadata server not answering: retrying with backoff');
        failing = true;
        await new Promise((r) => setTimeout(r, this.#backoff.next()));
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#abort.abort();
  }
}
