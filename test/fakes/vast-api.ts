// A stand-in for the Vast.ai REST API on loopback, as much of it as the proxy
// uses, with the paths, methods, fields and error shapes of the real one
// (docs/providers.md cites them):
//   POST /api/v0/bundles/ (and GET ?q=)   search offers: the query JSON's filters, order and limit -> {offers}
//   PUT  /api/v0/asks/{offer}/            create an instance -> {success, new_contract}
//   GET  /api/v0/instances/{id}/          one instance -> {instances: row | null}
//   PUT  /api/v0/instances/{id}/          label it ({label})
//   DELETE /api/v0/instances/{id}/        destroy it -> {success, msg}; 404 for one it does not know
//   GET  /api/v1/instances/               the account's instances, select_filters, 25 a page, next_token
// Every request needs `Authorization: Bearer <key>` (401 {success:false,
// error, msg} otherwise). A created instance goes provisioning (actual_status
// null) -> loading -> running, with an SSH address once running; faults can
// be switched on: 429/5xx bursts, slow answers, an instance stuck loading,
// one that dies, one that runs without SSH, a create done whose answer is
// never sent.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An offer row, as /bundles/ returns it (the fields the provider reads, and a few more). */
export interface FakeOffer {
  id: number;
  gpu_name: string;
  num_gpus: number;
  /** MB per GPU */
  gpu_ram: number;
  /** $/h, disk included */
  dph_total: number;
  /** "City, CC" or "Country, CC" */
  geolocation: string;
  reliability: number;
  rentable: boolean;
  rented: boolean;
  verified: boolean;
  verification: 'verified' | 'unverified' | 'deverified';
  external: boolean;
  /** >0: the machine maps ports, and its instances get direct SSH (ports["22/tcp"]) */
  direct_port_count: number;
  public_ipaddr: string;
}

/** An offer with sensible values: an RTX 4090, 24 GB, $0.40/h in Thailand, verified and rentable. */
export function fakeOffer(id: number, patch: Partial<FakeOffer> = {}): FakeOffer {
  return {
    id,
    gpu_name: 'RTX 4090',
    num_gpus: 1,
    gpu_ram: 24_564,
    dph_total: 0.4,
    geolocation: 'Bangkok, TH',
    reliability: 0.99,
    rentable: true,
    rented: false,
    verified: true,
    verification: 'verified',
    external: false,
    direct_port_count: 100,
    public_ipaddr: '127.0.0.1',
    ...patch,
  };
}

/** How a new instance's boot goes: it runs; it stays `loading`; it runs and then exits; it runs but never gets an SSH address. */
export type FakeBoot = 'running' | 'stuck-loading' | 'dies' | 'no-ssh';

interface Instance {
  id: number;
  offer: FakeOffer | undefined;
  label: string | null;
  image: string;
  onstart: string;
  env: Record<string, string>;
  disk: number;
  runtype: string;
  createdAt: number;
  boot: FakeBoot;
  /** a status set by hand (setStatus / kill), over the boot's */
  status?: string | null;
  intended: string;
  sshPort: number;
  /** code-server's public port, when the test gave hostPorts */
  httpPort?: number;
}

export interface FakeVastApiOptions {
  apiKey?: string;
  /** ms from create to `loading` (default 20) */
  provisionMs?: number;
  /** ms from create to `running` (default 150) */
  bootMs?: number;
  /** for boot "dies": ms from create to `exited` (default 300) */
  dieMs?: number;
  /** the ports a new instance reports (direct SSH, and code-server's 8080 when the create mapped it): point them at real loopback servers */
  hostPorts?: () => { ssh: number; http: number };
}

