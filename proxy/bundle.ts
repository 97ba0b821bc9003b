// The one-line installer's downloads, served by the proxy under /_standby/:
// install.sh (with this proxy's publicUrl baked in), bundle.tar.gz (the
// program: exactly core/program-files.ts's file set), bundle.sha256 and
// fence-key.pub (the public half of the key the proxy fences the standby with,
// which `standby install standby --proxy URL` authorizes).
// install.sh and fence-key.pub hold no secrets and are public; the bundle is
// served only to a request whose credential the caller's check accepts.
// The bundle is built once per process and program version, by an
// asynchronous `tar` child, and cached in <stateDir>/bundle/.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PROGRAM_SOURCE, programFiles, programVersion } from '../core/program-files.ts';
import type { ProxyConfig } from '../config/proxy.ts';
import { FENCE_KEY_PATH } from '../protocol/admin-api.ts';
import { sendTextProblem } from './problem.ts';

/** The downloads that need a credential (the program; its checksum goes with it). */
export const BUNDLE_PATHS: readonly string[] = ['/_standby/bundle.tar.gz', '/_standby/bundle.sha256'];

export interface Bundle {
  file: string;
  sha256: string;
  bytes: number;
  /** how long the build took, ms (0 when it came from the cache) */
  buildMs: number;
}

/** Version + a digest of the file list with sizes and mtimes: a changed checkout gets a new bundle (at the proxy's next start). */
function cacheKey(source: string, files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) {
    const st = lstatSync(join(source, f));
    h.update(`${f}\0${st.size}\0${st.mtimeMs}\n`);
  }
  return `${programVersion(source)}-${h.digest('hex').slice(0, 16)}`;
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/**
 * Runs tar; resolves with its exit code when it is 0, or 1 with only "file changed as we read it" lines:
 * the caller decides whether that change matters (a new hard link to a program file, made by an install
 * running beside the build, changes the file's ctime only).
 */
function tar(args: string[]): Promise<0 | 1> {
  return new Promise((resolve, reject) => {
    const child = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-10_000)));
    child.on('error', (e) => reject(new Error(`tar could not start (${e.message}): install tar and gzip on the proxy`)));
    child.on('close', (code) => {
      if (code === 0) return resolve(0);
      const lines = err.split('\n').filter((l) => l.trim() !== '');
      if (code === 1 && lines.every((l) => /: file changed as we read it$/.test(l))) return resolve(1);
      reject(new Error(`tar exited ${code}: ${err.trim()}`));
    });
  });
}

/** One bundle per state folder and program source for the process's life: the file list, its digest and the build happen once. */
const bundles = new Map<string, Promise<Bundle>>();

async function buildBundle(stateDir: string, source: string): Promise<Bundle> {
  const files = programFiles(source);
  const key = cacheKey(source, files);
  const dir = join(stateDir, 'bundle');
  const file = join(dir, `standby-${key}.tar.gz`);
  const sumFile = `${file}.sha256`;
  if (existsSync(file) && existsSync(sumFile)) return { file, sha256: readFileSync(sumFile, 'utf8').trim(), bytes: statSync(file).size, buildMs: 0 };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const started = performance.now();
  const list = `${file}.list`;
  const tmp = `${file}.partial`;
  writeFileSync(list, files.join('\n') + '\n');
  try {
    // gzip -1: a 2.6x faster build for a 12% larger download (docs/operations.md); the list names every file, so no recursion
    const changed = await tar(['--use-compress-program=gzip -1', '-cf', tmp, '-C', source, '--no-recursion', '-T', list]);
    // tar saw a file change: a new content has a new size or mtime; the same ones mean a ctime-only change (a hard link)
    if (changed === 1 && cacheKey(source, files) !== key) throw new Error('a program file changed while the bundle was built (an upgrade under way?): try again');
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
}

/** The bundle for this program: built once (concurrent callers share the build), cached in stateDir; a failed build is tried again by the next request. */
export function programBundle(stateDir: string, source = PROGRAM_SOURCE): Promise<Bundle> {
  const k = `${stateDir}\0${source}`;
  const have = bundles.get(k);
  if (have) return have;
  const p = buildBundle(stateDir, source);
  bundles.set(k, p);
  p.catch(() => bundles.delete(k));
  return p;
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '::0', '0:0:0:0:0:0:0:0']);

/**
 * The URL hosts reach this proxy by, from its config only (never a request's Host): publicUrl, else the
 * listen address when it names one host (`port` is the bound port, for a listen.port of 0); undefined
 * when neither says (a wildcard listen address and no publicUrl).
 */
export function proxyPublicUrl(c: Pick<ProxyConfig, 'publicUrl' | 'listen' | 'tls'>, port: number): string | undefined {
  if (c.publicUrl !== undefined) return c.publicUrl;
  if (WILDCARDS.has(c.listen.host)) return undefined;
  const host = c.listen.host.includes(':') ? `[${c.listen.host}]` : c.listen.host;
  return `${c.tls ? 'https' : 'http'}://${host}:${c.listen.port || port}`;
}

