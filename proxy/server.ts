// The one listener the developer's URL points at (HTTP, or HTTPS with a cert
// and key): /_standby/ is the proxy's own; the agent socket upgrades at
// /_standby/agent; everything else goes to the active backend, or, while none
// is ready, gets the transition page (browser navigations) or 503.
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { StandbyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { AGENT_PATH } from '../protocol/messages.ts';
import type { AgentHub } from './agent-hub.ts';
import { PREFIX } from './api.ts';
import type { ProxyConfig } from './config.ts';
import type { Backend, Router } from './router.ts';

export interface ServerParts {
  config: ProxyConfig;
  router: Router;
  hub: AgentHub;
  log: Logger;
  /** the backend to send traffic to now, or undefined while none is ready */
  target(): Backend | undefined;
  transitionPage(): string;
  api(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

function wantsPage(req: IncomingMessage): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && (req.headers.accept ?? '').includes('text/html');
}

export function createProxyServer(p: ServerParts): { server: Server; sockets: Set<Socket> } {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (url.startsWith(PREFIX)) {
      p.api(req, res).catch((err: unknown) => {
        p.log.error({ err, url }, 'proxy endpoint failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
      return;
    }
    const to = p.target();
    if (to) return p.router.web(req, res, to);
    if (wantsPage(req)) {
      const page = p.transitionPage();
      res.writeHead(503, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'retry-after': '1', 'content-length': Buffer.byteLength(page) });
      res.end(req.method === 'HEAD' ? undefined : page);
      return;
    }
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'retry-after': '1' });
    res.end('standby proxy: switching machine, no backend ready yet; retry shortly\n');
  };
  const server: Server = p.config.tls
    ? createHttpsServer(readTls(p.config.tls), onRequest)
    : createHttpServer(onRequest);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === AGENT_PATH) return p.hub.upgrade(req, socket, head);
    if (path?.startsWith(PREFIX)) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    const to = p.target();
    if (!to) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\r\n');
      return;
    }
    p.router.ws(req, socket, head, to);
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  // every client connection, so close() leaves none behind
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return { server, sockets };
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
