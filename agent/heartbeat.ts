// The agent's side of the proxy protocol: one WebSocket to the proxy's
// /_standby/agent with the host's bearer token, a heartbeat every interval
// (sync state and code-server health, ages on this host's monotonic clock),
// the proxy's grants applied to the sync engine, and its sync requests
// answered. Reconnects with capped backoff; logs once per state change.
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import type { Logger } from '../core/log.ts';
import type { Problem } from '../protocol/admin-api.ts';
import { CLOSE_REVOKED, MAX_REPORTED_EXCLUDE_CHARS, MAX_REPORTED_EXCLUDES, parseProxyMessage, ProtocolError, type Heartbeat, type ProxyMessage } from '../protocol/messages.ts';
import { Backoff } from '../core/backoff.ts';
import type { AgentConfig } from '../config/agent.ts';
import type { SyncEngine } from './sync-engine.ts';
import type { Freezer } from './freeze.ts';
import type { Resumer } from './resume.ts';

type ProxySettings = NonNullable<AgentConfig['proxy']>;

/** The message of a refused upgrade's body: the proxy's {error: {code, message}}, or its text as it is (an older proxy). */
function refusalMessage(body: string): string {
  try {
    const message: unknown = (JSON.parse(body) as Partial<Problem> | null)?.error?.message;
    if (typeof message === 'string') return message;
  } catch {
    // not JSON: the text itself says why
  }
  return body.trim();
}

export class HeartbeatClient {
  #settings: ProxySettings;
  #hostId: string;
  #engine: SyncEngine;
  #log: Logger;
  #ws: WebSocket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #backoff = new Backoff(200, 5_000);
  #seq = 0;
  #closed = false;
  #state: 'connecting' | 'connected' | 'down' = 'connecting';
  #codeServer: { url: string; healthy: boolean; at: number | undefined } | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #verifying = false;
  /** a preemption notice in force (set by notice watchers) */
  preemption: { source: string; at: number } | undefined;
  /** grants received (tests, status) */
  grants = 0;
  /** the role last granted */
  role: 'primary' | 'fenced' | undefined;
  /** runs the checksum comparison the proxy may ask for (set by the daemon) */
  verifier: (() => Promise<readonly { root: string; path: string; kind: string }[]>) | undefined;
  /** why the proxy revoked this host's credentials, once it did: the agent no longer connects or pushes */
  revoked: string | undefined;
  /** the OpenSSH public key line the agent writes to granted targets with (set by the daemon): the first heartbeat of each connection carries it */
  publicKey: string | undefined;
  /** stops and continues the host's user processes on the proxy's freeze requests (set by the daemon); close() thaws it */
  freezer: Freezer | undefined;
  /** runs the resume command on a grant that says so (set by the daemon); heartbeats carry its state */
  resumer: Resumer | undefined;

  constructor(settings: ProxySettings, hostId: string, engine: SyncEngine, log: Logger, codeServerUrl?: string) {
    this.#settings = settings;
    this.#hostId = hostId;
    this.#engine = engine;
    this.#log = log;
    if (codeServerUrl) this.#codeServer = { url: codeServerUrl, healthy: false, at: undefined };
  }

  start(): void {
    this.#connect();
    if (this.#codeServer) this.#probeCodeServer();
  }

  /** The token now: proxy.tokenFile is read at every connect, so a rotated token needs no restart. */
  #token(): string | undefined {
    const file = this.#settings.tokenFile;
    if (file === undefined) return this.#settings.token;
    try {
      const t = readFileSync(file, 'utf8').trim();
      if (t !== '') return t;
      this.#down(`proxy.tokenFile ${file} is empty: put this host's agent token in it`);
    } catch (err) {
      this.#down(`cannot read proxy.tokenFile ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): put this host's agent token in it`);
    }
    return undefined;
  }

