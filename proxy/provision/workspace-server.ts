// The small built-in workspace server: what a `local` host serves where a
// GPU or standby would run code-server (the demo's, and the tests' stand-in
// wherever they need many of them, fast). /healthz like code-server's (what
// the proxy probes), /whoami, an echo of the request (method, url, headers,
// body), and a WebSocket echo. Given a workspace folder, a small file API
// too (workspace-files.ts: the demo's writer edits the workspace through the
// proxy with it, as a developer would through code-server). It runs as its own
// process, so it can be SIGKILLed or SIGSTOPped like a real one:
//   node proxy/provision/workspace-server.ts <host> <port> <name> [<workspace folder>]
// and from code through startWorkspaceServer(). Given an upstream (a real
// code-server on the host, `standby demo --server code-server`), it serves
// the file API itself and forwards everything else there, HTTP and WebSocket,
// Host kept (code-server's Origin check compares the two): the browser gets
// code-server, the demo's writer its measured writes, through one URL.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProxyServer } from 'http-proxy-3';
import { WebSocketServer } from 'ws';
import { freePort } from '../../core/free-port.ts';
import { StandbyError } from '../../core/errors.ts';
import { FILES_TOKEN_ENV, serveFile } from './workspace-files.ts';

export interface WorkspaceServer {
  name: string;
  url: string;
  port: number;
  pid: number;
  /** signals the server (default SIGKILL), as a crash or a test would */
  kill(signal?: NodeJS.Signals): void;
  /** whether the process still runs */
  running(): boolean;
  /** kills it (after a SIGCONT, should it be stopped) and resolves once it has exited */
  close(): Promise<void>;
}

export interface WorkspaceServerOptions {
  name: string;
  host?: string;
  port?: number;
  /** run it through this wrapper, e.g. ['ip', 'netns', 'exec', 'ns1'] or core/parent-death.ts's prefix (each execs) */
  wrap?: string[];
  /** how long it may take to listen, ms (default 10000) */
  startTimeoutMs?: number;
  /** the workspace folder the file API (/files/...) works in; without it /files/... answers 404 */
  root?: string;
  /** when given, the file API answers 401 to a request without this token in its `x-standby-files-token` header (passed in the environment, not on the command line) */
  filesToken?: string;
  /** a server every request but the file API's is forwarded to (http://HOST:PORT: the host's code-server), instead of the echo */
  upstream?: string;
}

/** the environment variable the server process takes its upstream from */
const UPSTREAM_ENV = 'STANDBY_WORKSPACE_UPSTREAM';

/** A request body larger than this is refused (413): the proxy forwards the internet's requests here. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

export async function startWorkspaceServer(o: WorkspaceServerOptions): Promise<WorkspaceServer> {
  const host = o.host ?? '127.0.0.1';
  // a namespace has its own ports, all free: pick one free on loopback here
  const port = o.port ?? (await freePort(o.wrap ? '127.0.0.1' : host));
  const args = [import.meta.filename, host, String(port), o.name, ...(o.root !== undefined ? [o.root] : [])];
  const [cmd, ...rest] = [...(o.wrap ?? []), process.execPath, ...args];
  const env = { ...process.env, ...(o.filesToken !== undefined ? { [FILES_TOKEN_ENV]: o.filesToken } : {}), ...(o.upstream !== undefined ? { [UPSTREAM_ENV]: o.upstream } : {}) };
  const child = spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.once('error', (e) => (err += `${e.message}\n`));
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const running = () => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const close = async () => {
    if (running()) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await exited;
  };
  const timeoutMs = o.startTimeoutMs ?? 10_000;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (out.includes('listening')) break;
    if (!running() || performance.now() > deadline) {
      const how = !running() ? `exited (${child.exitCode ?? child.signalCode})` : `did not listen within ${timeoutMs} ms`;
      await close();
      throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `the workspace server ${o.name} on ${host}:${port} ${how}: ${err.trim().slice(-500) || 'no message'}`, { name: o.name, host, port });
    }
    await sleep(20);
  }
  return {
    name: o.name,
    url,
    port,
    pid: child.pid!,
    kill: (signal = 'SIGKILL') => {
      if (running()) child.kill(signal);
    },
    running,
    close,
  };
}

/** Serves until the process ends. */
function serve(host: string, port: number, name: string, root: string | undefined, filesToken: string | undefined, upstream: string | undefined): void {
  // xfwd off and Host kept: code-server sees what the proxy sent
  const forward = upstream !== undefined ? createProxyServer({ target: upstream, ws: true, xfwd: false, changeOrigin: false }) : undefined;
  forward?.on('error', (_err, _req, res) => {
    // the host's code-server is down (killed with the host, or not yet up): a refusal the proxy counts against this host
    if ('writeHead' in res) {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain', connection: 'close' });
      res.end(`${name}: its code-server did not answer\n`);
    } else res.destroy();
  });
  const server = createServer((req, res) => {
    if (forward && !(req.url ?? '').startsWith('/files/')) {
      forward.web(req, res);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('error', () => res.destroy());
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413, { connection: 'close' }).end();
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (serveFile(req, res, Buffer.concat(chunks), name, root, filesToken)) return;
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'alive', name }));
      } else if (req.url === '/whoami') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(name);
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': `served-by=${name}; Path=/` });
        res.end(JSON.stringify({ name, method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() }));
      }
    });
  });
  if (forward) {
    server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => socket.destroy());
      forward.ws(req, socket, head);
    });
    server.keepAliveTimeout = 60_000;
    server.listen(port, host, () => process.stdout.write(`listening ${name}\n`));
    return;
  }
  const wss = new WebSocketServer({ server, maxPayload: MAX_BODY_BYTES });
  wss.on('connection', (ws, req) => {
    ws.on('error', () => ws.terminate());
    ws.send(JSON.stringify({ hello: name, url: req.url, host: req.headers.host }));
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, host, () => process.stdout.write(`listening ${name}\n`));
}

if (import.meta.filename === process.argv[1]) {
  const [host = '127.0.0.1', port = '', name = 'workspace', root] = process.argv.slice(2);
  const token = process.env[FILES_TOKEN_ENV];
  const upstream = process.env[UPSTREAM_ENV];
  serve(host, Number(port), name, root, token === undefined || token === '' ? undefined : token, upstream === undefined || upstream === '' ? undefined : upstream);
}
