// The `vast` GPU provider: Vast.ai's REST API with `Authorization: Bearer`.
// Endpoints and fields as the vast-ai/vast-cli source uses them (vast.py and
// vastai/api/*.py; docs/providers.md cites each):
//   search   POST {apiUrl}/bundles/            body: the query JSON         -> {offers: [...]}
//   create   PUT  {apiUrl}/asks/{offerId}/     body: image, onstart, label  -> {success, new_contract}
//   get      GET  {apiUrl}/instances/{id}/?owner=me                        -> {instances: row | null}
//   list     GET  {base}/api/v1/instances/?select_filters=&order_by=&limit= -> {instances, next_token}
//   destroy  DELETE {apiUrl}/instances/{id}/                               -> {success, msg}
// Every host carries the label hostNameText(name), so a retried or restarted
// create finds the instance it already made instead of renting a second GPU.
// The API key goes in one header and nowhere else: not in logs, not in errors.
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from '../../core/backoff.ts';
import { StandbyError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import {
  hostNameText,
  parseHostName,
  type GpuLaunch,
  type GpuOffer,
  type GpuProvider,
  type GpuRequirements,
  type GpuSearch,
  type HostState,
  type ProvisionedHost,
  type SshAddress,
} from './provider.ts';

export { DEFAULT_VAST_API_URL, vastProviderSchema, type VastProviderSettings } from '../../config/vast-provider.ts';
import type { VastProviderSettings } from '../../config/vast-provider.ts';

/** What a search asks of an offer, from the settings. */
export function vastRequirements(s: VastProviderSettings): GpuRequirements {
  return { minGpuRamGb: s.gpuMinRamGb, maxPricePerHour: s.gpuMaxPrice, regions: s.regions, diskGb: s.diskGb };
}

// Region groups, as vast-cli's vastai/utils.py `_regions` has them (EU there lacks IE, added here).
const REGION_GROUPS: Record<string, ReadonlySet<string>> = {
  EU: new Set('AL,AD,AT,BY,BE,BA,BG,HR,CY,CZ,DK,EE,FI,FR,GE,DE,GR,HU,IS,IE,IT,KZ,LV,LI,LT,LU,MT,MD,MC,ME,NL,NO,PL,PT,RO,RU,RS,SK,SI,ES,SE,CH,UA,GB,VA,MK'.split(',')),
  NA: new Set(['CA', 'US']),
};

/** The country code of a Vast geolocation ("Bangkok, TH", "Japan, JP"): its last two letters, as vast-cli reads it. */
export function countryOf(geolocation: unknown): string | undefined {
  if (typeof geolocation !== 'string') return undefined;
  const m = /(?:^|,\s*)([A-Z]{2})\s*$/.exec(geolocation);
  return m?.[1];
}

/** The index of the first preferred region the country is in, or regions.length. */
function regionRank(country: string | undefined, regions: readonly string[]): number {
  if (country === undefined) return regions.length;
  const i = regions.findIndex((r) => r === country || REGION_GROUPS[r]?.has(country) === true);
  return i === -1 ? regions.length : i;
}

/** Vast's words for an instance, mapped to ours (docs/providers.md has the table). */
export function vastHostState(row: VastInstanceRow): HostState {
  const actual = row.actual_status ?? null;
  const intended = row.intended_status ?? 'running';
  if (row.cur_state === 'unloaded') return 'gone'; // released on destroy
  if (actual === 'exited' || actual === 'offline' || actual === 'unknown') return 'failed';
  if (intended === 'stopped' || intended === 'frozen') return actual === 'stopped' || actual === 'frozen' ? 'stopped' : 'stopping';
  if (actual === 'running') return 'running';
  // null (provisioning), created, loading, rebooting, and stopped while waiting for the machine's resources
  return 'creating';
}

/** The fields of an instance row we read (GET /instances/{id}/, /api/v1/instances/). */
export interface VastInstanceRow {
  id?: unknown;
  label?: unknown;
  actual_status?: string | null;
  intended_status?: string | null;
  cur_state?: string | null;
  status_msg?: unknown;
  ssh_host?: unknown;
  ssh_port?: unknown;
  public_ipaddr?: unknown;
  ports?: unknown;
  image_runtype?: unknown;
  dph_total?: unknown;
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^[0-9a-fA-F:]{2,45}$/;

function portOf(v: unknown): number | undefined {
  const n = typeof v === 'string' && /^\d{1,5}$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * How to reach a running instance over SSH, as vast-cli's `ssh-url` finds it:
 * the direct port (public_ipaddr and ports["22/tcp"][0].HostPort) when the
 * machine maps one, else Vast's SSH proxy (ssh_host:ssh_port, one more for
 * jupyter images). Anything that is not a plain host name and port is ignored.
 */
export function vastSshAddress(row: VastInstanceRow): SshAddress | undefined {
  const ports = row.ports;
  const mapped = ports && typeof ports === 'object' ? (ports as Record<string, unknown>)['22/tcp'] : undefined;
  if (Array.isArray(mapped) && mapped.length > 0) {
    const port = portOf((mapped[0] as { HostPort?: unknown } | null)?.HostPort);
    const host = typeof row.public_ipaddr === 'string' ? row.public_ipaddr.trim() : '';
    if (port !== undefined && HOSTNAME.test(host)) return { host, port, user: 'root' };
  }
  const host = typeof row.ssh_host === 'string' ? row.ssh_host.trim() : '';
  const base = portOf(row.ssh_port);
  if (base === undefined || !HOSTNAME.test(host)) return undefined;
  const jupyter = typeof row.image_runtype === 'string' && row.image_runtype.includes('jupyter');
  const port = jupyter ? portOf(base + 1) : base;
  return port === undefined ? undefined : { host, port, user: 'root' };
}

/** code-server's port inside a new GPU (the installer's unit listens there); mapped to a public port by Vast */
export const CODE_SERVER_PORT = 8080;

/** code-server on a running instance, as the proxy reaches it: public_ipaddr and the port Vast mapped for CODE_SERVER_PORT. */
export function vastCodeServerUrl(row: VastInstanceRow): string | undefined {
  const ports = row.ports;
  const mapped = ports && typeof ports === 'object' ? (ports as Record<string, unknown>)[`${CODE_SERVER_PORT}/tcp`] : undefined;
  if (!Array.isArray(mapped) || mapped.length === 0) return undefined;
  const port = portOf((mapped[0] as { HostPort?: unknown } | null)?.HostPort);
  const host = typeof row.public_ipaddr === 'string' ? row.public_ipaddr.trim() : '';
  return port !== undefined && HOSTNAME.test(host) ? `http://${host}:${port}` : undefined;
}

/** A price as people read it: cents, or a tenth of a cent where cents would round it onto the cap. */
function dollars(p: number): string {
  return `$${Math.round(p * 100) / 100 === p ? p.toFixed(2) : p.toFixed(3)}/h`;
}

/** Text from the API (status messages, error messages) fit for a log line: printable, short. */
function printable(v: unknown, max = 200): string {
  if (typeof v !== 'string') return '';
  const s = v.replace(/[^\x20-\x7e]/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

// The largest answer read; a search of `searchLimit` offers is far below it.
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/** A 429, a 5xx, a timeout or a refused connection: worth another try. */
class Transient extends Error {}

interface Answer {
  status: number;
  body: unknown;
}

interface CallOptions {
  query?: Record<string, unknown>;
  body?: unknown;
  signal?: AbortSignal | undefined;
}

export class VastProvider implements GpuProvider {
  readonly name = 'vast';
  #s: VastProviderSettings;
  #key: string;
  #log: Logger | undefined;

  /** `env` supplies VAST_API_KEY when the settings have no apiKey. */
  constructor(settings: VastProviderSettings, log?: Logger, env: NodeJS.ProcessEnv = process.env) {
    this.#s = settings;
    const key = settings.apiKey ?? env.VAST_API_KEY;
    if (!key) throw new StandbyError('STANDBY_ERR_PROVIDER_AUTH', 'no Vast.ai API key: set VAST_API_KEY in the proxy\'s environment or recovery.gpu.vast.apiKey in proxy.json');
    this.#key = key;
    this.#log = log;
  }

  async search(req: GpuRequirements, signal?: AbortSignal): Promise<GpuSearch> {
    const s = this.#s;
    const deadline = performance.now() + s.searchTimeoutMs;
    const backoff = new Backoff(s.retryMinMs, s.retryMaxMs);
    // Price and region are not in the query: the cheapest offer over the cap is what the
    // report names when nothing qualifies, and regions only order what qualifies.
    const query = {
      verified: { eq: true },
      external: { eq: false },
      rentable: { eq: true },
      rented: { eq: false },
      gpu_ram: { gte: req.minGpuRamGb * 1000 }, // MB, as vast-cli's offers_mult has it
      order: [['dph_total', 'asc']],
      type: 'on-demand',
      limit: s.searchLimit,
      allocated_storage: req.diskGb, // dph_total then includes this disk
    };
    let attempts = 0;
    let answered = 0;
    let lastError = '';
    let cheapest: GpuOffer | undefined;
    while (attempts < s.searchRetries) {
      attempts++;
      let wait: number;
      try {
        const answer = await this.#once('POST', '/bundles/', { body: query, signal });
        const rows = (answer.body as { offers?: unknown } | null)?.offers;
        if (answer.status !== 200 || !Array.isArray(rows)) throw this.#failed('search offers', answer);
        answered++;
        backoff.reset();
        const seen = rows.flatMap((row) => this.#offer(row, req));
        for (const o of seen) if (!cheapest || o.pricePerHour < cheapest.pricePerHour) cheapest = o;
        const offers = seen.filter((o) => o.pricePerHour <= req.maxPricePerHour).sort((a, b) => compareOffers(a, b, req.regions));
        if (offers.length > 0) {
          this.#log?.info({ attempts, offers: offers.length, best: offers[0]!.id, price: offers[0]!.pricePerHour, location: offers[0]!.location }, 'Vast.ai offers found');
          return { ok: true, offers };
        }
        this.#log?.info({ attempts, seen: seen.length, cheapest: cheapest?.pricePerHour }, 'no Vast.ai offer under the price cap yet');
        wait = s.searchIntervalMs;
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        lastError = err.message;
        this.#log?.warn({ attempts, err: err.message }, 'Vast.ai search failed: retrying');
        wait = backoff.next();
      }
      if (attempts >= s.searchRetries || performance.now() + wait > deadline) break;
      await this.#pause(wait, signal);
    }
    if (answered === 0) {
      throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `the Vast API failed every offer search (${attempts} tries, last: ${lastError}): Vast.ai is down or throttling this key; the standby keeps serving, try again later`, { attempts });
    }
    const where = req.regions.length > 0 ? ` in ${req.regions.join(', ')}` : '';
    const seenText = cheapest
      ? `cheapest seen: ${dollars(cheapest.pricePerHour)} in ${countryOf(cheapest.location) ?? (cheapest.location || 'an unknown place')}`
      : `no offer with ${req.minGpuRamGb} GB of GPU RAM seen`;
    return { ok: false, reason: `no offer under ${dollars(req.maxPricePerHour)}${where} (${seenText})`, cheapestSeen: cheapest, attempts };
  }

  /**
   * Rents `offer`, or returns the instance labelled for `launch.name` if there is one already
   * (in whatever state: a failed one is for the caller to destroy before it creates again).
   */
  async create(offer: GpuOffer, launch: GpuLaunch, signal?: AbortSignal): Promise<ProvisionedHost> {
    if (!/^\d{1,12}$/.test(offer.id)) throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `not a Vast.ai offer id: ${printable(offer.id, 40)}`, { offerId: offer.id });
    const label = hostNameText(launch.name);
    const body = {
      client_id: 'me',
      image: launch.image,
      // docker options travel in env, as vast-cli's parse_env puts them: code-server's port mapped to a public one
      env: { [`-p ${CODE_SERVER_PORT}:${CODE_SERVER_PORT}`]: '1', ...(launch.env ?? {}) },
      disk: launch.diskGb,
      label,
      onstart: launch.onstart,
      runtype: this.#s.runtype,
      // an offer taken meanwhile is an error, not a stopped instance that waits for the machine
      cancel_unavail: true,
    };
    const backoff = new Backoff(this.#s.retryMinMs, this.#s.retryMaxMs);
    let lastError = '';
    for (let attempt = 1; attempt <= this.#s.requestRetries; attempt++) {
      // before every try: a create whose answer was lost (here, or before a restart) made it already
      const existing = await this.#byLabel(label, signal);
      if (existing) {
        if (attempt > 1) this.#log?.info({ id: existing.id, label }, 'the Vast.ai instance of a create whose answer was lost: using it');
        return existing;
      }
      try {
        const answer = await this.#once('PUT', `/asks/${offer.id}/`, { body, signal });
        const b = answer.body as { success?: unknown; new_contract?: unknown } | null;
        if (answer.status !== 200 || b?.success !== true || !Number.isInteger(b.new_contract)) {
          throw this.#failed(`create an instance from offer ${offer.id}`, answer, 'the offer is probably taken: search again and try the next one');
        }
        const id = String(b.new_contract);
        this.#log?.info({ id, offer: offer.id, label, price: offer.pricePerHour }, 'Vast.ai instance created');
        const host = await this.get(id, signal).catch((err: unknown) => {
          if (err instanceof Transient || (err instanceof StandbyError && err.code === 'STANDBY_ERR_PROVIDER_FAILED')) return undefined;
          throw err;
        });
        return host ?? { id, provider: this.name, name: parseHostName(label), state: 'creating', ssh: undefined, pricePerHour: offer.pricePerHour, detail: 'created' };
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        lastError = err.message;
        this.#log?.warn({ attempt, offer: offer.id, label, err: err.message }, 'Vast.ai create got no clear answer: looking for the instance by its label before trying again');
      }
      if (attempt < this.#s.requestRetries) await this.#pause(backoff.next(), signal);
    }
    throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `the Vast API did not create an instance from offer ${offer.id} in ${this.#s.requestRetries} tries (last: ${lastError}): Vast.ai is down or throttling this key; a later create finds the instance by its label ${label} if one was made`, { offerId: offer.id, label });
  }

  async get(id: string, signal?: AbortSignal): Promise<ProvisionedHost | undefined> {
    this.#checkId(id);
    const answer = await this.#retrying(`read instance ${id}`, () => this.#once('GET', `/instances/${id}/`, { query: { owner: 'me' }, signal }), signal);
    if (answer.status === 404) return undefined;
    if (answer.status !== 200) throw this.#failed(`read instance ${id}`, answer);
    const row = (answer.body as { instances?: unknown } | null)?.instances;
    if (row === null || row === undefined) return undefined;
    if (typeof row !== 'object' || Array.isArray(row)) throw this.#failed(`read instance ${id}`, answer);
    return this.#host(row as VastInstanceRow, id);
  }

  async list(workspace: string, signal?: AbortSignal): Promise<ProvisionedHost[]> {
    const rows = await this.#instances({}, signal);
    return rows.flatMap((row) => {
      const name = typeof row.label === 'string' ? parseHostName(row.label) : undefined;
      if (name?.workspace !== workspace.toLowerCase()) return [];
      const host = this.#host(row);
      return host && host.state !== 'gone' ? [host] : [];
    });
  }

  async destroy(id: string, signal?: AbortSignal): Promise<void> {
    this.#checkId(id);
    const answer = await this.#retrying(`destroy instance ${id}`, () => this.#once('DELETE', `/instances/${id}/`, { body: {}, signal }), signal);
    if (answer.status === 404) return; // already gone
    const ok = answer.status === 200 && (answer.body as { success?: unknown } | null)?.success !== false;
    if (ok) {
      this.#log?.info({ id }, 'Vast.ai instance destroyed');
      return;
    }
    // a refusal for an instance that is gone already is done too
    const now = await this.get(id, signal);
    if (now === undefined || now.state === 'gone') return;
    throw this.#failed(`destroy instance ${id}`, answer, `destroy it by hand (vastai destroy instance ${id}) so it stops billing`);
  }

  /** Stops the instance, its disk kept (vast-cli's stop instance: PUT /instances/{id}/ {state: "stopped"}); one that is gone is done. */
  async stop(id: string, signal?: AbortSignal): Promise<void> {
    this.#checkId(id);
    const answer = await this.#retrying(`stop instance ${id}`, () => this.#once('PUT', `/instances/${id}/`, { body: { state: 'stopped' }, signal }), signal);
    if (answer.status === 404) return; // gone: nothing bills
    if (answer.status === 200 && (answer.body as { success?: unknown } | null)?.success !== false) {
      this.#log?.info({ id }, 'Vast.ai instance stopped (its disk kept)');
      return;
    }
    throw this.#failed(`stop instance ${id}`, answer, `stop or destroy it by hand (vastai stop instance ${id}) so it stops billing for its GPU`);
  }

  /** Our instance labelled `label`, if Vast has one that is not destroyed. */
  async #byLabel(label: string, signal: AbortSignal | undefined): Promise<ProvisionedHost | undefined> {
    const rows = await this.#instances({ label: { in: [label] } }, signal);
    const hosts = rows.filter((r) => r.label === label).flatMap((r) => {
      const h = this.#host(r);
      return h && h.state !== 'gone' ? [h] : [];
    });
    if (hosts.length > 1) this.#log?.warn({ label, ids: hosts.map((h) => h.id) }, 'more than one Vast.ai instance carries this label: using the first, destroy the others');
    return hosts[0];
  }

  /** Every instance of the account that matches `filters`, page after page (bounded). */
  async #instances(filters: Record<string, unknown>, signal: AbortSignal | undefined): Promise<VastInstanceRow[]> {
    const rows: VastInstanceRow[] = [];
    let after: string | undefined;
    for (let page = 0; page < 200; page++) {
      const query: Record<string, unknown> = { select_filters: filters, order_by: [{ col: 'id', dir: 'asc' }], limit: 25 };
      if (after !== undefined) query.after_token = after;
      const answer = await this.#retrying('list instances', () => this.#once('GET', '/api/v1/instances/', { query, signal }), signal);
      const b = answer.body as { instances?: unknown; next_token?: unknown } | null;
      if (answer.status !== 200 || !b || (b.instances !== null && b.instances !== undefined && !Array.isArray(b.instances))) throw this.#failed('list instances', answer);
      for (const r of (b.instances as unknown[] | null | undefined) ?? []) if (r && typeof r === 'object') rows.push(r as VastInstanceRow);
      if (typeof b.next_token !== 'string' || b.next_token === '' || b.next_token === after) return rows;
      after = b.next_token;
    }
    throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', 'the Vast API listed more than 200 pages of instances: not reading further', {});
  }

  #host(row: VastInstanceRow, expectedId?: string): ProvisionedHost | undefined {
    const id = typeof row.id === 'number' && Number.isInteger(row.id) ? String(row.id) : expectedId;
    if (id === undefined) return undefined;
    const state = vastHostState(row);
    const label = typeof row.label === 'string' ? row.label : '';
    const msg = printable(row.status_msg);
    return {
      id,
      provider: this.name,
      name: parseHostName(label),
      state,
      ssh: state === 'running' ? vastSshAddress(row) : undefined,
      pricePerHour: typeof row.dph_total === 'number' ? row.dph_total : undefined,
      detail: `${printable(row.actual_status) || 'provisioning'}${msg ? `: ${msg}` : ''}`,
      url: state === 'running' ? vastCodeServerUrl(row) : undefined,
      workspace: '/workspace',
    };
  }

  /** An offer row as a GpuOffer, or nothing when it does not meet the RAM floor or is not rentable and verified. */
  #offer(row: unknown, req: GpuRequirements): GpuOffer[] {
    if (!row || typeof row !== 'object') return [];
    const r = row as Record<string, unknown>;
    const price = r.dph_total;
    const ram = r.gpu_ram;
    if (typeof r.id !== 'number' || !Number.isInteger(r.id) || typeof price !== 'number' || !Number.isFinite(price) || price < 0) return [];
    if (typeof ram !== 'number' || ram < req.minGpuRamGb * 1000) return [];
    if (r.rentable === false || r.rented === true) return [];
    const verified = r.verified === true || r.verification === 'verified';
    if (!verified) return [];
    const location = printable(r.geolocation, 80);
    const country = countryOf(location);
    const rank = regionRank(country, req.regions);
    return [{
      id: String(r.id),
      pricePerHour: price,
      gpuName: printable(r.gpu_name, 80),
      gpuCount: typeof r.num_gpus === 'number' ? r.num_gpus : 1,
      gpuRamGb: ram / 1000,
      location,
      region: rank < req.regions.length ? req.regions[rank] : country,
      reliability: typeof r.reliability === 'number' ? r.reliability : typeof r.reliability2 === 'number' ? r.reliability2 : undefined,
    }];
  }

  #checkId(id: string): void {
    if (!/^\d{1,12}$/.test(id)) throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `not a Vast.ai instance id: ${printable(id, 40)}`, { id: printable(id, 40) });
  }

  /** Runs `call` until it gives an answer that is not a 429, 5xx or silence, at most requestRetries times. */
  async #retrying(what: string, call: () => Promise<Answer>, signal: AbortSignal | undefined): Promise<Answer> {
    const backoff = new Backoff(this.#s.retryMinMs, this.#s.retryMaxMs);
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        if (attempt >= this.#s.requestRetries) {
          throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `the Vast API did not ${what} in ${attempt} tries (last: ${err.message}): Vast.ai is down or throttling this key; try again later`, { attempts: attempt });
        }
        this.#log?.warn({ attempt, err: err.message }, `Vast.ai: could not ${what}: retrying`);
      }
      await this.#pause(backoff.next(), signal);
    }
  }

  /** One HTTP request. Throws Transient for 429, 5xx, timeouts and refused connections, PROVIDER_AUTH for 401/403, the caller's abort reason on abort. */
  async #once(method: string, path: string, o: CallOptions): Promise<Answer> {
    o.signal?.throwIfAborted();
    // paths under /api/vN/ are taken from the API's origin (the list is /api/v1/), others from apiUrl
    const base = this.#s.apiUrl.replace(/\/+$/, '');
    const url = new URL(/^\/api\/v\d+\//.test(path) ? base.replace(/\/api\/v\d+$/, '') + path : base + path);
    // as vast-cli's apiurl(): strings as they are, everything else as JSON
    for (const [k, v] of Object.entries(o.query ?? {})) url.searchParams.set(k, typeof v === 'string' ? v : JSON.stringify(v));
    const timeout = AbortSignal.timeout(this.#s.requestTimeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.#key}`, accept: 'application/json', ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
        signal,
        redirect: 'error', // a redirect could carry the key elsewhere
      });
      text = await readCapped(res, MAX_ANSWER_BYTES);
    } catch (err) {
      if (o.signal?.aborted) throw o.signal.reason;
      if (timeout.aborted) throw new Transient(`no answer to ${method} ${url.pathname} within ${this.#s.requestTimeoutMs} ms`);
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Transient(this.#redact(`${method} ${url.pathname} failed: ${cause?.code ?? cause?.message ?? (err as Error).message}`));
    }
    let body: unknown;
    try {
      body = text === '' ? null : JSON.parse(text);
    } catch {
      body = text; // a 429's body is often plain text ("API requests too frequent")
    }
    if (res.status === 401 || res.status === 403) {
      throw new StandbyError('STANDBY_ERR_PROVIDER_AUTH', `the Vast API refused the key (HTTP ${res.status}${this.#said(body)}): check VAST_API_KEY / recovery.gpu.vast.apiKey`, { status: res.status, path: url.pathname });
    }
    if (res.status === 429 || res.status >= 500) throw new Transient(`HTTP ${res.status} for ${method} ${url.pathname}${this.#said(body)}`);
    return { status: res.status, body };
  }

  #failed(what: string, answer: Answer, todo = 'check the Vast.ai console'): StandbyError {
    const b = answer.body as { error?: unknown } | null;
    const code = b && typeof b === 'object' ? printable(b.error, 60) : '';
    return new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `the Vast API could not ${what} (HTTP ${answer.status}${this.#said(answer.body)}): ${todo}`, { status: answer.status, ...(code ? { vastError: code } : {}) });
  }

  /** ": <the API's own words>", or nothing. */
  #said(body: unknown): string {
    const b = body as { msg?: unknown; message?: unknown; error?: unknown } | null;
    const words = typeof body === 'string' ? printable(body) : b && typeof b === 'object' ? printable(b.msg) || printable(b.message) || printable(b.error) : '';
    return words ? `: ${this.#redact(words)}` : '';
  }

  #redact(text: string): string {
    return text.split(this.#key).join('[redacted]');
  }

  async #pause(waitMs: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await sleep(waitMs, undefined, signal ? { signal } : {});
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw err;
    }
  }
}

/** Preferred region first, then reliability (in hundredths, so a near tie goes to the price), then price. */
function compareOffers(a: GpuOffer, b: GpuOffer, regions: readonly string[]): number {
  const ra = regionRank(countryOf(a.location), regions);
  const rb = regionRank(countryOf(b.location), regions);
  if (ra !== rb) return ra - rb;
  const la = Math.round((a.reliability ?? 0) * 100);
  const lb = Math.round((b.reliability ?? 0) * 100);
  if (la !== lb) return lb - la;
  if (a.pricePerHour !== b.pricePerHour) return a.pricePerHour - b.pricePerHour;
  return Number(a.id) - Number(b.id);
}

/** The body as text, refusing one longer than `max` bytes. */
async function readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) throw new Error(`an answer longer than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
