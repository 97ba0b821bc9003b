// The built-in workspace server's file API (workspace-server.ts, given a
// workspace folder): what the demo's writer edits the workspace with, through
// the proxy, as a developer would through code-server.
//   PUT    /files/<path>                  body = the content (created or replaced)
//   PUT    /files/<path>?append=1         body appended (the file created if missing)
//   DELETE /files/<path>                  removed (200 also when it was not there)
//   POST   /files/<path>?renameTo=<path>  moved (over the target, as rename(2))
// Each answers 200 only once the change is on disk: a write goes to a
// temporary file, fsync, rename, fsync of the folder; an append fsyncs the
// file. The answer: {ok, name, path, to?, size, sha256} (sha256 of the whole
// file after the change, null when it is gone).
//
// The proxy forwards the internet's requests here: a path is relative, at most
// MAX_PATH_BYTES, without NUL, empty, "." or ".." segments, and never goes
// through a symbolic link (each component is lstat'ed; the parent's realpath
// is checked to be inside the root's). Refusals and failures are 4xx/5xx JSON
// ({ok: false, error}), never a crash.
//
// It changes the workspace for whoever reaches it: through the proxy, the
// internet. Given a token (FILES_TOKEN_ENV), a request without it in its
// x-standby-files-token header is refused (401) before anything else.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, realpath, rename, rm, unlink } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, dirname, join, sep } from 'node:path';

/** A file path longer than this (bytes, decoded) is refused; a segment longer than NAME_MAX_BYTES too. */
export const MAX_PATH_BYTES = 1024;
const NAME_MAX_BYTES = 255;
const PREFIX = '/files/';
/** the environment variable the server process takes the file API's token from */
export const FILES_TOKEN_ENV = 'STANDBY_WORKSPACE_FILES_TOKEN';
export const FILES_TOKEN_HEADER = 'x-standby-files-token';

