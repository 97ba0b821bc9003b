// The agents' WebSocket endpoint (/_standby/agent): bearer token checked
// before the upgrade, each message validated, heartbeats recorded with the
// time they arrived on this proxy's monotonic clock, and every heartbeat
// answered with the role the proxy grants.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { bearerToken } from '../protocol/auth.ts';
import {
  CLOSE_PROTOCOL_ERROR,
  CLOSE_REPLACED,
  CLOSE_REVOKED,
  ProtocolError,
  closeReason,
  parseAgentMessage,
  type Grant,
  type Heartbeat,
  type Role,
  type SyncRequest,
  type Synced,
  type Verified,
  type VerifyRequest,
} from '../protocol/messages.ts';
import type { Logger } from '../log.ts';

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
}

/** Who presents this token: a host, or why nobody may. */
export type Authentication = { hostId: string } | { refused: 'unknown' } | { refused: 'revoked'; hostId: string; why: string };

export interface HubHandlers {
  /** the host a bearer token belongs to (constant time, or by hash) */
  authenticate(token: string): Authentication;
  /** the role and epoch to grant this host now */
  grant(hostId: string): { role: Role; epoch: number; reason: string };
  heartbeat?(hostId: string, hb: Heartbeat): void;
  disconnected?(hostId: string): void;
}

export class AgentHub {
  #wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  #log: Logger;
  #handlers: HubHandlers;
  #sockets = new Map<string, WebSocket>();
  #waiting = new Map<string, { type: 'synced' | 'verified'; resolve: (s: Synced | Verified) => void; timer: NodeJS.Timeout }>();
  readonly agents = new Map<string, AgentRecord>();
  refused = 0;

  /** `hostIds`: the hosts watched from the start (the configured ones), connected or not */
  constructor(hostIds: readonly string[], handlers: HubHandlers, log: Logger) {
    this.#handlers = handlers;
    this.#log = log;
    for (const hostId of hostIds) this.#record(hostId);
  }

  #record(hostId: string): AgentRecord {
    let r = this.agents.get(hostId);
    if (!r) {
      r = { hostId, connected: false, lastHeartbeatAt: performance.now(), disconnectedAt: undefined, last: undefined, heartbeats: 0, rejected: 0 };
      this.agents.set(hostId, r);
    }
    return r;
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const auth = this.#handlers.authenticate(bearerToken(req.headers.authorization) ?? '');
    if ('refused' in auth) {
      this.refused++;
      const remote = req.socket.remoteAddress;
      if (auth.refused === 'revoked') {
        this.#log.warn({ remote, hostId: auth.hostId }, 'agent connection refused: its credentials were revoked');
        const body = `revoked: the credentials of ${auth.hostId} were revoked (${auth.why}); this host may not sync any more. Enroll it again: standby hosts add ${auth.hostId}\n`;
        socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        return;
      }
      this.#log.warn({ remote }, 'agent connection refused: missing or wrong bearer token');
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: close\r\nWWW-Authenticate: Bearer\r\n\r\nagent token missing or wrong\n');
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#attach(auth.hostId, ws, req.socket.remoteAddress ?? '?'));
  }

  /** The host's credentials were revoked: it hears its grant (fenced) and its connection closes for good. */
  revoke(hostId: string, why: string): void {
    this.regrant(hostId);
    this.#sockets.get(hostId)?.close(CLOSE_REVOKED, closeReason(`revoked: ${why}`));
  }

  #attach(hostId: string, ws: WebSocket, remote: string): void {
    const record = this.#record(hostId);
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
    this.#handlers.heartbeat?.(record.hostId, hb);
    this.#send(ws, { type: 'grant', ...this.#handlers.grant(record.hostId), heartbeatSeq: hb.seq });
  }

  #send(ws: WebSocket, msg: Grant | SyncRequest | VerifyRequest): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  }

  /** Tells a connected host its role now (after a failover), without waiting for its next heartbeat. */
  regrant(hostId: string): void {
    const ws = this.#sockets.get(hostId);
    if (ws) this.#send(ws, { type: 'grant', ...this.#handlers.grant(hostId), heartbeatSeq: null });
  }

  /** Asks the host's agent for a pass now; resolves with its answer, or undefined if it is not connected or too slow. */
  requestSync(hostId: string, timeoutMs: number): Promise<Synced | undefined> {
    return this.#request(hostId, 'sync-now', 'synced', timeoutMs) as Promise<Synced | undefined>;
  }

  /** Asks the host's agent to compare its workspace with the standby's copy (standby verify --proxy); undefined if it is not connected or too slow. */
  requestVerify(hostId: string, timeoutMs: number): Promise<Verified | undefined> {
    return this.#request(hostId, 'verify', 'verified', timeoutMs) as Promise<Verified | undefined>;
  }

  #request(hostId: string, ask: 'sync-now' | 'verify', answer: 'synced' | 'verified', timeoutMs: number): Promise<Synced | Verified | undefined> {
    const ws = this.#sockets.get(hostId);
    if (!ws) return Promise.resolve(undefined);
    const id = `${ask}-${performance.now().toFixed(3)}-${Math.random().toString(36).slice(2, 8)}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.#waiting.set(id, { type: answer, resolve, timer });
      this.#send(ws, { type: ask, id });
    });
  }

  close(): void {
    for (const w of this.#waiting.values()) clearTimeout(w.timer);
    this.#waiting.clear();
    for (const ws of this.#sockets.values()) ws.terminate();
    this.#sockets.clear();
    this.#wss.close();
  }
}