/** Why there is no URL to give: names the field to set. */
export function noPublicUrl(c: Pick<ProxyConfig, 'listen'>): string {
  return `this proxy has no publicUrl in proxy.json and listens on ${c.listen.host || '*'}:${c.listen.port} (every address), so it cannot tell hosts which URL reaches it: set publicUrl (e.g. "publicUrl": "https://proxy.example.com") and restart the proxy`;
}

function text(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The public key line beside the fencing key (`<identityFile>.pub`), else derived from it with `ssh-keygen -y`. */
type FenceKeyAnswer = { key: string } | { code: 'STANDBY_ERR_NOT_FOUND' | 'STANDBY_ERR_CONFIG_UNREADABLE'; why: string };

async function fencePublicKey(identityFile: string): Promise<FenceKeyAnswer> {
  const pub = `${identityFile}.pub`;
  const line = (t: string) => t.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#')) ?? '';
  try {
    const key = line(readFileSync(pub, 'utf8'));
    if (key) return { key };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { code: 'STANDBY_ERR_CONFIG_UNREADABLE', why: `the proxy cannot read its fencing public key ${pub}: ${(err as Error).message}` };
  }
  if (!existsSync(identityFile)) {
    return { code: 'STANDBY_ERR_NOT_FOUND', why: `this proxy has no fencing key: neither ${pub} nor ${identityFile} (standby.ssh.identityFile in proxy.json) exists; give the standby --fence-key-file with the proxy's public key, or fix standby.ssh.identityFile` };
  }
  return new Promise((resolve) => {
    execFile('ssh-keygen', ['-y', '-f', identityFile], { encoding: 'utf8', timeout: 5_000 }, (err, stdout, stderr) => {
      const key = line(stdout ?? '');
      if (!err && key) return resolve({ key });
      const why = (stderr ?? '').trim().split('\n')[0] || (err?.message ?? 'no output');
      resolve({ code: 'STANDBY_ERR_CONFIG_UNREADABLE', why: `${pub} is missing and ssh-keygen -y -f ${identityFile} could not derive it (${why}); write it with: ssh-keygen -y -f ${identityFile} > ${pub}` });
    });
  });
}

export interface InstallServing {
  stateDir: string;
  /** the URL install.sh names (proxyPublicUrl), or undefined: install.sh is refused with `noUrl` */
  publicUrl: string | undefined;
  noUrl: string;
  /** whether the request may download the program (the bundle and its checksum); when it may not, this has answered it (401 or 429) */
  mayDownload: (req: IncomingMessage, res: ServerResponse) => boolean;
  source?: string;
  fenceIdentityFile?: string;
}

/**
 * Serves one of INSTALL_PATHS: install.sh and fence-key.pub to anyone (no secrets), the program only with a
 * credential. Refusals are text lines ending in their code (problem.ts), the 401/429 of the throttle JSON.
 */
export async function serveInstall(path: string, serving: InstallServing, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const source = serving.source ?? PROGRAM_SOURCE;
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendTextProblem(res, 'STANDBY_ERR_METHOD_NOT_ALLOWED', `${path} takes GET`, { headers: { allow: 'GET, HEAD' } });
  if (path === FENCE_KEY_PATH) {
    const found: FenceKeyAnswer = serving.fenceIdentityFile === undefined ? { code: 'STANDBY_ERR_NOT_FOUND', why: 'this proxy has no fencing key configured (standby.ssh.identityFile)' } : await fencePublicKey(serving.fenceIdentityFile);
    // an unreadable key is the proxy's fault, not the request's: 500, as before the codes
    return 'key' in found ? text(res, 200, found.key + '\n') : sendTextProblem(res, found.code, found.why, { status: found.code === 'STANDBY_ERR_NOT_FOUND' ? 404 : 500 });
  }
  if (path === '/_standby/install.sh') {
    if (serving.publicUrl === undefined) return sendTextProblem(res, 'STANDBY_ERR_NO_PUBLIC_URL', serving.noUrl);
    const script = readFileSync(join(source, 'installer', 'install.sh'), 'utf8').replace('__STANDBY_PROXY_URL__', serving.publicUrl);
    return text(res, 200, script, 'text/x-shellscript; charset=utf-8');
  }
  if (!serving.mayDownload(req, res)) return;
  let bundle: Bundle;
  try {
    bundle = await programBundle(serving.stateDir, source);
  } catch (err) {
    return sendTextProblem(res, 'STANDBY_ERR_INSTALL_FAILED', `the proxy could not build the bundle: ${(err as Error).message}`);
  }
  if (path === '/_standby/bundle.sha256') return text(res, 200, `${bundle.sha256}  bundle.tar.gz\n`);
  res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': bundle.bytes, 'cache-control': 'no-store' });
  if (req.method === 'HEAD') return void res.end();
  await pipeline(createReadStream(bundle.file), res).catch(() => res.destroy());
}