  #retryLater(): void {
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#connect();
    }, this.#backoff.next());
  }

  #connect(): void {
    if (this.#closed || this.revoked !== undefined) return;
    const token = this.#token();
    if (token === undefined) return this.#retryLater();
    const ws = new WebSocket(this.#settings.url, {
      headers: { authorization: `Bearer ${token}` },
      handshakeTimeout: 5_000,
      ...(this.#settings.caFile ? { ca: readFileSync(this.#settings.caFile) } : {}),
    });
    this.#ws = ws;
    ws.on('unexpected-response', (_req, res) => {
      if (res.statusCode === 403) {
        // the body says why; read it before the socket goes
        let body = '';
        const done = () => {
          this.#onRevoked(refusalMessage(body) || 'the proxy answered 403');
          ws.terminate();
        };
        res.on('data', (d: Buffer) => (body = (body + d.toString()).slice(0, 4_096)));
        res.once('end', done);
        res.once('close', done);
        res.once('error', done);
        return;
      }
      const why = res.statusCode === 401 ? 'the proxy refused the agent token (401): check proxy.token (or proxy.tokenFile) against the token the proxy issued this host (standby hosts lists them)' : `the proxy answered HTTP ${res.statusCode}`;
      this.#down(why);
      ws.terminate();
    });
    ws.on('open', () => {
      this.#backoff.reset();
      if (this.#state !== 'connected') this.#log.info({ url: this.#settings.url }, 'connected to the proxy');
      this.#state = 'connected';
      this.#beat({ first: true });
      this.#timer = setInterval(() => this.#beat(), this.#settings.heartbeatIntervalMs);
    });
    ws.on('message', (data, isBinary) => {
      try {
        if (isBinary) throw new ProtocolError('binary frame from the proxy');
        this.#onMessage(parseProxyMessage(data as Buffer));
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.#log.warn({ reason: err.message }, 'the proxy sent a message this agent does not understand: ignored');
      }
    });
    ws.on('error', (err) => this.#down(err.message));
    ws.on('close', (code, reason) => {
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = undefined;
      if (this.#ws === ws) this.#ws = undefined;
      if (code === CLOSE_REVOKED) return this.#onRevoked(reason.toString() || 'revoked');
      if (this.revoked !== undefined) return; // the socket of a refused upgrade (403) closing: already said, and nothing goes on
      this.#down(`connection closed (${code}${reason.length ? `: ${reason.toString()}` : ''})`);
      this.#retryLater();
    });
  }

  /** Revoked by the proxy (fenced by a failover, or removed by the admin): stop pushing and stop connecting, for good. */
  #onRevoked(why: string): void {
    if (this.#closed || this.revoked !== undefined) return;
    this.revoked = why;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
    this.role = 'fenced';
    this.#engine.grant('fenced', this.#engine.epoch ?? 0, `credentials revoked: ${why}`);
    this.#log.error({ why }, "the proxy revoked this host's credentials: it no longer syncs or connects; to use this host again, enroll it anew (standby hosts add ID on the proxy, then the install line it prints)");
  }

  #down(why: string): void {
    // revoked: sync does not go on under any grant, and the agent does not retry
    if (this.#closed || this.revoked !== undefined) return;
    if (this.#state !== 'down') this.#log.warn({ url: this.#settings.url, why }, 'proxy unreachable: retrying with backoff (sync goes on under the last grant)');
    this.#state = 'down';
  }

  #onMessage(message: ProxyMessage): void {
    if (this.revoked !== undefined) return; // nothing a revoked host's socket still carries may make it push
    if (message.type === 'grant') {
      this.grants++;
      this.role = message.role;
      this.#engine.grant(message.role, message.epoch, message.reason, message.target);
      // every grant carries the whole set the proxy pushes: none is agent.json's own again
      this.#engine.applySettings(message.settings);
      this.resumer?.granted(message);
      return;
    }
    if (message.type === 'confirm-deletes') {
      const { deletions } = this.#engine.confirmDeletes();
      const ws = this.#ws;
      if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'deletes-confirmed', id: message.id, deletions }));
      return;
    }
    if (message.type === 'verify') return this.#verify(message.id);
    if (message.type === 'freeze') return this.#freeze(message.id, message.frozen, message.maxMs);
    if (message.type === 'conflicts') {
      void this.#engine.copyConflicts(message.path).then((outcome) => {
        const ws = this.#ws;
        if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'conflicts-sent', id: message.id, ...outcome }));
      });
      return;
    }
    void this.#engine.syncNow(30_000).then((r) => {
      const ws = this.#ws;
      if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'synced', id: message.id, watermark: r.watermark, ok: r.ok, error: r.error }));
    });
  }

  /** `standby verify --proxy`: the comparison runs here (the proxy has no copy) and its result goes back under the request's id. */
  #verify(id: string): void {
    const reply = (answer: object): void => {
      const ws = this.#ws;
      if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'verified', id, ...answer }));
    };
    if (!this.verifier) return reply({ ok: false, total: 0, differences: [], error: 'this agent cannot verify' });
    // one at a time: each reads the whole workspace on both ends
    if (this.#verifying) return reply({ ok: false, total: 0, differences: [], error: 'a verify is already running on this host: try again when it is done' });
    this.#verifying = true;
    this.verifier().finally(() => (this.#verifying = false)).then(
      (diffs) => reply({ ok: true, total: diffs.length, differences: diffs.slice(0, 1000).map((d) => ({ root: d.root, path: d.path, kind: d.kind })), error: null }),
      (err: unknown) => reply({ ok: false, total: 0, differences: [], error: (err instanceof Error ? err.message : String(err)).slice(0, 2000) }),
    );
  }

  /** A switch back's freeze (or its lift): answered under the request's id with the state now. */
  #freeze(id: string, frozen: boolean, maxMs: number | undefined): void {
    const reply = (answer: object): void => {
      const ws = this.#ws;
      if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'frozen', id, ...answer }));
    };
    const freezer = this.freezer;
    if (!freezer) return reply({ ok: false, frozen: false, processes: 0, error: 'this agent cannot freeze' });
    if (!frozen) return reply(freezer.thaw('the proxy lifted the freeze'));
    freezer.freeze(maxMs).then(reply, (err: unknown) => reply({ ok: false, frozen: freezer.frozen, processes: 0, error: (err instanceof Error ? err.message : String(err)).slice(0, 2000) }));
  }

  heartbeat(): Heartbeat {
    const s = this.#engine.status();
    const now = performance.now();
    const codeServer = this.#codeServer;
    return {
      type: 'heartbeat',
      hostId: this.#hostId,
      epoch: this.#engine.epoch ?? 0,
      seq: ++this.#seq,
      sync: {
        watermark: s.watermark,
        lastSeq: s.lastSeq,
        pending: s.outstandingPaths,
        oldestPendingAgeMs: s.oldestOutstandingAgeMs,
        lastPassAgeMs: s.lastPassAgeMs,
        ready: s.ready,
        held: s.held !== null,
        lastError: s.lastError ? s.lastError.message.slice(0, 2000) : null,
        target: s.destination?.target ?? null,
        progress: s.progress,
        ...(s.settings ? {
          settings: {
            delayMs: s.settings.delayMs,
            maxDelayMs: s.settings.maxDelayMs,
            exclude: s.settings.exclude.slice(0, MAX_REPORTED_EXCLUDES).map((p) => p.slice(0, MAX_REPORTED_EXCLUDE_CHARS)),
            excludeCount: s.settings.exclude.length,
            pushed: s.settings.pushed,
          },
        } : {}),
      },
      codeServer: { healthy: codeServer?.healthy ?? false, checkedAgeMs: codeServer?.at === undefined ? null : Math.round(now - codeServer.at) },
      preemption: this.preemption ? { source: this.preemption.source, ageMs: Math.round(now - this.preemption.at) } : null,
      frozen: this.freezer?.frozen ?? false,
      resume: this.resumer?.view() ?? null,
    };
  }

  #beat({ first = false } = {}): void {
    const ws = this.#ws;
    if (ws?.readyState !== WebSocket.OPEN) return;
    const beat = this.heartbeat();
    if (first && this.publicKey !== undefined) beat.publicKey = this.publicKey;
    ws.send(JSON.stringify(beat));
  }

  /** A heartbeat now (the resume command started or ended: the proxy hears it without waiting a period). */
  beatNow(): void {
    this.#beat();
  }

  /** A preemption notice: carried by every heartbeat from now on, the first sent at once. */
  notice(source: string): void {
    this.preemption ??= { source, at: performance.now() };
    this.#beat();
  }

  #probeCodeServer(): void {
    const codeServer = this.#codeServer;
    if (!codeServer || this.#closed) return;
    const every = this.#settings.heartbeatIntervalMs;
    fetch(codeServer.url, { signal: AbortSignal.timeout(Math.max(200, every)) })
      .then((res) => {
        codeServer.healthy = res.status < 500;
        void res.body?.cancel();
      }, () => {
        codeServer.healthy = false;
      })
      .finally(() => {
        codeServer.at = performance.now();
        if (!this.#closed) this.#probeTimer = setTimeout(() => this.#probeCodeServer(), every);
      });
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#retry) clearTimeout(this.#retry);
    if (this.#probeTimer) clearTimeout(this.#probeTimer);
    this.#ws?.terminate();
    this.freezer?.close(); // a frozen code-server never outlives its agent frozen
    this.resumer?.close(); // its timers only: the command outlives the agent
  }
}
