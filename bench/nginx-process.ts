// nginx (the Debian package) as a reference proxy: one worker, proxy_pass to
// one upstream over a keep-alive pool, WebSocket upgrades passed through, no
// access log, everything it writes kept in a folder of the run's. Run in the
// foreground (daemon off) from a config written here.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServerProcess, startAnswering, type ServerProcess } from './server-process.ts';

const NGINX = '/usr/sbin/nginx';

export interface NginxOptions {
  port: number;
  /** host:port of the upstream */
  upstream: string;
  /** a folder for the config, its pid file, logs and temp files */
  dir: string;
  cpu?: number;
}

export interface Nginx {
  url: string;
  process: ServerProcess;
  stop(): Promise<void>;
}

function nginxConfig(o: NginxOptions): string {
  return `daemon off;
worker_processes 1;
pid ${join(o.dir, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(o.dir, 'tmp', 'body')};
  proxy_temp_path ${join(o.dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(o.dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(o.dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(o.dir, 'tmp', 'scgi')};
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream workspace { server ${o.upstream}; keepalive 64; }
  server {
    listen 127.0.0.1:${o.port};
    location / {
      proxy_pass http://workspace;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
    }
  }
}
`;
}

export async function startNginx(o: NginxOptions): Promise<Nginx> {
  mkdirSync(join(o.dir, 'tmp'), { recursive: true });
  const config = join(o.dir, 'nginx.conf');
  writeFileSync(config, nginxConfig(o));
  // -e: its early errors go to stderr too, not to the package's /var/log/nginx
  const proc = startServerProcess('nginx', NGINX, ['-p', o.dir, '-e', 'stderr', '-c', config], { cpu: o.cpu });
  return startAnswering(proc, o.port);
}
