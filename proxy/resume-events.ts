// The resume command's run on a recovery's new GPU, as its agent's heartbeats
// report it (protocol/messages.ts `resume`), turned into durable `resume`
// events (state.ts) the failover report reads: `started` when the run is first
// seen running (or already exited), `exited` when it is first seen ended. Each
// (host, epoch, event) is logged once, also across a proxy restart (the log's
// recent events are read at start). Only the GPU in service is heard: it is the
// only host ever granted resume, and a host may not fill the log (at most two
// events per epoch).
import type { Heartbeat } from '../protocol/messages.ts';
import type { StateStore } from './state-store.ts';

export class ResumeEvents {
  readonly #store: StateStore;
  readonly #gpuId: () => string;
  /** "host\0epoch\0state" of every resume event logged */
  readonly #logged = new Set<string>();

  /** `gpuId`: the GPU in service now (state.gpu, or the configured one) */
  constructor(store: StateStore, gpuId: () => string) {
    this.#store = store;
    this.#gpuId = gpuId;
    for (const e of store.events(1000)) if (e.type === 'resume') this.#logged.add(key(e.hostId, e.epoch, e.state));
  }

  /** An accepted heartbeat of `hostId`. */
  heartbeat(hostId: string, hb: Heartbeat): void {
    const r = hb.resume;
    if (!r || hostId !== this.#gpuId() || r.epoch > this.#store.state.epoch) return;
    const base = { type: 'resume' as const, hostId, epoch: r.epoch };
    if (r.state !== 'failed-to-start' && this.#first(hostId, r.epoch, 'started')) {
      this.#store.append({ ...base, state: 'started', reason: `${hostId}'s resume command started (pid ${r.pid ?? 'unknown'}) after the switch back at epoch ${r.epoch}` });
    }
    if (r.state !== 'running' && this.#first(hostId, r.epoch, 'exited')) {
      const how = r.state === 'failed-to-start' ? `did not start: ${r.error ?? 'no reason given'}` : r.signal ? `ended by ${r.signal}` : `exited with ${r.exitCode ?? 'an unknown code'}`;
      this.#store.append({ ...base, state: 'exited', exitCode: r.exitCode, signal: r.signal, error: r.error, reason: `${hostId}'s resume command ${how}${r.error && r.state !== 'failed-to-start' ? ` (${r.error})` : ''}` });
    }
  }

  #first(hostId: string, epoch: number, state: 'started' | 'exited'): boolean {
    const k = key(hostId, epoch, state);
    if (this.#logged.has(k)) return false;
    this.#logged.add(k);
    return true;
  }
}

function key(hostId: string, epoch: number, state: string): string {
  return `${hostId}\0${epoch}\0${state}`;
}
