// HAProxy (the Debian package) as a reference proxy: one frontend on loopback,
// one backend of the servers given (a `backup` server takes traffic only when
// every other one is down), health checks as configured, one thread, run in the
// foreground (-db) from a config written here. Its stats socket answers
// `show stat`; its stderr carries the server state changes ("... is DOWN").
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServerProcess, startAnswering, type ServerProcess } from './server-process.ts';

export interface HaproxyServer {
  name: string;
  /** host:port */
  address: string;
  backup?: boolean;
}

export interface HaproxyOptions {
  port: number;
  servers: HaproxyServer[];
  /**
   * health checks: `option httpchk GET <path>` and `check` on every server, with
   * `inter/fall/rise` when given (HAProxy's defaults otherwise: inter 2s, fall 3, rise 2);
   * none when undefined
   */
  checks?: { path: string; inter?: string; fall?: number; rise?: number };
  /** a folder for the config and the stats socket */
  dir: string;
  cpu?: number;
  onLine?(line: string, at: number): void;
}

export interface Haproxy {
  url: string;
  process: ServerProcess;
  /** `show stat`: one record per proxy and server, fields by name (pxname, svname, status, check_status, ...) */
  stats(): Promise<Record<string, string>[]>;
  stop(): Promise<void>;
}

function haproxyConfig(o: HaproxyOptions, socket: string): string {
  const c = o.checks;
  const tune = c ? [c.inter && `inter ${c.inter}`, c.fall && `fall ${c.fall}`, c.rise && `rise ${c.rise}`].filter(Boolean).join(' ') : '';
  return `global
  nbthread 1
  maxconn 4000
  stats socket ${socket} level admin

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h

frontend bench
  bind 127.0.0.1:${o.port}
  default_backend workspace

backend workspace
${c ? `  option httpchk GET ${c.path}\n` : ''}${tune ? `  default-server ${tune}\n` : ''}${o.servers.map((s) => `  server ${s.name} ${s.address}${c ? ' check' : ''}${s.backup ? ' backup' : ''}`).join('\n')}
`;
}

export async function startHaproxy(o: HaproxyOptions): Promise<Haproxy> {
  const socket = join(o.dir, 'haproxy.sock');
  const config = join(o.dir, 'haproxy.cfg');
  writeFileSync(config, haproxyConfig(o, socket));
  const proc = startServerProcess('haproxy', 'haproxy', ['-db', '-f', config], { cpu: o.cpu, onLine: o.onLine });
  return { ...(await startAnswering(proc, o.port)), stats: () => showStat(socket) };
}

function showStat(socket: string): Promise<Record<string, string>[]> {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = connect(socket, () => s.end('show stat\n'));
    s.setTimeout(2_000, () => s.destroy(new Error('haproxy stats socket: no answer within 2 s')));
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('error', reject);
    s.on('close', () => {
      const lines = text.split('\n').filter(Boolean);
      const head = (lines.shift() ?? '').replace(/^# /, '').split(',');
      resolve(lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [head[i] ?? String(i), v]))));
    });
  });
}
