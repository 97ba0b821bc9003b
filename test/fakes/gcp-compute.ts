// A stand-in for the Compute Engine v1 REST API on loopback, as much of it as
// @google-cloud/compute's InstancesClient and ZoneOperationsClient use for a
// standby: instances insert/get/list/start/stop/delete and zone operations
// get/wait, with the real JSON shapes (compute#instance, compute#operation,
// ids as strings), operations that go PENDING -> RUNNING -> DONE on timers,
// requestId de-duplication, and errors shaped like Google's
// ({"error": {"code", "message", "errors": [{"reason", ...}], "status"}}).
//
// It authenticates like the real one as far as a test can: each request must
// carry a self-signed service-account JWT (what the client library sends for a
// service-account key) signed with the key of credentialsJson and meant for
// compute.googleapis.com; anything else gets Google's 401.
//
// Fault switches: failNext (429/5xx bursts), dropNextAnswer (the call takes
// effect, its answer is lost), failNextOperation (an operation ends DONE with
// an error, as a stockout does), preempt (a spot VM moved to TERMINATED or
// STOPPED with its disk kept, or deleted if its termination action is DELETE),
// stallNextOperation (an operation that never ends), slowNextOperation (one
// that takes its time), remove (an instance deleted behind our back).
import { createPublicKey, createVerify, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const API = 'https://www.googleapis.com/compute/v1';
const AUDIENCE = 'https://compute.googleapis.com/';

/** An instance as the fake stores it: the compute#instance JSON the API answers with. */
export type FakeInstance = Record<string, unknown> & {
  name: string;
  id: string;
  status: string;
  labels?: Record<string, string>;
  scheduling?: { provisioningModel?: string; instanceTerminationAction?: string; automaticRestart?: boolean; onHostMaintenance?: string };
  metadata?: { items?: { key: string; value: string }[] };
  disks: { boot?: boolean; autoDelete?: boolean; source?: string; diskSizeGb?: string; initializeParams?: Record<string, unknown> }[];
  networkInterfaces?: { accessConfigs?: { natIP?: string; name?: string; type?: string }[] }[];
};

/** A persistent disk: it outlives its instance unless autoDelete was set. */
export interface FakeDisk {
  name: string;
  id: string;
  sizeGb: string;
  sourceImage: string;
  /** the instance it is attached to, or undefined once that is gone */
  users: string | undefined;
}

export interface FakeOperation {
  kind: 'compute#operation';
  id: string;
  name: string;
  zone: string;
  operationType: string;
  targetLink: string;
  targetId: string;
  status: 'PENDING' | 'RUNNING' | 'DONE';
  user: string;
  progress: number;
  insertTime: string;
  startTime?: string;
  endTime?: string;
  selfLink: string;
  error?: { errors: { code: string; message: string }[] };
  httpErrorStatusCode?: number;
  httpErrorMessage?: string;
}

export interface FakeRequest {
  method: string;
  path: string;
  /** the status answered (0 when the answer was dropped) */
  status: number;
}

export interface FakeGcpComputeOptions {
  project?: string;
  /** each operation step (PENDING -> RUNNING -> DONE) takes this long, ms (default 30) */
  stepMs?: number;
  /** how long operations/wait holds before it answers a not-yet-DONE operation, ms (the real API: up to 2 min; default 1000) */
  waitCapMs?: number;
}

export interface FakeGcpCompute {
  /** for the client: { apiEndpoint, port, protocol } */
  endpoint: { apiEndpoint: string; port: number; protocol: 'http' };
  project: string;
  /** a service-account key (JSON text) the fake accepts, as GCP_CREDENTIALS or in a GOOGLE_APPLICATION_CREDENTIALS file */
  credentialsJson: string;
  instance(zone: string, name: string): FakeInstance | undefined;
  instances(): FakeInstance[];
  disks(): FakeDisk[];
  operations(): FakeOperation[];
  requests: FakeRequest[];
  /** the next `count` API calls matching `match` (method and path, e.g. /POST .*\/instances$/) answer `status` with Google's error body, and do nothing */
  failNext(count: number, status: 429 | 500 | 502 | 503 | 504, match?: RegExp): void;
  /** the next call matching `match` takes effect, then its connection is destroyed before any answer (an answer lost on the way) */
  dropNextAnswer(match: RegExp): void;
  /** the next operation of this type ('insert', 'start', ...) ends DONE with this error, and has no effect */
  failNextOperation(operationType: string, error: { code: string; message: string; httpStatus?: number }): void;
  /** the next operation of this type stays RUNNING until the fake closes (a cloud that is slow, or stuck) */
  stallNextOperation(operationType: string): void;
  /** the next operation of this type takes `stepMs` per step (PENDING -> RUNNING -> DONE) instead of the fake's stepMs: a slow cloud that gets there */
  slowNextOperation(operationType: string, stepMs: number): void;
  /** the instance is deleted behind the provider's back (in the console, by another tool), its disks with it */
  remove(zone: string, name: string): void;
  /** a spot preemption: the instance moves to `status` (TERMINATED, as GCE reports a stopped VM, or STOPPED), its external IP released and its disk kept; with instanceTerminationAction DELETE it is deleted instead */
  preempt(zone: string, name: string, status?: 'TERMINATED' | 'STOPPED'): void;
  close(): Promise<void>;
}

function googleError(code: number, message: string, reason: string, status: string): unknown {
  return { error: { code, message, errors: [{ message, domain: 'global', reason }], status } };
}

const ERROR_FOR: Record<number, { reason: string; status: string; message: string }> = {
  429: { reason: 'rateLimitExceeded', status: 'RESOURCE_EXHAUSTED', message: "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com'." },
  500: { reason: 'backendError', status: 'INTERNAL', message: 'Internal error. Please try again or contact Google Support.' },
  502: { reason: 'backendError', status: 'UNAVAILABLE', message: 'Bad Gateway' },
  503: { reason: 'backendError', status: 'UNAVAILABLE', message: 'The service is currently unavailable.' },
  504: { reason: 'backendError', status: 'DEADLINE_EXCEEDED', message: 'Deadline exceeded.' },
};

const NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

function base64url(s: string): Buffer {
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

export async function startFakeGcpCompute(options: FakeGcpComputeOptions = {}): Promise<FakeGcpCompute> {
  const project = options.project ?? 'standby-test-project';
  const stepMs = options.stepMs ?? 30;
  const waitCapMs = options.waitCapMs ?? 1_000;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const clientEmail = `standby-proxy@${project}.iam.gserviceaccount.com`;
  const keyId = randomBytes(20).toString('hex');
  const credentialsJson = JSON.stringify({
    type: 'service_account',
    project_id: project,
    private_key_id: keyId,
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: clientEmail,
    client_id: '100000000000000000001',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: 'https://oauth2.googleapis.com/token',
  });
  const trusted = new Map<string, KeyObject>([[clientEmail, createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }))]]);

  const instances = new Map<string, FakeInstance>(); // key: zone/name
  const disks = new Map<string, FakeDisk>(); // key: zone/name
  const operations = new Map<string, FakeOperation>(); // key: zone/name
  const byRequestId = new Map<string, FakeOperation>();
  const requests: FakeRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const failures: { count: number; status: 429 | 500 | 502 | 503 | 504; match: RegExp | undefined }[] = [];
  const drops: RegExp[] = [];
  const opFailures = new Map<string, { code: string; message: string; httpStatus?: number }>();
  const opStalls = new Set<string>();
  const opSlow = new Map<string, number>();
  let seq = 1000;
  const nextId = () => String(BigInt(seq++) * 7919n + 5_000_000_000_000_000n);
  let ipSeq = 1;
  const nextIp = () => `203.0.113.${(ipSeq++ % 250) + 1}`;
  const zoneUrl = (zone: string) => `${API}/projects/${project}/zones/${zone}`;
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  /** Checks the bearer token: a JWT signed RS256 by a trusted service account, for Compute, not expired. */
  function authenticated(req: IncomingMessage): boolean {
    const m = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(req.headers.authorization ?? '');
    if (!m) return false;
    try {
      const header = JSON.parse(base64url(m[1]!).toString('utf8')) as { alg?: string };
      const claims = JSON.parse(base64url(m[2]!).toString('utf8')) as { iss?: string; aud?: string; scope?: string; exp?: number };
      const key = claims.iss ? trusted.get(claims.iss) : undefined;
      if (header.alg !== 'RS256' || !key) return false;
      if (!createVerify('RSA-SHA256').update(`${m[1]}.${m[2]}`).verify(key, base64url(m[3]!))) return false;
      if (claims.aud !== AUDIENCE && !/\bcompute\b|cloud-platform/.test(claims.scope ?? '')) return false;
      return typeof claims.exp === 'number' && claims.exp * 1000 > Date.now();
    } catch {
      return false;
    }
  }

  function newOperation(zone: string, type: string, target: string, targetId: string): FakeOperation {
    const name = `operation-${Date.now()}-${randomBytes(6).toString('hex')}-${randomBytes(4).toString('hex')}`;
    const op: FakeOperation = {
      kind: 'compute#operation',
      id: nextId(),
      name,
      zone: zoneUrl(zone),
      operationType: type,
      targetLink: `${zoneUrl(zone)}/instances/${target}`,
      targetId,
      status: 'PENDING',
      user: clientEmail,
      progress: 0,
      insertTime: new Date().toISOString(),
      selfLink: `${zoneUrl(zone)}/operations/${name}`,
    };
    operations.set(`${zone}/${name}`, op);
    return op;
  }

  /** Runs an operation: RUNNING after one step (onRunning), DONE after two (onDone), or DONE with the error a test asked for. */
  function run(op: FakeOperation, onRunning: () => void, onDone: () => void, onFailed: () => void = () => {}): void {
    const failure = opFailures.get(op.operationType);
    if (failure) opFailures.delete(op.operationType);
    const stall = opStalls.delete(op.operationType);
    const step = opSlow.get(op.operationType) ?? stepMs;
    opSlow.delete(op.operationType);
    later(step, () => {
      op.status = 'RUNNING';
      op.progress = 50;
      op.startTime = new Date().toISOString();
      if (!failure) onRunning();
      if (stall) return;
      later(step, () => {
        op.status = 'DONE';
        op.progress = 100;
        op.endTime = new Date().toISOString();
        if (failure) {
          op.error = { errors: [{ code: failure.code, message: failure.message }] };
          op.httpErrorStatusCode = failure.httpStatus ?? 400;
          op.httpErrorMessage = failure.httpStatus === 503 ? 'SERVICE UNAVAILABLE' : 'BAD REQUEST';
          onFailed();
        } else onDone();
      });
    });
  }

  function dropInstance(zone: string, inst: FakeInstance): void {
    instances.delete(`${zone}/${inst.name}`);
    for (const d of inst.disks) {
      const diskName = String(d.source ?? '').split('/').pop()!;
      const disk = disks.get(`${zone}/${diskName}`);
      if (!disk) continue;
      if (d.autoDelete) disks.delete(`${zone}/${diskName}`);
      else disk.users = undefined;
    }
  }

  const setNatIp = (inst: FakeInstance, ip: string | undefined) => {
    for (const nic of inst.networkInterfaces ?? []) for (const ac of nic.accessConfigs ?? []) {
      if (ip) ac.natIP = ip;
      else delete ac.natIP;
    }
  };

  /** The 400 the real API gives for an instance body it refuses, or undefined when it is acceptable. */
  function invalidInstance(zone: string, body: FakeInstance): string | undefined {
    if (typeof body.name !== 'string' || !NAME.test(body.name)) return `Invalid value for field 'resource.name': '${String(body.name)}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`;
    if (typeof body['machineType'] !== 'string' || !new RegExp(`(^|/)zones/${zone}/machineTypes/[a-z0-9-]+$`).test(body['machineType'])) return `Invalid value for field 'resource.machineType': '${String(body['machineType'])}'. Machine type must be in zone ${zone}.`;
    const boot = (body.disks ?? []).filter((d) => d.boot);
    if (boot.length !== 1 || !boot[0]!.initializeParams?.['sourceImage']) return "Invalid value for field 'resource.disks': exactly one boot disk with initializeParams.sourceImage is required.";
    for (const [k, v] of Object.entries(body.labels ?? {})) {
      if (!LABEL_KEY.test(k) || !LABEL_VALUE.test(v)) return `Invalid value for field 'resource.labels': '${k}: ${v}'. Label keys and values may hold lowercase letters, digits, '_' and '-'.`;
    }
    const s = body.scheduling ?? {};
    if (s.provisioningModel === 'SPOT' && (s.automaticRestart === true || s.onHostMaintenance === 'MIGRATE')) return 'Invalid value for field \'resource.scheduling\': Spot VMs must have onHostMaintenance TERMINATE and automaticRestart false.';
    if (s.instanceTerminationAction && s.provisioningModel !== 'SPOT') return "Invalid value for field 'resource.scheduling.instanceTerminationAction': only Spot VMs take an instanceTerminationAction.";
    const keys = (body.metadata?.items ?? []).map((i) => i.key);
    if (new Set(keys).size !== keys.length) return "Invalid value for field 'resource.metadata': duplicate keys.";
    return undefined;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, send: (status: number, body: unknown) => void): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/(instances|operations)(?:\/([^/]+))?(?:\/(start|stop|wait))?$/.exec(url.pathname);
    if (!m) return send(404, googleError(404, `The requested URL ${url.pathname} was not found on this server.`, 'notFound', 'NOT_FOUND'));
    const [, proj, zone, kind, name, verb] = m as unknown as [string, string, string, string, string | undefined, string | undefined];
    if (proj !== project) return send(404, googleError(404, `The resource 'projects/${proj}' was not found`, 'notFound', 'NOT_FOUND'));
    const key = `${zone}/${name}`;
    const notFound = (what: string) => send(404, googleError(404, `The resource 'projects/${project}/zones/${zone}/${what}/${name}' was not found`, 'notFound', 'NOT_FOUND'));

    if (kind === 'operations') {
      const op = operations.get(key);
      if (!name || !op) return notFound('operations');
      if (req.method === 'GET' && !verb) return send(200, op);
      if (req.method === 'POST' && verb === 'wait') {
        const until = performance.now() + waitCapMs;
        // bounded: the real wait answers within 2 min whatever the state
        for (let i = 0; op.status !== 'DONE' && performance.now() < until && i < 10_000 && !res.destroyed; i++) await new Promise((r) => setTimeout(r, 5));
        return send(200, op);
      }
      return send(405, googleError(405, 'Method not allowed', 'httpMethodNotAllowed', 'INVALID_ARGUMENT'));
    }

    // instances
    if (!name) {
      if (req.method === 'GET') {
        let items = [...instances.entries()].filter(([k]) => k.startsWith(`${zone}/`)).map(([, v]) => v);
        const filter = url.searchParams.get('filter');
        if (filter) {
          // the one form the provider sends: labels.KEY = "VALUE" (or unquoted)
          const f = /^labels\.([a-z0-9_-]+)\s*=\s*"?([a-z0-9_-]*)"?$/.exec(filter.trim());
          if (!f) return send(400, googleError(400, `Invalid value for field 'filter': '${filter}'. Invalid list filter expression.`, 'invalid', 'INVALID_ARGUMENT'));
          items = items.filter((i) => i.labels?.[f[1]!] === f[2]);
        }
        return send(200, { kind: 'compute#instanceList', id: `projects/${project}/zones/${zone}/instances`, items, selfLink: `${zoneUrl(zone)}/instances` });
      }
      if (req.method === 'POST') {
        const requestId = url.searchParams.get('requestId');
        const seen = requestId ? byRequestId.get(requestId) : undefined;
        if (seen) return send(200, seen);
        let body: FakeInstance;
        try {
          body = JSON.parse(await readBody(req)) as FakeInstance;
        } catch {
          return send(400, googleError(400, 'Invalid JSON payload received.', 'parseError', 'INVALID_ARGUMENT'));
        }
        const invalid = invalidInstance(zone, body);
        if (invalid) return send(400, googleError(400, invalid, 'invalid', 'INVALID_ARGUMENT'));
        if (instances.has(`${zone}/${body.name}`)) return send(409, googleError(409, `The resource 'projects/${project}/zones/${zone}/instances/${body.name}' already exists`, 'alreadyExists', 'ALREADY_EXISTS'));
        const id = nextId();
        const inst: FakeInstance = {
          ...body,
          kind: 'compute#instance',
          id,
          creationTimestamp: new Date().toISOString(),
          status: 'PROVISIONING',
          zone: zoneUrl(zone),
          machineType: `${zoneUrl(zone)}/machineTypes/${String(body['machineType']).split('/').pop()}`,
          selfLink: `${zoneUrl(zone)}/instances/${body.name}`,
          labelFingerprint: randomBytes(8).toString('base64'),
          disks: body.disks.map((d, index) => {
            const diskName = (d.initializeParams?.['diskName'] as string | undefined) ?? body.name;
            const sizeGb = String(d.initializeParams?.['diskSizeGb'] ?? '10');
            disks.set(`${zone}/${diskName}`, { name: diskName, id: nextId(), sizeGb, sourceImage: String(d.initializeParams?.['sourceImage']), users: body.name });
            return { kind: 'compute#attachedDisk', type: 'PERSISTENT', mode: 'READ_WRITE', index, deviceName: diskName, boot: d.boot ?? false, autoDelete: d.autoDelete ?? false, interface: 'SCSI', diskSizeGb: sizeGb, source: `${zoneUrl(zone)}/disks/${diskName}` };
          }),
          networkInterfaces: (body.networkInterfaces ?? [{}]).map((n, i) => ({
            kind: 'compute#networkInterface',
            name: `nic${i}`,
            network: `${API}/projects/${project}/global/networks/default`,
            networkIP: `10.132.0.${i + 2}`,
            accessConfigs: (n.accessConfigs ?? []).map((a) => ({ kind: 'compute#accessConfig', type: 'ONE_TO_ONE_NAT', name: a.name ?? 'External NAT', networkTier: 'PREMIUM' })),
          })),
        };
        instances.set(`${zone}/${body.name}`, inst);
        const op = newOperation(zone, 'insert', body.name, id);
        if (requestId) byRequestId.set(requestId, op);
        run(
          op,
          () => void (inst.status = 'STAGING'),
          () => {
            inst.status = 'RUNNING';
            inst['lastStartTimestamp'] = new Date().toISOString();
            setNatIp(inst, nextIp());
          },
          () => dropInstance(zone, inst),
        );
        return send(200, op);
      }
      return send(405, googleError(405, 'Method not allowed', 'httpMethodNotAllowed', 'INVALID_ARGUMENT'));
    }

    const inst = instances.get(key);
    if (!inst) return notFound('instances');
    if (req.method === 'GET' && !verb) return send(200, inst);
    const requestId = url.searchParams.get('requestId');
    const seen = requestId ? byRequestId.get(requestId) : undefined;
    if (seen) return send(200, seen);
    let op: FakeOperation;
    if (req.method === 'POST' && verb === 'start') {
      op = newOperation(zone, 'start', inst.name, inst.id);
      // starting a running instance is a no-op that still yields an operation, as on GCE
      if (inst.status === 'TERMINATED' || inst.status === 'STOPPED') {
        run(
          op,
          () => void (inst.status = 'STAGING'),
          () => {
            inst.status = 'RUNNING';
            inst['lastStartTimestamp'] = new Date().toISOString();
            setNatIp(inst, nextIp());
          },
        );
      } else run(op, () => {}, () => {});
    } else if (req.method === 'POST' && verb === 'stop') {
      op = newOperation(zone, 'stop', inst.name, inst.id);
      run(
        op,
        () => void (inst.status = 'STOPPING'),
        () => {
          inst.status = 'TERMINATED';
          inst['lastStopTimestamp'] = new Date().toISOString();
          setNatIp(inst, undefined);
        },
      );
    } else if (req.method === 'DELETE' && !verb) {
      op = newOperation(zone, 'delete', inst.name, inst.id);
      run(
        op,
        () => void (inst.status = 'STOPPING'),
        () => dropInstance(zone, inst),
      );
    } else return send(405, googleError(405, 'Method not allowed', 'httpMethodNotAllowed', 'INVALID_ARGUMENT'));
    if (requestId) byRequestId.set(requestId, op);
    send(200, op);
  }

  const server = createServer((req, res) => {
    res.on('error', () => {});
    req.on('error', () => {});
    const entry: FakeRequest = { method: req.method ?? '', path: req.url ?? '', status: 0 };
    requests.push(entry);
    const line = `${req.method} ${new URL(req.url ?? '/', 'http://fake').pathname}`;
    const dropIndex = drops.findIndex((d) => d.test(line));
    const drop = dropIndex >= 0;
    if (drop) drops.splice(dropIndex, 1);
    const send = (status: number, body: unknown) => {
      if (drop) {
        // the call took effect; its answer never arrives
        req.socket.destroy();
        return;
      }
      entry.status = status;
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (!authenticated(req)) {
      req.resume();
      return send(401, googleError(401, 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.', 'authError', 'UNAUTHENTICATED'));
    }
    const failure = failures.find((f) => f.count > 0 && (!f.match || f.match.test(line)));
    if (failure) {
      failure.count--;
      req.resume();
      const e = ERROR_FOR[failure.status]!;
      return send(failure.status, googleError(failure.status, e.message, e.reason, e.status));
    }
    handle(req, res, send).catch((err: unknown) => send(500, googleError(500, `fake: ${(err as Error).message}`, 'backendError', 'INTERNAL')));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;

  return {
    endpoint: { apiEndpoint: '127.0.0.1', port, protocol: 'http' },
    project,
    credentialsJson,
    instance: (zone, name) => instances.get(`${zone}/${name}`),
    instances: () => [...instances.values()],
    disks: () => [...disks.values()],
    operations: () => [...operations.values()],
    requests,
    failNext: (count, status, match) => void failures.push({ count, status, match }),
    dropNextAnswer: (match) => void drops.push(match),
    failNextOperation: (type, error) => void opFailures.set(type, error),
    stallNextOperation: (type) => void opStalls.add(type),
    slowNextOperation: (type, ms) => void opSlow.set(type, ms),
    remove(zone, name) {
      const inst = instances.get(`${zone}/${name}`);
      if (!inst) throw new Error(`fake GCP: no instance ${zone}/${name} to remove`);
      for (const d of inst.disks) d.autoDelete = true;
      dropInstance(zone, inst);
    },
    preempt(zone, name, status = 'TERMINATED') {
      const inst = instances.get(`${zone}/${name}`);
      if (!inst) throw new Error(`fake GCP: no instance ${zone}/${name} to preempt`);
      if (inst.scheduling?.instanceTerminationAction === 'DELETE') return dropInstance(zone, inst);
      inst.status = status;
      inst['lastStopTimestamp'] = new Date().toISOString();
      setNatIp(inst, undefined);
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    let size = 0;
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      size += d.length;
      if (size > 1 << 20) req.destroy(new Error('body over 1 MiB'));
      else text += d;
    });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}
