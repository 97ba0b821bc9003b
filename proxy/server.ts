// The one listener the developer's URL points at (HTTP, or HTTPS with a cert
// and key): /_standby/ is the proxy's own; the agent socket upgrades at
// /_standby/agent; everything else goes to the active backend, or, while none
// is ready, gets the transition page (browser navigations) or 503. It is the
// front door any internet client reaches before auth: socket errors handled,
// limits and timeouts (limits in proxy.json), bad framing and ambiguous paths
// refused, forwarded headers set by the proxy (docs/security.md).
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { StandbyError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { AGENT_PATH } from '../protocol/messages.ts';
import type { AgentHub } from './agent-hub.ts';
import { ClientLimits } from './client-limits.ts';
import type { ProxyConfig } from '../config/proxy.ts';
import type { ForwardedHeaders } from './forwarded-headers.ts';
import { framingProblem } from './request-framing.ts';
import { pathOwner } from './request-path.ts';
import type { Login } from './login.ts';
import type { Dashboard } from './dashboard.ts';
import { EVENTS_PATH, type EditorEvents } from './editor-events.ts';
import { serveEditorScript } from './editor-inject.ts';
import { EDITOR_SCRIPT_PATH } from './pages/editor-script.ts';
import { isNavigation } from './navigation.ts';
import { portNotServedPage, portNotServedText } from './pages/port-not-served.ts';
import type { Backend, Router } from './router.ts';

export interface ServerParts {
  config: ProxyConfig;
  router: Router;
  hub: AgentHub;
  log: Logger;
  /** the forwarded headers' rules (trustedProxies), shared with the failed-auth throttle */
  forwarded: ForwardedHeaders;
  /** the backend to send traffic to now, or undefined while none is ready */
  target(): Backend | undefined;
  transitionPage(): string;
  api(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** the developer's login in front of code-server (proxy.json `login`), or undefined: none */
  login?: Login;
  /** the editor's event stream (/_standby/events), or undefined: not served */
  events?: EditorEvents;
  /** the admin's dashboard at /_standby/ (its page, assets, login), or undefined: not served */
  dashboard?: Dashboard;
}

const AMBIGUOUS = 'bad request: a path the proxy cannot tell apart from its own /_standby/ (dot segments, %-escapes, backslashes or case); send it in plain form\n';

/** Answers `status` on a socket no ServerResponse owns (upgrades, parse errors), then closes it once written. */
function answerRaw(socket: Duplex, status: number, text: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
  socket.once('finish', () => socket.destroy());
}

function answer(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', connection: 'close', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The status for what the parser refused, as Node answers by default: 431 for header overflow, 408 for a timeout, else 400. */
function parseErrorStatus(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

export function createProxyServer(parts: ServerParts): { server: Server; sockets: Set<Socket>; limits: ClientLimits } {
  const L = parts.config.limits;
  const forwarded = parts.forwarded;
  const limits = new ClientLimits(L, forwarded, parts.log);
  const watchBodies = L.bodyMinBytesPerSecond > 0;
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    // refused by the per-client cap: its 429 is written, the socket closes
    if (req.socket.writableEnded) return;
    const bad = framingProblem(req, L.maxHeaders);
    if (bad) return answer(res, bad.status, `bad request: ${bad.why}\n`);
    if (watchBodies && (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0'))) limits.watchBody(req);
    const url = req.url ?? '/';
    const owner = pathOwner(url);
    if (owner === 'own') {
      const login = parts.login;
      const path = url.split('?')[0]!;
      // the script is the same text for everyone and tells nothing: served without a session
      if (path === EDITOR_SCRIPT_PATH) return serveEditorScript(req, res);
      if (path === EVENTS_PATH && parts.events) {
        // the dashboard's session gets the admin's events besides the editor's, while it holds
        const session = parts.dashboard?.session;
        const admin = session?.allows(req) ? () => session.allows(req) : undefined;
        // what the proxy knows, as a page of code-server sees it: behind the login like code-server
        if (!admin && login && !login.allows(req)) return login.refuse(req, res);
        // a long answer of the proxy's own: a switch's closing of a side's sockets must not cut it
        parts.router.disown(req.socket);
        return parts.events.serve(req, res, admin);
      }
      if (parts.dashboard?.owns(path)) {
        parts.dashboard.handle(req, res).catch((err: unknown) => {
          parts.log.error({ err }, 'the dashboard failed');
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('internal error\n');
        });
        return;
      }
      if (login?.owns(path)) {
        login.handle(req, res).catch((err: unknown) => {
          parts.log.error({ err }, 'the login failed');
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('internal error\n');
        });
        return;
      }
      parts.api(req, res).catch((err: unknown) => {
        parts.log.error({ err, url }, 'proxy endpoint failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
      return;
    }
    if (owner === 'ambiguous') return answer(res, 400, AMBIGUOUS);
    if (parts.login && !parts.login.allows(req)) return parts.login.refuse(req, res);
    const to = parts.target();
    if (to) {
      if (!forwarded.apply(req, false)) return void req.socket.destroy();
      return parts.router.web(req, res, to);
    }
    switching(req, res);
  };
  /**
   * What a client hears while no backend can answer it: no backend is ready (a switch), or the one it
   * was sent to failed before answering (the detection window: the GPU just died). A navigation gets
   * the transition page, which retries by itself; anything else 503 with Retry-After. Never a 502.
   */
  const switching = (req: IncomingMessage, res: ServerResponse): void => {
    if (isNavigation(req)) {
      const page = parts.transitionPage();
      res.writeHead(503, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'retry-after': '1', 'content-length': Buffer.byteLength(page) });
      res.end(req.method === 'HEAD' ? undefined : page);
      return;
    }
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'retry-after': '1' });
    res.end('standby proxy: switching machine, no backend ready yet; retry shortly\n');
  };
  parts.router.onBackendFailed = switching;
  /**
   * A forwarded port (/proxy/<port>/, /absproxy/<port>/) the standby's code-server says nothing serves:
   * the program ran on the GPU, which was lost. A navigation gets a page saying so, anything else a short
   * text; 503 without Retry-After (it comes back with the switch back, not in a second).
   */
  parts.router.onPortNotServed = (req, res, port) => {
    const html = isNavigation(req);
    const body = html ? portNotServedPage(port) : portNotServedText(port);
    res.writeHead(503, { 'content-type': html ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const options = {
    headersTimeout: L.headersTimeoutMs,
    requestTimeout: L.requestTimeoutMs,
    keepAliveTimeout: L.idleTimeoutMs,
    maxHeaderSize: L.maxHeaderBytes,
    // how often Node looks for expired header/request timers (its default, 30 s, would stretch a 20 s limit to 50)
    connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(L.headersTimeoutMs / 4))),
  };
  const server: Server = parts.config.tls
    ? createHttpsServer({ ...readTls(parts.config.tls), ...options, handshakeTimeout: L.headersTimeoutMs }, onRequest)
    : createHttpServer(options, onRequest);
  // one more than allowed, so that a request over the limit shows in rawHeaders (request-framing.ts)
  server.maxHeadersCount = L.maxHeaders + 1;
  // over this, Node closes new connections at accept, before any byte is read
  server.maxConnections = L.maxConnections;

  // Client sockets: an 'error' handler from the moment the proxy owns them (a reset
  // client must never crash the process; Node drops its own handler on upgrades).
  const onSocketError = function (this: Duplex, err: NodeJS.ErrnoException): void {
    parts.log.debug({ err: err.code ?? err.message }, 'client socket error');
    this.destroy();
  };
  // every client connection, so close() leaves none behind
  const sockets = new Set<Socket>();
  server.prependListener('connection', (s: Socket) => {
    s.on('error', onSocketError);
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    if (!parts.config.tls) limits.admit(s);
  });
  if (parts.config.tls) {
    // counted once the handshake is done, so a refusal is an HTTP answer, not a reset
    server.prependListener('secureConnection', (s: Socket) => {
      s.on('error', onSocketError);
      limits.admit(s);
    });
  }
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (socket.listenerCount('error') === 0) socket.on('error', onSocketError);
    if (socket.writableEnded) return void socket.destroy();
    const bad = framingProblem(req, L.maxHeaders);
    if (bad) return answerRaw(socket, bad.status, `bad request: ${bad.why}\n`);
    const url = req.url ?? '/';
    const owner = pathOwner(url);
    if (owner === 'ambiguous') return answerRaw(socket, 400, AMBIGUOUS);
    if (owner === 'own') {
      if (url.split('?')[0] === AGENT_PATH) return parts.hub.upgrade(req, socket, head);
      return answerRaw(socket, 404, 'not found: no WebSocket here\n');
    }
    if (req.method !== 'GET' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return answerRaw(socket, 400, 'bad request: only WebSocket upgrades (GET, Upgrade: websocket) are forwarded\n');
    const refused = parts.login?.refusesUpgrade(req);
    if (refused) return answerRaw(socket, refused.status, `${refused.why}\n`);
    const to = parts.target();
    if (!to) {
      if (!socket.writable) return void socket.destroy();
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.once('finish', () => socket.destroy());
      return;
    }
    if (!forwarded.apply(req, true)) return void socket.destroy();
    parts.router.ws(req, socket, head, to);
  });
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => answerRaw(socket, 405, 'CONNECT is not served here\n'));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // a response already under way cannot be followed by another: only close
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) return void socket.destroy();
    const status = parseErrorStatus(err.code);
    parts.log.debug({ err: err.code ?? err.message, status }, 'request refused by the HTTP parser');
    answerRaw(socket, status, status === 431 ? 'request header fields too large\n' : status === 408 ? 'request timeout\n' : 'bad request\n');
  });
  server.on('close', () => limits.close());
  return { server, sockets, limits };
}

function readTls(tls: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  const read = (what: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `tls.${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): give the path of a PEM file the proxy can read`, { file }, { cause: err });
    }
  };
  return { cert: read('cert', tls.cert), key: read('key', tls.key) };
}