function tokenMatches(given: string | string[] | undefined, token: string): boolean {
  if (typeof given !== 'string') return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/** A refusal or failure with its HTTP status. */
class FileApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

let tmpCounter = 0;

/**
 * Serves a /files/... request and returns true; returns false for any other
 * URL (the caller serves it). Without a root every /files/... is 404.
 */
export function serveFile(req: IncomingMessage, res: ServerResponse, body: Buffer, name: string, root: string | undefined, token?: string): boolean {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const pathPart = q < 0 ? url : url.slice(0, q);
  if (!pathPart.startsWith(PREFIX)) return false;
  const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const answer = (status: number, json: Record<string, unknown>) => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(json));
  };
  if (root === undefined) {
    answer(404, { ok: false, error: 'this workspace server has no workspace folder: no file API' });
    return true;
  }
  if (token !== undefined && !tokenMatches(req.headers[FILES_TOKEN_HEADER], token)) {
    answer(401, { ok: false, error: `the file API wants its token in the ${FILES_TOKEN_HEADER} header` });
    return true;
  }
  handle(req.method ?? '', pathPart.slice(PREFIX.length), query, body, root)
    .then((out) => answer(200, { ok: true, name, ...out }))
    .catch((err: unknown) => {
      if (err instanceof FileApiError) answer(err.status, { ok: false, error: err.message });
      else answer(statusOf(err), { ok: false, error: `the file operation failed (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
    });
  return true;
}

/** A filesystem error's status; its message (with our paths) is not sent. */
function statusOf(err: unknown): number {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 404;
    case 'ENOTDIR':
    case 'EISDIR':
    case 'ENOTEMPTY':
    case 'EEXIST':
      return 409;
    case 'ENOSPC':
    case 'EDQUOT':
      return 507;
    case 'ENAMETOOLONG':
      return 414;
    default:
      return 500;
  }
}

interface Done {
  path: string;
  to?: string;
  size: number;
  sha256: string | null;
}

async function handle(method: string, rawPath: string, query: URLSearchParams, body: Buffer, root: string): Promise<Done> {
  const rel = checkPath(decode(rawPath));
  const realRoot = await realpath(root).catch(() => {
    throw new FileApiError(503, 'the workspace folder is missing');
  });
  if (method === 'PUT') {
    const file = await place(realRoot, rel, true);
    if (query.get('append') === '1') return { path: rel, ...(await appendDurably(file, body)) };
    await writeDurably(file, body);
    return { path: rel, size: body.length, sha256: sha256(body) };
  }
  if (method === 'DELETE') {
    const file = await place(realRoot, rel, false).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // a parent is missing: nothing to delete
      throw err;
    });
    if (file !== undefined) {
      try {
        await unlink(file);
        await fsyncDir(dirname(file));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return { path: rel, size: 0, sha256: null };
  }
  if (method === 'POST') {
    const target = query.get('renameTo');
    if (target === null) throw new FileApiError(400, 'POST /files/<path> needs ?renameTo=<path>');
    const toRel = checkPath(target);
    const from = await place(realRoot, rel, false);
    const st = await lstat(from);
    if (!st.isFile()) throw new FileApiError(409, 'only a regular file can be renamed');
    const to = await place(realRoot, toRel, true);
    await rename(from, to);
    await fsyncDir(dirname(to));
    if (dirname(from) !== dirname(to)) await fsyncDir(dirname(from));
    return { path: rel, to: toRel, ...(await hashFile(to)) };
  }
  throw new FileApiError(405, `${method.slice(0, 10)} is not a file operation (PUT, DELETE, POST ?renameTo=)`);
}

function decode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new FileApiError(400, 'the path is not valid percent-encoded UTF-8');
  }
}

/** The path if it is one we accept (relative, bounded, no NUL, no empty/./.. segment); else a 400. */
function checkPath(rel: string): string {
  if (rel.includes('\0')) throw new FileApiError(400, 'the path holds a NUL');
  if (Buffer.byteLength(rel) > MAX_PATH_BYTES) throw new FileApiError(414, `the path is longer than ${MAX_PATH_BYTES} bytes`);
  if (rel.startsWith('/')) throw new FileApiError(400, 'the path must be relative to the workspace');
  for (const seg of rel.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') throw new FileApiError(400, 'the path has an empty, "." or ".." segment');
    if (Buffer.byteLength(seg) > NAME_MAX_BYTES) throw new FileApiError(414, `a path segment is longer than ${NAME_MAX_BYTES} bytes`);
  }
  return rel;
}

/**
 * The absolute path of `rel` under `realRoot`, never through a symbolic link:
 * each folder on the way is lstat'ed (made when `create`), the file itself
 * must not be a link nor a folder, and the parent's realpath is checked.
 */
async function place(realRoot: string, rel: string, create: boolean): Promise<string> {
  const segs = rel.split('/');
  let dir = realRoot;
  for (const seg of segs.slice(0, -1)) {
    dir = join(dir, seg);
    let st = await lstat(dir).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && create) return undefined;
      throw err;
    });
    if (st === undefined) {
      await mkdir(dir, { mode: 0o755 }).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      });
      st = await lstat(dir);
    }
    if (st.isSymbolicLink()) throw new FileApiError(403, 'the path goes through a symbolic link');
    if (!st.isDirectory()) throw new FileApiError(409, 'a parent of the path is not a folder');
  }
  const real = await realpath(dir);
  if (real !== realRoot && !real.startsWith(realRoot + sep)) throw new FileApiError(403, 'the path leads out of the workspace');
  const file = join(real, segs[segs.length - 1]!);
  const st = await lstat(file).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  });
  if (st?.isSymbolicLink()) throw new FileApiError(403, 'the path is a symbolic link');
  if (st?.isDirectory()) throw new FileApiError(409, 'the path is a folder');
  return file;
}

/** Content to a temporary file beside `file`, fsync, rename over it, fsync of the folder. */
async function writeDurably(file: string, data: Buffer): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file).slice(0, 200)}.tmp-${process.pid}-${++tmpCounter}`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(file));
}

/** Appends and fsyncs (the folder too when the file is new); the whole file's size and sha256. */
async function appendDurably(file: string, data: Buffer): Promise<{ size: number; sha256: string }> {
  const existed = await lstat(file).then(() => true, () => false);
  const fh = await open(file, 'a', 0o644);
  try {
    await fh.appendFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (!existed) await fsyncDir(dirname(file));
  return hashFile(file);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function hashFile(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    size += (chunk as Buffer).length;
    hash.update(chunk as Buffer);
  }
  return { size, sha256: hash.digest('hex') };
}
