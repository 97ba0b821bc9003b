// A preemption notice for a Vast.ai GPU, which has no notice API: the proxy
// polls the instance (GET /instances/{id}/ of the Vast REST API) and takes
// its actual_status leaving `running` as the notice. The API URL is
// configurable, so tests point it at test/fakes/vast-api.ts.
import type { Logger } from '../../core/log.ts';

export interface VastStatusSettings {
  /** the REST API base, default https://console.vast.ai/api/v0 */
  apiUrl: string;
  apiKey: string;
  instanceId: number;
  /** how often to ask, ms */
  everyMs: number;
}

export class VastStatusWatcher {
  #settings: VastStatusSettings;
  #log: Logger;
  #onNotice: (source: string, reason: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #lastError: string | undefined;
  /** the last actual_status seen */
  status: string | null | undefined;
  #seenRunning = false;
  #fired = false;

  constructor(settings: VastStatusSettings, onNotice: (source: string, reason: string) => void, log: Logger) {
    this.#settings = settings;
    this.#onNotice = onNotice;
    this.#log = log;
  }

  start(): void {
    void this.#poll();
  }

  async #poll(): Promise<void> {
    if (this.#closed) return;
    const url = `${this.#settings.apiUrl.replace(/\/$/, '')}/instances/${this.#settings.instanceId}/?owner=me`;
    try {
      const res = await fetch(url, { headers: { authorization: `Bearer ${this.#settings.apiKey}`, accept: 'application/json' }, signal: AbortSignal.timeout(Math.max(2_000, this.#settings.everyMs)) });
      if (res.status === 401 || res.status === 403) throw new Error(`the Vast API refused the key (HTTP ${res.status}): check primary.notices.vast.apiKey`);
      if (!res.ok) throw new Error(`the Vast API answered HTTP ${res.status} for instance ${this.#settings.instanceId}`);
      const body = (await res.json()) as { instances?: { actual_status?: string | null } | null };
      if (!body.instances) throw new Error(`the Vast API does not know instance ${this.#settings.instanceId}`);
      this.#ok();
      this.#see(body.instances.actual_status ?? null);
    } catch (err) {
      const message = (err as Error).message;
      if (message !== this.#lastError) this.#log.warn({ err: message }, 'cannot read the GPU\'s status from Vast.ai: no preemption notice from there until it answers');
      this.#lastError = message;
    }
    if (!this.#closed) this.#timer = setTimeout(() => void this.#poll(), this.#settings.everyMs);
  }

  #ok(): void {
    if (this.#lastError !== undefined) this.#log.info('the Vast API answers again');
    this.#lastError = undefined;
  }

  #see(status: string | null): void {
    if (status !== this.status) this.#log.info({ instanceId: this.#settings.instanceId, actualStatus: status }, 'Vast.ai instance status');
    this.status = status;
    if (status === 'running') {
      this.#seenRunning = true;
      this.#fired = false;
      return;
    }
    // leaving `running` is the notice (an instance still starting is not preempted)
    if (this.#seenRunning && !this.#fired) {
      this.#fired = true;
      this.#onNotice('vast-status', `Vast.ai instance ${this.#settings.instanceId} is ${status ?? 'gone'} (was running)`);
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
