// What one client may hold on the listener: a per-client connection cap
// (trusted proxies exempt) and a minimum request-body rate, so slow uploads
// cannot pin backend connections. The header timeout, the idle keep-alive
// timeout and the global cap are Node's own server settings (proxy/server.ts).
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../core/log.ts';
import type { ProxyConfig } from '../config/proxy.ts';
import { clientKey, peerAddress } from './client-address.ts';
import type { ForwardedHeaders } from './forwarded-headers.ts';

export type Limits = ProxyConfig['limits'];

const TOO_MANY = 'too many connections from your address; close some and retry\n';
const REFUSAL = `HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(TOO_MANY)}\r\n\r\n${TOO_MANY}`;

/** How long a refused connection may stay open so its 429 is read before the close (not reset), ms. */
const LINGER_MS = 2_000;

/** A request body being received, checked against the minimum rate once per window. */
interface Upload {
  req: IncomingMessage;
  windowStart: number;
  bytesAtStart: number;
  /** the proxy itself stopped reading (backpressure from the backend) during this window */
  stalled: boolean;
}

function markStalled(this: IncomingMessage & { [UPLOAD]?: Upload }): void {
  const u = this[UPLOAD];
  if (u) u.stalled = true;
}

const UPLOAD = Symbol('standby.upload');

export class ClientLimits {
  readonly #limits: Limits;
  readonly #forwarded: ForwardedHeaders;
  readonly #log: Logger;
  readonly #perClient = new Map<string, number>();
  readonly #uploads = new Set<Upload>();
  #sweeper: NodeJS.Timeout | undefined;
  /** connections refused by the per-client cap, and uploads cut for their rate (metrics: standby_connections_refused_total, standby_uploads_cut_total) */
  refused = 0;
  cutUploads = 0;

  constructor(limits: Limits, forwarded: ForwardedHeaders, log: Logger) {
    this.#limits = limits;
    this.#forwarded = forwarded;
    this.#log = log;
  }

  /**
   * A new client connection (the socket the HTTP layer reads: the TCP one, or
   * the TLS one after its handshake). Counted per client; over the cap it is
   * answered 429 and closed, and returns false. Its requests are then ignored
   * (the server checks socket.writableEnded).
   */
  admit(socket: Socket): boolean {
    const peer = peerAddress(socket.remoteAddress);
    if (this.#forwarded.trusts(peer)) return true;
    const key = clientKey(peer);
    const n = (this.#perClient.get(key) ?? 0) + 1;
    if (n > this.#limits.maxConnectionsPerClient) {
      this.refused++;
      if (this.refused === 1 || this.refused % 1000 === 0) this.#log.warn({ client: key, refused: this.refused, cap: this.#limits.maxConnectionsPerClient }, 'connection refused: too many from one client (limits.maxConnectionsPerClient)');
      if (!socket.writable) {
        socket.destroy();
        return false;
      }
      socket.end(REFUSAL);
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
      return false;
    }
    this.#perClient.set(key, n);
    socket.once('close', () => {
      const left = (this.#perClient.get(key) ?? 1) - 1;
      if (left <= 0) this.#perClient.delete(key);
      else this.#perClient.set(key, left);
    });
    return true;
  }

  /** A request with a body: cut when it arrives slower than limits.bodyMinBytesPerSecond over limits.bodyRateWindowMs. */
  watchBody(req: IncomingMessage): void {
    if (this.#limits.bodyMinBytesPerSecond === 0) return;
    const u: Upload = { req, windowStart: performance.now(), bytesAtStart: req.socket.bytesRead, stalled: false };
    (req as IncomingMessage & { [UPLOAD]?: Upload })[UPLOAD] = u;
    req.on('pause', markStalled);
    this.#uploads.add(u);
    this.#sweeper ??= setInterval(() => this.#sweep(), Math.min(1_000, Math.max(50, this.#limits.bodyRateWindowMs / 4))).unref();
  }

  #sweep(): void {
    const now = performance.now();
    const window = this.#limits.bodyRateWindowMs;
    for (const u of this.#uploads) {
      const { req } = u;
      if (req.complete || req.socket.destroyed) {
        this.#uploads.delete(u);
        continue;
      }
      const elapsed = now - u.windowStart;
      if (elapsed < window) continue;
      const received = req.socket.bytesRead - u.bytesAtStart;
      // not the client's fault when we stopped reading: the window starts again
      const waitedOnUs = u.stalled || req.readableLength >= req.readableHighWaterMark;
      if (!waitedOnUs && received < (this.#limits.bodyMinBytesPerSecond * elapsed) / 1000) {
        this.#uploads.delete(u);
        this.cutUploads++;
        this.#log.info({ client: peerAddress(req.socket.remoteAddress), url: req.url, bytes: received, ms: Math.round(elapsed) }, 'request body too slow (limits.bodyMinBytesPerSecond): connection closed');
        req.socket.destroy();
        continue;
      }
      u.windowStart = now;
      u.bytesAtStart = req.socket.bytesRead;
      u.stalled = false;
    }
    if (this.#uploads.size === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  close(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#uploads.clear();
  }
}