export interface FakeVastApi {
  /** base URL, for primary.notices.vast.apiUrl and recovery.gpu.vast.apiUrl */
  apiUrl: string;
  apiKey: string;
  /** offers /bundles/ searches (replace at will) */
  offers: FakeOffer[];
  /** how instances created from now on boot (default running) */
  boot: FakeBoot;
  /** every answer waits this long first, ms (default 0) */
  delayMs: number;
  /** sets an instance's actual_status by hand (creating a bare one if it does not exist) */
  setStatus(instanceId: number, actualStatus: string | null): void;
  /** the instance's SSH port: its direct port (ports["22/tcp"]) becomes `port`, its proxy port port + 1000 (tests point it at a real sshd) */
  setSshPort(instanceId: number, port: number): void;
  /** the instance dies: actual_status "offline" (its host left Vast) */
  kill(instanceId: number): void;
  /** the next `count` requests matching `method` and `path` (a regex on the path) answer `status` (429: Vast's plain-text "API requests too frequent") */
  fail(count: number, status: number, match?: { method?: string; path?: RegExp }): void;
  /** the next `count` creates make their instance, then never answer (the client gives up waiting) */
  loseCreateAnswers(count: number): void;
  /** instances that exist (not destroyed), as GET /instances/{id}/ shows them */
  instances(): Record<string, unknown>[];
  /** requests answered or held, all routes */
  requests: number;
  /** "METHOD /path" of every request, in order */
  log: string[];
  close(): Promise<void>;
}

type Op = 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte' | 'in' | 'notin';

/** Does `row` pass Vast's filter JSON ({field: {op: value}})? */
function matches(row: Record<string, unknown>, filters: Record<string, unknown>, ignore: ReadonlySet<string>): boolean {
  for (const [field, cond] of Object.entries(filters)) {
    if (ignore.has(field) || !cond || typeof cond !== 'object') continue;
    const v = row[field];
    for (const [op, want] of Object.entries(cond as Record<Op, unknown>)) {
      const ok =
        op === 'eq' ? v === want :
        op === 'neq' ? v !== want :
        op === 'gt' ? (v as number) > (want as number) :
        op === 'gte' ? (v as number) >= (want as number) :
        op === 'lt' ? (v as number) < (want as number) :
        op === 'lte' ? (v as number) <= (want as number) :
        op === 'in' ? Array.isArray(want) && want.includes(v) :
        op === 'notin' ? Array.isArray(want) && !want.includes(v) :
        true;
      if (!ok) return false;
    }
  }
  return true;
}

const SEARCH_KEYS = new Set(['order', 'type', 'limit', 'allocated_storage', 'disable_bundling']);

