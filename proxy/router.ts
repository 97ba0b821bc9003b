// Forwards code-server traffic (HTTP and WebSocket upgrades) to a backend
// untouched (method, path, query, body, cookies, Host; proxy/server.ts has
// set X-Forwarded-* and stripped hop-by-hop headers already), and owns every socket that traffic uses, per
// backend side, so a switch can close them all at once and nothing leaks.
import { Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
// what http-proxy-3 does to a response it forwards (status, headers), for the few it lets the router finish (pinned 2.0.1)
import { OUTGOING_PASSES } from 'http-proxy-3/dist/lib/http-proxy/passes/web-outgoing.js';
import type { Logger } from '../core/log.ts';
import { forwardedPort, isPortRefusal, mayBeRefusal } from './forwarded-port.ts';
import { answerWorkbench, mayBeWorkbench } from './editor-inject.ts';
import type { Side } from './state.ts';

export interface Backend {
  side: Side;
  id: string;
  url: string;
}

/** The injection into code-server's workbench page (proxy/editor-inject.ts): the generation a page served by a side belongs to. */
export interface WorkbenchInjection {
  generationFor(side: Side): string;
  /** a workbench page was left as it came (its CSP forbids the script, ...) */
  skipped(why: string): void;
}

/** What a client hears when the backend fails its request and nobody set onBackendFailed: no side, no error code. */
const BACKEND_FAILED = 'standby proxy: your workspace did not answer this request; retry shortly\n';

/** On a request whose response the router finishes itself: the forwarded port it names (proxy/forwarded-port.ts). */
const PORT = Symbol('forwarded port');
type PortRequest = IncomingMessage & { [PORT]?: number };
/** The options http-proxy-3's response passes read: the router's proxy sets none of their rewrites (host, protocol, cookies, header case). */
const AS_IS = {} as Parameters<typeof OUTGOING_PASSES.writeHeaders>[3];

/** Errors that are the backend's own word that it is not there: refused, or reset mid-request. */
const REFUSED = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH']);

export class Router {
  #log: Logger;
  // xfwd off: proxy/forwarded-headers.ts sets X-Forwarded-* itself (http-proxy-3's would keep a client's own)
  #proxy = createProxyServer({ xfwd: false, ws: true, changeOrigin: false, connectTimeout: 5_000 });
  /** client and upstream sockets carrying traffic to each side */
  #sockets: Record<Side, Set<Duplex>> = { primary: new Set(), standby: new Set() };
  /** upstream keep-alive pools, one per side, destroyed on a switch */
  #agents: Record<Side, Agent> = { primary: new Agent({ keepAlive: true }), standby: new Agent({ keepAlive: true }) };
  /**
   * What each side's plain requests are forwarded with, made once per backend URL and pool: the
   * target as a URL object, which http-proxy-3 would otherwise parse from the string on every
   * request (its toURL), and no options object allocated per request.
   */
  #webOptions: Record<Side, { url: string; options: { target: URL; agent: Agent }; selfHandled: { target: URL; agent: Agent; selfHandleResponse: true } } | undefined> = { primary: undefined, standby: undefined };
  /** navigations to the workbench route in flight, answered by answerWorkbench (few: a WeakMap is fine), and their side */
  #workbench = new WeakMap<IncomingMessage, Side>();
  /** the side of each WebSocket upgrade, for its upstream socket (upgrades are rare: a WeakMap is fine here) */
  #sideOf = new WeakMap<IncomingMessage, Side>();
  /**
   * http-proxy-3's error callback, one per side, made once: a plain request carries its side in
   * the callback it is given, not in a WeakMap (a WeakMap entry per request cost ~1.5 us of
   * CPU in the profile, plus ephemeron work in every scavenge; docs/benchmarks.md).
   */
  #webError: Record<Side, (err: Error, req: IncomingMessage, res: ServerResponse | Socket) => void> = {
    primary: (err, req, res) => this.#onError(err, req, res, 'primary'),
    standby: (err, req, res) => this.#onError(err, req, res, 'standby'),
  };

  /**
   * Answers below 500 each side gave to forwarded HTTP requests (and any answer for a forwarded port,
   * whose 5xx is the port's, not code-server's): a plain counter per response
   * (passive health, proxy/prober.ts: the daemon lets an answer stand in for a probe).
   */
  readonly answered: Record<Side, number> = { primary: 0, standby: 0 };
  /** a forwarded request to `side` got no answer (refused, reset, timed out) or a 5xx: evidence against it; `refused`: the connection was refused or reset */
  onForwardFailed: ((side: Side, refused: boolean) => void) | undefined;
  /**
   * What a client hears when its request's backend failed before answering (proxy/server.ts: what it
   * hears while no backend is ready, the transition page for a navigation): never a bare 502
   */
  onBackendFailed: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  /**
   * What a client hears when the standby's code-server says nothing listens on the forwarded port the
   * request names (proxy/server.ts: a page naming the port, or a short text); unset, its answer passes
   * untouched. Only requests routed to the standby are looked at: on the GPU a port answers as it is.
   */
  onPortNotServed: ((req: IncomingMessage, res: ServerResponse, port: number) => void) | undefined;
  /** set: code-server's workbench page gets the editor script (proxy/editor-inject.ts); unset: nothing is rewritten */
  injection: WorkbenchInjection | undefined;

  constructor(log: Logger) {
    this.#log = log;
    this.#proxy.on('error', (err, req, target) => this.#onError(err, req, target));
    this.#proxy.on('proxyRes', (proxyRes, req, res) => {
      const port = (req as PortRequest)[PORT];
      if (port !== undefined) this.#finishPort(proxyRes, req, res, port);
      const workbench = this.#workbench.get(req);
      if (workbench !== undefined) {
        this.#workbench.delete(req);
        const injection = this.injection;
        answerWorkbench(proxyRes, res as ServerResponse, {
          side: workbench,
          generation: () => injection?.generationFor(workbench) ?? '',
          onSkip: (why) => injection?.skipped(why),
        });
      }
      // the side is the keep-alive pool the request went through
      const agent = (proxyRes as IncomingMessage & { req?: { agent?: unknown } }).req?.agent;
      const side: Side | undefined = agent === this.#agents.primary ? 'primary' : agent === this.#agents.standby ? 'standby' : undefined;
      if (side === undefined) return;
      // a forwarded port's 5xx is that port's (or code-server's word that nothing listens there): code-server answered
      if ((proxyRes.statusCode ?? 500) < 500 || port !== undefined || forwardedPort(req.url ?? '/') !== undefined) this.answered[side]++;
      else this.onForwardFailed?.(side, false);
    });
    this.#proxy.on('proxyReqWs', (proxyReq, req) => {
      const side = this.#sideOf.get(req);
      if (!side) return;
      proxyReq.once('upgrade', (_res, upstream: Socket) => this.#own(side, upstream));
      const port = side === 'standby' && this.onPortNotServed ? forwardedPort(req.url ?? '/') : undefined;
      if (port === undefined) return;
      // registered before http-proxy-3's own 'response' listener (it adds it after this event), so the
      // refusal's status line is replaced before it relays it: 503, not code-server's connect error
      proxyReq.once('response', (proxyRes: IncomingMessage) => {
        if (proxyRes.statusCode !== 500 || !isPortRefusal(proxyRes.statusMessage ?? '', port)) return;
        proxyRes.statusCode = 503;
        proxyRes.statusMessage = 'Service Unavailable';
        proxyRes.headers['cache-control'] = 'no-store';
      });
    });
  }

  #own(side: Side, socket: Duplex): void {
    const set = this.#sockets[side];
    if (set.has(socket)) return;
    set.add(socket);
    socket.once('close', () => set.delete(socket));
    // owned from here: a reset on either side must never reach the process as an unhandled 'error'
    if (socket.listenerCount('error') === 0) socket.on('error', this.#onSocketError);
  }

  #onSocketError = (err: NodeJS.ErrnoException): void => {
    this.#log.debug({ err: err.code ?? err.message }, 'proxied socket error');
  };

  web(req: IncomingMessage, res: ServerResponse, to: Backend): void {
    this.#own(to.side, req.socket);
    let o = this.#webOptions[to.side];
    if (o === undefined || o.url !== to.url) {
      const target = new URL(to.url);
      const agent = this.#agents[to.side];
      o = this.#webOptions[to.side] = { url: to.url, options: { target, agent }, selfHandled: { target, agent, selfHandleResponse: true } };
    }
    if (this.injection && mayBeWorkbench(req)) {
      // the page is rewritten (one script tag): asked for uncompressed, and never as a 304 against a copy we rewrote
      delete req.headers['accept-encoding'];
      delete req.headers['if-none-match'];
      delete req.headers['if-modified-since'];
      this.#workbench.set(req, to.side);
      void this.#proxy.web(req, res, o.selfHandled, this.#webError[to.side]);
      return;
    }
    const port = to.side === 'standby' && this.onPortNotServed ? forwardedPort(req.url ?? '/') : undefined;
    if (port !== undefined) {
      // a forwarded port on the standby: the router finishes the response itself (#finishPort), to tell code-server's refusal from the port's own answer
      (req as PortRequest)[PORT] = port;
      void this.#proxy.web(req, res, o.selfHandled, this.#webError[to.side]);
      return;
    }
    void this.#proxy.web(req, res, o.options, this.#webError[to.side]);
  }

  /**
   * A forwarded port's response from the standby: code-server's refusal (500, no Content-Type, the
   * connect error naming the port as the body) goes to onPortNotServed; anything else is forwarded as
   * http-proxy-3 would, unchanged. The body is held only while it can still be the refusal (64 bytes at
   * most, decided at the first byte that differs), so a real answer is not delayed.
   */
  #finishPort(proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse, port: number): void {
    const forward = (held: Buffer[], ended: boolean): void => {
      if (res.headersSent || res.destroyed) return void proxyRes.resume();
      for (const pass of Object.values(OUTGOING_PASSES)) pass(req, res, proxyRes as Parameters<typeof pass>[2], AS_IS);
      for (const chunk of held) res.write(chunk);
      if (ended) res.end();
      else proxyRes.pipe(res);
    };
    if (proxyRes.statusCode !== 500 || proxyRes.headers['content-type'] !== undefined || req.method === 'HEAD') return forward([], false);
    const held: Buffer[] = [];
    let text = '';
    const onData = (chunk: Buffer): void => {
      held.push(chunk);
      text += chunk.toString('latin1');
      if (mayBeRefusal(text)) return;
      proxyRes.off('data', onData).off('end', onEnd);
      // synchronously, so no chunk is emitted between the listener's removal and the pipe
      forward(held, false);
    };
    const onEnd = (): void => {
      proxyRes.off('data', onData);
      if (!isPortRefusal(text, port) || !this.onPortNotServed || res.headersSent) return forward(held, true);
      this.#log.debug({ port, url: req.url }, 'a forwarded port nothing serves on the standby');
      this.onPortNotServed(req, res, port);
    };
    proxyRes.on('data', onData).on('end', onEnd);
    // cut off while held (code-server gone mid-answer): the client must not wait for an answer that never comes
    proxyRes.once('close', () => {
      if (!res.headersSent) res.destroy();
    });
  }

  /** A client socket now carries the proxy's own long answer (the editor's event stream): no switch closes it. */
  disown(socket: Duplex): void {
    this.#sockets.primary.delete(socket);
    this.#sockets.standby.delete(socket);
  }

  ws(req: IncomingMessage, socket: Duplex, head: Buffer, to: Backend): void {
    this.#sideOf.set(req, to.side);
    this.#own(to.side, socket);
    void this.#proxy.ws(req, socket, head, { target: to.url });
  }

  /** Closes every connection that carried traffic to `side` (browsers reconnect and land on the new backend). */
  closeAll(side: Side): number {
    const sockets = [...this.#sockets[side]];
    for (const s of sockets) s.destroy();
    this.#sockets[side].clear();
    this.#agents[side].destroy();
    this.#agents[side] = new Agent({ keepAlive: true });
    this.#webOptions[side] = undefined;
    return sockets.length;
  }

  /** sockets currently owned, per side (tests and metrics) */
  openSockets(): Record<Side, number> {
    return { primary: this.#sockets.primary.size, standby: this.#sockets.standby.size };
  }

  close(): void {
    this.closeAll('primary');
    this.closeAll('standby');
    this.#proxy.close();
  }

  #onError(err: Error, req: IncomingMessage, target: ServerResponse | Socket | unknown, known?: Side): void {
    const side = known ?? this.#sideOf.get(req);
    const code = (err as NodeJS.ErrnoException).code;
    if (side !== undefined) this.onForwardFailed?.(side, REFUSED.has(code ?? '') || err.message === 'socket hang up');
    this.#log.debug({ err: code ?? err.message, side, url: req.url }, 'backend request failed');
    if (target && typeof (target as ServerResponse).writeHead === 'function') {
      const res = target as ServerResponse;
      if (!res.headersSent) {
        if (this.onBackendFailed) return this.onBackendFailed(req, res);
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'retry-after': '1' });
        // fixed words: which side and why are in the log (docs/security.md)
        res.end(BACKEND_FAILED);
      } else {
        res.destroy();
      }
    } else if (target && typeof (target as Socket).destroy === 'function') {
      (target as Socket).destroy();
    }
  }
}
