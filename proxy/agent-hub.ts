// The agents' WebSocket endpoint (/_standby/agent): bearer token checked
// before the upgrade (throttled per address), each message validated, each
// heartbeat checked against what the proxy knows (heartbeat-check.ts: a
// replayed, out-of-order or wrongly-epoched one is dropped, never liveness),
// accepted heartbeats recorded with the time they arrived on this proxy's
// monotonic clock and answered with the role the proxy grants.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { bearerToken } from '../protocol/auth.ts';
import {
  CLOSE_PROTOCOL_ERROR,
  CLOSE_REPLACED,
  CLOSE_REVOKED,
  CLOSE_TOKEN_EXPIRED,
  ProtocolError,
  closeReason,
  parseAgentMessage,
  type ConfirmDeletesRequest,
  type ConflictsRequest,
  type ConflictsSent,
  type DeletesConfirmed,
  type PushedSettings,
  type FreezeRequest,
  type Frozen,
  type Grant,
  type Heartbeat,
  type PushTarget,
  type Role,
  type SyncRequest,
  type Synced,
  type Verified,
  type VerifyRequest,
} from '../protocol/messages.ts';
import type { Logger } from '../core/log.ts';
import { rawTooMany, rawUnauthorized, type AuthThrottle } from './auth-throttle.ts';
import { rawProblem } from './problem.ts';
import { checkHeartbeat } from './heartbeat-check.ts';

export interface AgentRecord {
  hostId: string;
  connected: boolean;
  /** performance.now() of the last heartbeat, or of the proxy's start when none came yet */
  lastHeartbeatAt: number;
  /** performance.now() the connection closed, when it did */
  disconnectedAt: number | undefined;
  last: Heartbeat | undefined;
  heartbeats: number;
  /** protocol errors and refused connections, for the status */
  rejected: number;
  /** heartbeats dropped by the check (replayed, out of order, wrong epoch, inconsistent) */
  dropped: number;
  /** the epoch last granted to this host by this proxy process */
  grantedEpoch: number | undefined;
  /** the public key the agent writes with, as its heartbeats last gave it (a restore authorizes it on the new GPU) */
  publicKey: string | undefined;
  /**
   * why this host is fenced for good (a failover revoked its credentials): it may stay connected, granted
   * fenced whatever happens, its heartbeats shown but counted for nothing, until a recovery retires it
   * (its unsent changes copied to the standby's conflicts folder first) or the admin revokes it
   */
  fenced: string | undefined;
}

/** What a host is granted: its role and epoch, why, and for a restore the receiver it pushes to. */
export interface HubGrant {
  role: Role;
  epoch: number;
  reason: string;
  target?: PushTarget;
  /** a recovery's switch back to this host: it runs its resume command */
  resume?: true;
  /** the sync settings it applies (the serving agent's; absent fields: its own) */
  settings?: PushedSettings;
}

type Answer = Synced | Verified | Frozen | ConflictsSent | DeletesConfirmed;

/**
 * Who presents this token: a host (`until`: Date.now() when a retiring token
 * stops being accepted; `issued`: a token the proxy issued, too random to
 * guess), or why nobody may.
 */
export type Authentication = { hostId: string; until?: number; issued?: boolean; fenced?: string } | { refused: 'unknown' } | { refused: 'revoked'; hostId: string; why: string };

export interface HubHandlers {
  /** the host a bearer token belongs to (constant time, or by hash) */
  authenticate(token: string): Authentication;
  /** the role and epoch to grant this host now */
  grant(hostId: string): HubGrant;
  heartbeat?(hostId: string, hb: Heartbeat): void;
  disconnected?(hostId: string): void;
}

export class AgentHub {
  #wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  #log: Logger;
  #handlers: HubHandlers;
  #sockets = new Map<string, WebSocket>();
  #waiting = new Map<string, { type: Answer['type']; resolve: (s: Answer | undefined) => void; timer: NodeJS.Timeout }>();
  #throttle: AuthThrottle;
  /** per host: when a dropped heartbeat was last logged, and how many since */
  #dropLog = new Map<string, { at: number; unlogged: number; logged: number }>();
  readonly agents = new Map<string, AgentRecord>();
  refused = 0;

