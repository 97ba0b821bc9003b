// The yardstick for the Standby proxy's own cost: http-proxy-3 alone, with the
// options the Standby router gives it (xfwd, ws, a keep-alive upstream pool),
// in a plain http server forwarding everything, HTTP and WebSocket upgrades,
// to one target. Run as its own process:
//   node bench/bare-proxy.ts <port> <target-url>
// and, from a case, through startBareProxy().
import { Agent, createServer } from 'node:http';
import { createProxyServer } from 'http-proxy-3';
import { startServerProcess, startAnswering, type ServerProcess } from './server-process.ts';
import { standbyNode } from './standby-proxy-process.ts';

export interface BareProxy {
  url: string;
  process: ServerProcess;
  stop(): Promise<void>;
}

export async function startBareProxy(o: { port: number; target: string; cpu?: number; nodeArgs?: string[] }): Promise<BareProxy> {
  const proc = startServerProcess('bare http-proxy-3', standbyNode(), [...(o.nodeArgs ?? []), import.meta.filename, String(o.port), o.target], { cpu: o.cpu });
  return startAnswering(proc, o.port);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [port, target] = process.argv.slice(2);
  const agent = new Agent({ keepAlive: true });
  const proxy = createProxyServer({ xfwd: true, ws: true, changeOrigin: false, connectTimeout: 5_000 });
  proxy.on('error', (_err, _req, res) => {
    if (res && 'writeHead' in res && !res.headersSent) res.writeHead(502).end();
    else if (res && 'destroy' in res) res.destroy();
  });
  const server = createServer((req, res) => void proxy.web(req, res, { target, agent }));
  server.on('upgrade', (req, socket, head) => void proxy.ws(req, socket, head, { target }));
  server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    agent.destroy();
    proxy.close();
  });
}
