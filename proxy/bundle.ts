// The one-line installer's downloads, served by the proxy under /_standby/:
// install.sh (with this proxy's URL baked in), bundle.tar.gz (the program,
// the same file set as installer/program.ts copies), bundle.sha256 and
// fence-key.pub (the public half of the key the proxy fences the standby with,
// which `standby install standby --proxy URL` authorizes).
// The bundle is built once per program version and source state, by an
// asynchronous `tar` child, and cached in <stateDir>/bundle/.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PROGRAM_SOURCE, programFiles, programVersion } from '../installer/program.ts';

export const FENCE_KEY_PATH = '/_standby/fence-key.pub';
export const INSTALL_PATHS = ['/_standby/install.sh', '/_standby/bundle.tar.gz', '/_standby/bundle.sha256', FENCE_KEY_PATH] as const;

export interface Bundle {
  file: string;
  sha256: string;
  bytes: number;
  /** how long the build took, ms (0 when it came from the cache) */
  buildMs: number;
}

/** Version + a digest of the file list and the sources' mtimes: a changed checkout gets a new bundle. */
function cacheKey(source: string, files: string[]): string {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    const st = statSync(join(source, rel), { throwIfNoEntry: false });
    if (!st) return;
    h.update(`${rel}\0${st.size}\0${st.mtimeMs}\n`);
    if (st.isDirectory() && !rel.startsWith('node_modules')) for (const e of readdirSync(join(source, rel))) walk(join(rel, e));
  };
  for (const f of files) walk(f);
  return `${programVersion(source)}-${h.digest('hex').slice(0, 16)}`;
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

function tar(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new Error(`tar could not start (${e.message}): install tar and gzip on the proxy`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar exited ${code}: ${err.trim()}`))));
  });
}

const building = new Map<string, Promise<Bundle>>();

/** The bundle for this program, built once (concurrent callers share the build) and cached in stateDir. */
function programBundle(stateDir: string, source = PROGRAM_SOURCE): Promise<Bundle> {
  const files = programFiles(source);
  const key = cacheKey(source, files);
  const dir = join(stateDir, 'bundle');
  const file = join(dir, `standby-${key}.tar.gz`);
  const sumFile = `${file}.sha256`;
  const have = building.get(file);
  if (have) return have;
  const p = (async (): Promise<Bundle> => {
    if (existsSync(file) && existsSync(sumFile)) return { file, sha256: readFileSync(sumFile, 'utf8').trim(), bytes: statSync(file).size, buildMs: 0 };
    mkdirSync(dir, { recursive: true });
    const started = performance.now();
    const list = `${file}.list`;
    const tmp = `${file}.partial`;
    writeFileSync(list, files.join('\n') + '\n');
    try {
      // gzip -1: a 2.6x faster build for a 12% larger download (docs/operations.md)
      await tar(['--use-compress-program=gzip -1', '-cf', tmp, '-C', source, '--exclude=*.test.ts', '-T', list]);
      const sha256 = await sha256Of(tmp);
      writeFileSync(sumFile, sha256 + '\n');
      renameSync(tmp, file);
      // older bundles go: one per program state is enough
      for (const e of readdirSync(dir)) if (!e.startsWith(`standby-${key}`)) rmSync(join(dir, e), { force: true });
      return { file, sha256, bytes: statSync(file).size, buildMs: Math.round(performance.now() - started) };
    } finally {
      rmSync(list, { force: true });
      rmSync(tmp, { force: true });
    }
  })();
  building.set(file, p);
  p.catch(() => building.delete(file));
  return p;
}

/** This proxy's URL as the client reached it; undefined for a Host header that is not a plain host[:port]. */
export function baseUrl(req: IncomingMessage, tls: boolean): string | undefined {
  const host = req.headers.host ?? '';
  if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host)) return undefined;
  return `${tls ? 'https' : 'http'}://${host}`;
}

function text(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The public key line beside the fencing key (`<identityFile>.pub`), else derived from it with `ssh-keygen -y`. */
async function fencePublicKey(identityFile: string): Promise<{ key: string } | { status: 404 | 500; why: string }> {
  const pub = `${identityFile}.pub`;
  const line = (t: string) => t.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#')) ?? '';
  try {
    const key = line(readFileSync(pub, 'utf8'));
    if (key) return { key };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { status: 500, why: `the proxy cannot read its fencing public key ${pub}: ${(err as Error).message}` };
  }
  if (!existsSync(identityFile)) {
    return { status: 404, why: `this proxy has no fencing key: neither ${pub} nor ${identityFile} (standby.ssh.identityFile in proxy.json) exists; give the standby --fence-key-file with the proxy's public key, or fix standby.ssh.identityFile` };
  }
  return new Promise((resolve) => {
    execFile('ssh-keygen', ['-y', '-f', identityFile], { encoding: 'utf8', timeout: 5_000 }, (err, stdout, stderr) => {
      const key = line(stdout ?? '');
      if (!err && key) return resolve({ key });
      const why = (stderr ?? '').trim().split('\n')[0] || (err?.message ?? 'no output');
      resolve({ status: 500, why: `${pub} is missing and ssh-keygen -y -f ${identityFile} could not derive it (${why}); write it with: ssh-keygen -y -f ${identityFile} > ${pub}` });
    });
  });
}

/** Serves one of INSTALL_PATHS (public: the script, the program and the fencing public key hold no secrets). */
export async function serveInstall(path: string, o: { stateDir: string; tls: boolean; source?: string; fenceIdentityFile?: string }, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const source = o.source ?? PROGRAM_SOURCE;
  if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, `${path} takes GET\n`);
  if (path === FENCE_KEY_PATH) {
    const found = o.fenceIdentityFile === undefined ? { status: 404 as const, why: 'this proxy has no fencing key configured (standby.ssh.identityFile)' } : await fencePublicKey(o.fenceIdentityFile);
    return 'key' in found ? text(res, 200, found.key + '\n') : text(res, found.status, found.why.replace(/\s*\n\s*/g, ' ') + '\n');
  }
  if (path === '/_standby/install.sh') {
    const base = baseUrl(req, o.tls);
    if (!base) return text(res, 400, 'the Host header is not a plain host[:port]; fetch install.sh by the proxy\'s name or address\n');
    const script = readFileSync(join(source, 'installer', 'install.sh'), 'utf8').replace('__STANDBY_PROXY_URL__', base);
    return text(res, 200, script, 'text/x-shellscript; charset=utf-8');
  }
  let bundle: Bundle;
  try {
    bundle = await programBundle(o.stateDir, source);
  } catch (err) {
    return text(res, 500, `the proxy could not build the bundle: ${(err as Error).message}\n`);
  }
  if (path === '/_standby/bundle.sha256') return text(res, 200, `${bundle.sha256}  bundle.tar.gz\n`);
  res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': bundle.bytes, 'cache-control': 'no-store' });
  if (req.method === 'HEAD') return void res.end();
  await pipeline(createReadStream(bundle.file), res).catch(() => res.destroy());
}