  /** `hostIds`: the hosts watched from the start (the configured ones), connected or not */
  constructor(hostIds: readonly string[], handlers: HubHandlers, throttle: AuthThrottle, log: Logger) {
    this.#handlers = handlers;
    this.#throttle = throttle;
    this.#log = log;
    for (const hostId of hostIds) this.#record(hostId);
  }

  #record(hostId: string): AgentRecord {
    let record = this.agents.get(hostId);
    if (!record) {
      record = { hostId, connected: false, lastHeartbeatAt: performance.now(), disconnectedAt: undefined, last: undefined, heartbeats: 0, rejected: 0, dropped: 0, grantedEpoch: undefined, publicKey: undefined, fenced: undefined };
      this.agents.set(hostId, record);
    }
    return record;
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // a refused client may reset before reading its 401/403: never an unhandled 'error'
    if (socket.listenerCount('error') === 0) socket.on('error', () => socket.destroy());
    const remote = this.#throttle.addressOf(req);
    const wait = this.#throttle.retryAfterMs(remote);
    const auth = this.#handlers.authenticate(bearerToken(req.headers.authorization) ?? '');
    // A locked-out address gets 429 for anything but an issued token: GPU hosts
    // share public addresses with other tenants (one address per machine on
    // spot markets), and a neighbour's failures must not keep our agent out;
    // an issued token is 192 random bits, which no lockout makes harder to
    // guess. Hand-set proxy.json tokens may be weak: they wait like the rest.
    if (wait > 0 && ('refused' in auth || auth.issued !== true)) {
      this.refused++;
      socket.end(rawTooMany(wait));
      return;
    }
    if ('refused' in auth) {
      this.refused++;
      if (auth.refused === 'revoked') {
        // the token was a real one (its host holds it): the host is told why, so it stops reconnecting
        this.#log.warn({ remote, hostId: auth.hostId }, 'agent connection refused: its credentials were revoked');
        socket.end(rawProblem('STANDBY_ERR_HOST_REVOKED', `revoked: the credentials of ${auth.hostId} were revoked (${auth.why}); this host may not sync any more. Enroll it again: standby hosts add ${auth.hostId}`, 'Forbidden'));
        return;
      }
      this.#throttle.failed(remote, 'agent');
      socket.end(rawUnauthorized());
      return;
    }
    if (wait === 0) this.#throttle.succeeded(remote);
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#attach(auth.hostId, ws, remote, auth.until, auth.fenced));
  }

  /** The host's credentials were revoked: it hears its grant (fenced) and its connection closes for good. */
  revoke(hostId: string, why: string): void {
    this.regrant(hostId);
    this.#sockets.get(hostId)?.close(CLOSE_REVOKED, closeReason(`revoked: ${why}`));
  }

  #attach(hostId: string, ws: WebSocket, remote: string, tokenUntil: number | undefined, fenced: string | undefined): void {
    const record = this.#record(hostId);
    record.fenced = fenced;
    // a retiring token (rotated) keeps its connection only while it is valid; the agent then reconnects with its new one
    const expiry = tokenUntil === undefined ? undefined : setTimeout(() => {
      this.#log.info({ hostId }, 'the retired agent token this connection used has expired: closing it (the agent reconnects with its new token)');
      ws.close(CLOSE_TOKEN_EXPIRED, 'token expired: reconnect with the new token');
    }, Math.max(0, Math.min(tokenUntil - Date.now(), 2 ** 31 - 1)));
    /** the last heartbeat accepted on this connection */
    let previous: Heartbeat | undefined;
    const before = this.#sockets.get(hostId);
    if (before) before.close(CLOSE_REPLACED, 'replaced by a newer connection of the same host');
    this.#sockets.set(hostId, ws);
    record.connected = true;
    record.disconnectedAt = undefined;
    this.#log.info({ hostId, remote }, 'agent connected');
    ws.on('message', (data, isBinary) => {
      try {
        if (isBinary) throw new ProtocolError('binary frames are not part of the protocol');
        const msg = parseAgentMessage(data as Buffer);
        if (msg.type === 'heartbeat') {
          if (msg.hostId !== hostId) throw new ProtocolError(`heartbeat names host ${JSON.stringify(msg.hostId).slice(0, 40)} but the token is ${hostId}'s`);
          const current = this.#handlers.grant(hostId).epoch;
          const verdict = checkHeartbeat(msg, { previous, epoch: current, lastGranted: record.grantedEpoch });
          if (!verdict.accept) {
            if (verdict.kind === 'impossible-epoch') throw new ProtocolError(verdict.reason);
            record.dropped++;
            this.#logDropped(hostId, verdict.kind, verdict.reason);
            // a stale epoch hears the current grant: a fenced agent must learn it is fenced
            if (verdict.kind === 'stale-epoch') this.#send(ws, { type: 'grant', ...this.#grantFor(record), heartbeatSeq: msg.seq });
            return;
          }
          previous = msg;
          this.#onHeartbeat(record, ws, msg);
        } else {
          const w = this.#waiting.get(msg.id);
          if (w && w.type === msg.type) { // an answer of the other kind under a pending id answers nothing
            clearTimeout(w.timer);
            this.#waiting.delete(msg.id);
            w.resolve(msg);
          }
        }
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        record.rejected++;
        this.#log.warn({ hostId, reason: err.message }, 'agent sent a malformed message: closing its connection');
        ws.close(CLOSE_PROTOCOL_ERROR, closeReason(err.message));
      }
    });
    ws.on('error', (err) => this.#log.debug({ hostId, err: err.message }, 'agent socket error'));
    ws.on('close', () => {
      if (expiry) clearTimeout(expiry);
      if (this.#sockets.get(hostId) !== ws) return;
      this.#sockets.delete(hostId);
      record.connected = false;
      record.disconnectedAt = performance.now();
      this.#log.info({ hostId }, 'agent disconnected');
      this.#handlers.disconnected?.(hostId);
    });
  }

  #onHeartbeat(record: AgentRecord, ws: WebSocket, hb: Heartbeat): void {
    record.lastHeartbeatAt = performance.now();
    record.last = hb;
    record.heartbeats++;
    if (hb.publicKey !== undefined) record.publicKey = hb.publicKey;
    // a host fenced for good says how it is (and what it holds unsent), but its word moves nothing
    if (record.fenced === undefined) this.#handlers.heartbeat?.(record.hostId, hb);
    this.#send(ws, { type: 'grant', ...this.#grantFor(record), heartbeatSeq: hb.seq });
  }

  /** The grant for a host now, remembered as the epoch last granted to it. */
  #grantFor(record: AgentRecord): HubGrant {
    const g = this.#handlers.grant(record.hostId);
    record.grantedEpoch = g.epoch;
    return record.fenced === undefined ? g : { role: 'fenced', epoch: g.epoch, reason: record.fenced };
  }

  /** Sampled: a host's first 3 dropped heartbeats, then one line a minute with the count. */
  #logDropped(hostId: string, kind: string, reason: string): void {
    const now = performance.now();
    let d = this.#dropLog.get(hostId);
    if (!d) this.#dropLog.set(hostId, (d = { at: -Infinity, unlogged: 0, logged: 0 }));
    if (d.logged < 3 || now - d.at >= 60_000) {
      this.#log.warn({ hostId, kind, reason, droppedSinceLastLine: d.unlogged }, 'heartbeat dropped: it does not agree with what the proxy knows');
      d.at = now;
      d.unlogged = 0;
      d.logged++;
    } else {
      d.unlogged++;
    }
  }

  #send(ws: WebSocket, msg: Grant | SyncRequest | VerifyRequest | FreezeRequest | ConflictsRequest | ConfirmDeletesRequest): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  }

  /**
   * A failover fenced this host for good (its credentials revoked on the standby): it stays connected if it
   * is, granted fenced from now on, until revoke() (a recovery retiring it, or the admin) closes it.
   */
  fence(hostId: string, why: string): void {
    this.#record(hostId).fenced = why;
    this.regrant(hostId);
  }

  /** Tells a connected host its role now (after a failover), without waiting for its next heartbeat. */
  regrant(hostId: string): void {
    const ws = this.#sockets.get(hostId);
    const record = this.agents.get(hostId);
    if (ws && record) this.#send(ws, { type: 'grant', ...this.#grantFor(record), heartbeatSeq: null });
  }

  /** Asks the host's agent for a pass now; resolves with its answer, or undefined if it is not connected or too slow. */
  requestSync(hostId: string, timeoutMs: number): Promise<Synced | undefined> {
    return this.#request(hostId, 'sync-now', 'synced', timeoutMs) as Promise<Synced | undefined>;
  }

  /** Asks the host's agent to compare its workspace with the standby's copy (standby verify --proxy); undefined if it is not connected or too slow. */
  requestVerify(hostId: string, timeoutMs: number): Promise<Verified | undefined> {
    return this.#request(hostId, 'verify', 'verified', timeoutMs) as Promise<Verified | undefined>;
  }

  /** Asks the host's agent to stop (frozen: true) or continue its user processes; undefined if it is not connected or too slow. */
  requestFreeze(hostId: string, frozen: boolean, timeoutMs: number, maxMs?: number): Promise<Frozen | undefined> {
    return this.#request(hostId, 'freeze', 'frozen', timeoutMs, { frozen, ...(maxMs === undefined ? {} : { maxMs }) }) as Promise<Frozen | undefined>;
  }

  /** Asks a fenced host's agent to copy its unsent changes into `path`, the conflicts folder opened to its key on the standby; undefined if it is not connected or too slow. */
  requestConflicts(hostId: string, path: string, timeoutMs: number): Promise<ConflictsSent | undefined> {
    return this.#request(hostId, 'conflicts', 'conflicts-sent', timeoutMs, { path }) as Promise<ConflictsSent | undefined>;
  }

  /** Asks the host's agent to release the deletions its guard holds (the admin's confirmation); undefined if it is not connected or too slow. */
  requestConfirmDeletes(hostId: string, timeoutMs: number): Promise<DeletesConfirmed | undefined> {
    return this.#request(hostId, 'confirm-deletes', 'deletes-confirmed', timeoutMs) as Promise<DeletesConfirmed | undefined>;
  }

  #request(hostId: string, ask: 'sync-now' | 'verify' | 'freeze' | 'conflicts' | 'confirm-deletes', answer: Answer['type'], timeoutMs: number, extra: { frozen?: boolean; maxMs?: number; path?: string } = {}): Promise<Answer | undefined> {
    const ws = this.#sockets.get(hostId);
    if (!ws) return Promise.resolve(undefined);
    const id = `${ask}-${performance.now().toFixed(3)}-${Math.random().toString(36).slice(2, 8)}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.#waiting.set(id, { type: answer, resolve, timer });
      if (ask === 'freeze') this.#send(ws, { type: 'freeze', id, frozen: extra.frozen ?? true, ...(extra.maxMs === undefined ? {} : { maxMs: extra.maxMs }) });
      else if (ask === 'conflicts') this.#send(ws, { type: 'conflicts', id, path: extra.path ?? '' });
      else this.#send(ws, { type: ask, id });
    });
  }

  close(): void {
    // a request still waiting is answered "no answer": a failover waiting on its final pass must not hang the proxy's close
    for (const w of this.#waiting.values()) {
      clearTimeout(w.timer);
      w.resolve(undefined);
    }
    this.#waiting.clear();
    for (const ws of this.#sockets.values()) ws.terminate();
    this.#sockets.clear();
    this.#wss.close();
  }
}