export async function startFakeVastApi(apiKeyOrOptions: string | FakeVastApiOptions = 'fake-vast-key'): Promise<FakeVastApi> {
  const o: FakeVastApiOptions = typeof apiKeyOrOptions === 'string' ? { apiKey: apiKeyOrOptions } : apiKeyOrOptions;
  const apiKey = o.apiKey ?? 'fake-vast-key';
  const provisionMs = o.provisionMs ?? 20;
  const bootMs = o.bootMs ?? 150;
  const dieMs = o.dieMs ?? 300;
  const instances = new Map<number, Instance>();
  const failures: { count: number; status: number; method?: string; path?: RegExp }[] = [];
  let lostCreates = 0;
  let nextId = 9_000_001;
  const hostPortsFor = (id: number): { sshPort: number; httpPort?: number } => {
    const p = o.hostPorts?.();
    return p ? { sshPort: p.ssh, httpPort: p.http } : { sshPort: 40_000 + (id % 10_000) };
  };
  const held = new Set<ServerResponse>();

  const row = (i: Instance): Record<string, unknown> => {
    const age = performance.now() - i.createdAt;
    let actual: string | null = i.boot === 'dies' && age >= dieMs ? 'exited' : age >= bootMs && i.boot !== 'stuck-loading' ? 'running' : age >= provisionMs ? 'loading' : null;
    if (i.status !== undefined) actual = i.status;
    const running = actual === 'running';
    const ssh = running && i.boot !== 'no-ssh';
    const direct = (i.offer?.direct_port_count ?? 0) > 0 && i.runtype !== 'ssh_proxy';
    return {
      id: i.id,
      label: i.label,
      actual_status: actual,
      intended_status: i.intended,
      cur_state: i.intended === 'running' ? 'running' : 'stopped',
      next_state: i.intended,
      image_uuid: i.image,
      image_runtype: i.runtype,
      onstart: i.onstart,
      extra_env: Object.entries(i.env),
      status_msg: actual === 'exited' ? 'Error: container exited with code 137' : actual === 'loading' ? 'Pulling image' : running ? `success, running ${i.image}/ssh` : null,
      gpu_name: i.offer?.gpu_name ?? 'RTX 4090',
      num_gpus: i.offer?.num_gpus ?? 1,
      gpu_ram: i.offer?.gpu_ram ?? 24_564,
      dph_total: i.offer?.dph_total ?? 0.4,
      geolocation: i.offer?.geolocation ?? 'Bangkok, TH',
      disk_space: i.disk,
      machine_id: i.offer ? i.offer.id % 100_000 : 1,
      start_date: Date.now() / 1000,
      // the SSH address appears once the container runs, as on the real one
      public_ipaddr: ssh ? (i.offer?.public_ipaddr ?? '127.0.0.1') : null,
      ports: ssh && direct ? { '22/tcp': [{ HostIp: '0.0.0.0', HostPort: String(i.sshPort) }], ...(i.httpPort !== undefined && '-p 8080:8080' in i.env ? { '8080/tcp': [{ HostIp: '0.0.0.0', HostPort: String(i.httpPort) }] } : {}) } : {},
      ssh_host: ssh ? '127.0.0.1' : null,
      ssh_port: ssh ? i.sshPort + 1000 : null,
    };
  };

  let requests = 0;
  const log: string[] = [];
  const server = createServer((req, res) => {
    requests++;
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    log.push(`${method} ${url.pathname}`);
    res.on('error', () => {}); // a client that gave up
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('end', () => {
      const answer = () => handle(req, res, method, url, Buffer.concat(chunks).toString('utf8'));
      if (fake.delayMs > 0) setTimeout(answer, fake.delayMs);
      else answer();
    });
  });

  const json = (res: ServerResponse, status: number, body: unknown) => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const handle = (req: IncomingMessage, res: ServerResponse, method: string, url: URL, text: string): void => {
    if (req.headers.authorization !== `Bearer ${apiKey}`) return json(res, 401, { success: false, error: 'invalid_api_key', msg: 'Invalid user key' });
    const failure = failures.find((f) => f.count > 0 && (!f.method || f.method === method) && (!f.path || f.path.test(url.pathname)));
    if (failure) {
      failure.count--;
      if (failure.status === 429) {
        res.writeHead(429, { 'content-type': 'text/plain' });
        return void res.end('API requests too frequent');
      }
      return json(res, failure.status, { success: false, error: 'server_error', msg: 'Internal server error' });
    }
    let body: Record<string, unknown> = {};
    try {
      if (text) body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return json(res, 400, { success: false, error: 'invalid_args', msg: 'Could not parse the request body as JSON' });
    }
    const p = url.pathname;
    let m: RegExpExecArray | null;

    if (p === '/api/v0/bundles/' && (method === 'POST' || method === 'GET')) {
      let q = body;
      if (method === 'GET') {
        try {
          q = JSON.parse(url.searchParams.get('q') ?? '{}') as Record<string, unknown>;
        } catch {
          return json(res, 400, { success: false, error: 'invalid_args', msg: 'q is not JSON' });
        }
      }
      let offers = fake.offers.filter((x) => matches(x as unknown as Record<string, unknown>, q, SEARCH_KEYS));
      const order = Array.isArray(q.order) ? (q.order as [string, string][]) : [];
      offers = offers.sort((a, b) => {
        for (const [field, dir] of order) {
          const av = (a as unknown as Record<string, number>)[field]!;
          const bv = (b as unknown as Record<string, number>)[field]!;
          if (av !== bv) return (av < bv ? -1 : 1) * (dir === 'desc' ? -1 : 1);
        }
        return 0;
      });
      if (typeof q.limit === 'number') offers = offers.slice(0, q.limit);
      return json(res, 200, { offers });
    }

    if ((m = /^\/api\/v0\/asks\/(\d+)\/$/.exec(p)) && method === 'PUT') {
      const offer = fake.offers.find((x) => x.id === Number(m![1]));
      if (typeof body.image !== 'string' || body.image === '') return json(res, 400, { success: false, error: 'invalid_args', msg: 'image is required' });
      if (!offer || !offer.rentable || offer.rented) return json(res, 404, { success: false, error: 'no_such_ask', msg: `Instance type by id ${m[1]} is not available.` });
      offer.rented = true;
      offer.rentable = false;
      const id = nextId++;
      instances.set(id, {
        id,
        offer,
        label: typeof body.label === 'string' ? body.label : null,
        image: body.image,
        onstart: typeof body.onstart === 'string' ? body.onstart : '',
        env: body.env && typeof body.env === 'object' ? (body.env as Record<string, string>) : {},
        disk: typeof body.disk === 'number' ? body.disk : 8,
        runtype: typeof body.runtype === 'string' ? body.runtype : 'ssh',
        createdAt: performance.now(),
        boot: fake.boot,
        intended: 'running',
        ...hostPortsFor(id),
      });
      if (lostCreates > 0) {
        // done on the server; the answer never leaves it (the client times out)
        lostCreates--;
        held.add(res);
        res.on('close', () => held.delete(res));
        return;
      }
      return json(res, 200, { success: true, new_contract: id });
    }

    if ((m = /^\/api\/v0\/instances\/(\d+)\/$/.exec(p))) {
      const id = Number(m[1]);
      const inst = instances.get(id);
      if (method === 'GET') return json(res, 200, { instances: inst ? row(inst) : null });
      if (method === 'PUT') {
        if (!inst) return json(res, 404, { success: false, error: 'no_such_instance', msg: `Instance ${id} not found.` });
        if (typeof body.label === 'string') inst.label = body.label;
        if (body.state === 'stopped' || body.state === 'running') inst.intended = body.state;
        return json(res, 200, { success: true });
      }
      if (method === 'DELETE') {
        if (!inst) return json(res, 404, { success: false, error: 'no_such_instance', msg: `Instance ${id} not found.` });
        instances.delete(id);
        return json(res, 200, { success: true, msg: 'Instance destroyed successfully' });
      }
    }

    if (p === '/api/v1/instances/' && method === 'GET') {
      let filters: Record<string, unknown> = {};
      try {
        filters = JSON.parse(url.searchParams.get('select_filters') ?? '{}') as Record<string, unknown>;
      } catch {
        return json(res, 400, { success: false, error: 'invalid_args', msg: 'select_filters is not JSON' });
      }
      const limit = Math.max(1, Math.min(25, Number(url.searchParams.get('limit') ?? 25) || 25));
      const token = url.searchParams.get('after_token');
      const after = token ? (JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { id: number }).id : 0;
      const all = [...instances.values()].sort((a, b) => a.id - b.id).map(row).filter((r) => matches(r, filters, new Set()));
      const page = all.filter((r) => (r.id as number) > after).slice(0, limit);
      const more = all.some((r) => (r.id as number) > ((page.at(-1)?.id as number | undefined) ?? Infinity));
      return json(res, 200, {
        success: true,
        instances_found: page.length,
        total_instances: all.length,
        next_token: more ? Buffer.from(JSON.stringify({ id: page.at(-1)!.id })).toString('base64') : null,
        instances: page,
      });
    }

    return json(res, 404, { success: false, error: 'not_found', msg: `No route for ${method} ${p}` });
  };

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const fake: FakeVastApi = {
    apiUrl: `http://127.0.0.1:${port}/api/v0`,
    apiKey,
    offers: [],
    boot: 'running',
    delayMs: 0,
    setStatus(id, s) {
      const inst = instances.get(id);
      if (inst) inst.status = s;
      else instances.set(id, { id, offer: undefined, label: null, image: 'pytorch/pytorch', onstart: '', env: {}, disk: 8, runtype: 'ssh', createdAt: performance.now(), boot: 'running', status: s, intended: 'running', sshPort: 40_000 + (id % 10_000) });
    },
    setSshPort(id, port) {
      const inst = instances.get(id);
      if (!inst) throw new Error(`fake Vast: no instance ${id}`);
      inst.sshPort = port;
    },
    kill(id) {
      const inst = instances.get(id);
      if (inst) inst.status = 'offline';
    },
    fail(count, status, match = {}) {
      failures.push({ count, status, ...match });
    },
    loseCreateAnswers(count) {
      lostCreates += count;
    },
    instances: () => [...instances.values()].map(row),
    get requests() {
      return requests;
    },
    log,
    async close() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return fake;
}
