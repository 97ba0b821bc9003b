// The built-in workspace server's file API (proxy/provision/workspace-files.ts)
// with a real server process: each op does what it says, on disk, and
// answers the file's sha256; hostile paths (.., absolute, NUL, too long, bad
// encoding, symbolic links out of the workspace) are refused with 4xx JSON,
// nothing is written outside the workspace, and the server keeps serving.
// Requests go through node:http with the raw path (fetch would normalize "..").
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startWorkspaceServer, type WorkspaceServer } from '../../proxy/provision/workspace-server.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** One request with the raw path; status and parsed JSON body. */
function raw(base: string, method: string, path: string, body?: Buffer | string): Promise<{ status: number; json: Record<string, unknown> }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method, path, headers: body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> });
        } catch {
          reject(new Error(`not JSON (${res.statusCode}): ${text.slice(0, 200)}`));
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the workspace server file API', () => {
  let top: string;
  let root: string;
  let outside: string;
  let server: WorkspaceServer;
  let bare: WorkspaceServer;

  before(async () => {
    top = mkdtempSync(join(tmpdir(), 'ws-files-'));
    root = join(top, 'workspace');
    outside = join(top, 'outside');
    mkdirSync(root);
    mkdirSync(outside);
    server = await startWorkspaceServer({ name: 'files-test', root });
    bare = await startWorkspaceServer({ name: 'no-root' });
  });
  after(async () => {
    await Promise.all([server?.close(), bare?.close()]);
    rmSync(top, { recursive: true, force: true });
  });

  test('PUT creates a file (and its folders) on disk and answers its sha256; a second PUT replaces it', async () => {
    const a = await raw(server.url, 'PUT', '/files/src/lib/a.txt', 'hello');
    assert.equal(a.status, 200);
    assert.deepEqual(a.json, { ok: true, name: 'files-test', path: 'src/lib/a.txt', size: 5, sha256: sha('hello') });
    assert.equal(readFileSync(join(root, 'src/lib/a.txt'), 'utf8'), 'hello');
    const b = await raw(server.url, 'PUT', '/files/src/lib/a.txt', 'bye');
    assert.equal(b.status, 200);
    assert.equal(b.json.sha256, sha('bye'));
    assert.equal(readFileSync(join(root, 'src/lib/a.txt'), 'utf8'), 'bye');
    // no temporary file is left beside it
    assert.deepEqual(readdirSync(join(root, 'src/lib')), ['a.txt']);
  });

  test('a percent-encoded name is decoded', async () => {
    const r = await raw(server.url, 'PUT', '/files/notes/with%20space%C3%A9.txt', 'x');
    assert.equal(r.status, 200);
    assert.equal(r.json.path, 'notes/with spaceé.txt');
    assert.equal(readFileSync(join(root, 'notes/with spaceé.txt'), 'utf8'), 'x');
  });

  test('PUT ?append=1 creates, then appends, and answers the whole file\'s sha256 and size', async () => {
    const one = Buffer.alloc(70_000, 1);
    const two = Buffer.alloc(30_000, 2);
    const a = await raw(server.url, 'PUT', '/files/checkpoints/ckpt.bin?append=1', one);
    assert.equal(a.status, 200);
    assert.equal(a.json.size, 70_000);
    assert.equal(a.json.sha256, sha(one));
    const b = await raw(server.url, 'PUT', '/files/checkpoints/ckpt.bin?append=1', two);
    assert.equal(b.status, 200);
    assert.equal(b.json.size, 100_000);
    assert.equal(b.json.sha256, sha(Buffer.concat([one, two])));
    assert.equal(sha(readFileSync(join(root, 'checkpoints/ckpt.bin'))), sha(Buffer.concat([one, two])));
  });

  test('DELETE removes a file; deleting a missing one (or under a missing folder) is a 200 too', async () => {
    await raw(server.url, 'PUT', '/files/docs/gone.txt', 'x');
    const r = await raw(server.url, 'DELETE', '/files/docs/gone.txt');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { ok: true, name: 'files-test', path: 'docs/gone.txt', size: 0, sha256: null });
    assert.equal(existsSync(join(root, 'docs/gone.txt')), false);
    assert.equal((await raw(server.url, 'DELETE', '/files/docs/gone.txt')).status, 200);
    assert.equal((await raw(server.url, 'DELETE', '/files/no/such/folder.txt')).status, 200);
  });

  test('POST ?renameTo= moves a file (into a new folder too) and answers the moved file\'s sha256; a missing source is 404', async () => {
    await raw(server.url, 'PUT', '/files/src/old.txt', 'content');
    const r = await raw(server.url, 'POST', `/files/src/old.txt?renameTo=${encodeURIComponent('data/new dir/new.txt')}`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { ok: true, name: 'files-test', path: 'src/old.txt', to: 'data/new dir/new.txt', size: 7, sha256: sha('content') });
    assert.equal(existsSync(join(root, 'src/old.txt')), false);
    assert.equal(readFileSync(join(root, 'data/new dir/new.txt'), 'utf8'), 'content');
    const missing = await raw(server.url, 'POST', '/files/src/old.txt?renameTo=src/x.txt');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.ok, false);
    assert.equal((await raw(server.url, 'POST', '/files/data/new%20dir/new.txt')).status, 400); // no renameTo
  });

  test('hostile paths are refused with 4xx JSON, nothing lands outside the workspace, and the server keeps serving', async () => {
    symlinkSync(outside, join(root, 'link-out')); // a folder link out of the workspace
    writeFileSync(join(outside, 'target.txt'), 'outside');
    symlinkSync(join(outside, 'target.txt'), join(root, 'file-link')); // a file link out
    await raw(server.url, 'PUT', '/files/inside.txt', 'in');
    const cases: [string, string, number][] = [
      ['PUT', '/files/../escape.txt', 400],
      ['PUT', '/files/a/../../escape.txt', 400],
      ['PUT', '/files/%2e%2e/escape.txt', 400],
      ['PUT', '/files/a/%2E%2E/%2e%2E/escape.txt', 400],
      ['PUT', '/files/%2Ftmp%2Fescape.txt', 400],
      ['PUT', '/files//tmp/escape.txt', 400],
      ['PUT', '/files/a/./b.txt', 400],
      ['PUT', '/files/', 400],
      ['PUT', '/files/a%00b.txt', 400],
      ['PUT', '/files/%ff%fe.txt', 400],
      ['PUT', `/files/${'d/'.repeat(600)}x`, 414],
      ['PUT', `/files/${'n'.repeat(300)}`, 414],
      ['PUT', '/files/link-out/escape.txt', 403],
      ['PUT', '/files/link-out/deeper/escape.txt', 403],
      ['PUT', '/files/file-link', 403],
      ['PUT', '/files/file-link?append=1', 403],
      ['DELETE', '/files/file-link', 403],
      ['DELETE', '/files/link-out/target.txt', 403],
      ['POST', '/files/file-link?renameTo=stolen.txt', 403],
      ['POST', '/files/inside.txt?renameTo=..%2Fescape.txt', 400],
      ['POST', '/files/inside.txt?renameTo=%2Ftmp%2Fescape.txt', 400],
      ['POST', '/files/inside.txt?renameTo=link-out%2Fescape.txt', 403],
      ['PUT', '/files/src', 409], // a folder
      ['PUT', '/files/inside.txt/below.txt', 409], // a file as a folder
      ['GET', '/files/inside.txt', 405],
      ['PATCH', '/files/inside.txt', 405],
    ];
    for (const [method, path, want] of cases) {
      const r = await raw(server.url, method, path, method === 'PUT' ? 'evil' : undefined);
      assert.equal(r.status, want, `${method} ${path.slice(0, 80)}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.ok, false);
      assert.equal(typeof r.json.error, 'string');
      assert.doesNotMatch(String(r.json.error), new RegExp(top), 'an error names no path of the machine');
    }
    assert.deepEqual(readdirSync(outside), ['target.txt']);
    assert.equal(readFileSync(join(outside, 'target.txt'), 'utf8'), 'outside');
    assert.equal(existsSync(join(top, 'escape.txt')), false);
    assert.equal(existsSync('/tmp/escape.txt'), false);
    assert.equal(readFileSync(join(root, 'inside.txt'), 'utf8'), 'in');
    assert.equal(server.running(), true);
    assert.equal((await raw(server.url, 'PUT', '/files/still-works.txt', 'ok')).status, 200);
  });

  test('with a token, a request without it (or with another) is refused with 401 and writes nothing', async () => {
    const locked = await startWorkspaceServer({ name: 'locked', root, filesToken: 's3cret-token' });
    try {
      const put = (headers: Record<string, string>) =>
        fetch(`${locked.url}/files/locked/a.txt`, { method: 'PUT', body: 'x', headers, signal: AbortSignal.timeout(5_000) });
      for (const headers of [{}, { 'x-standby-files-token': 'wrong' }, { 'x-standby-files-token': 's3cret-tokenX' }, { authorization: 'Bearer s3cret-token' }] as Record<string, string>[]) {
        const r = await put(headers);
        assert.equal(r.status, 401, JSON.stringify(headers));
        assert.equal(((await r.json()) as { ok: boolean }).ok, false);
      }
      assert.equal(existsSync(join(root, 'locked')), false);
      const ok = await put({ 'x-standby-files-token': 's3cret-token' });
      assert.equal(ok.status, 200);
      assert.equal(readFileSync(join(root, 'locked/a.txt'), 'utf8'), 'x');
      // the token is not on its command line
      assert.doesNotMatch(readFileSync(`/proc/${locked.pid}/cmdline`, 'utf8'), /s3cret/);
    } finally {
      await locked.close();
    }
  });

  test('without a workspace folder the file API answers 404 and writes nothing', async () => {
    const r = await raw(bare.url, 'PUT', '/files/a.txt', 'x');
    assert.equal(r.status, 404);
    assert.equal(r.json.ok, false);
    // the rest of the server is as before
    const echo = await raw(bare.url, 'GET', '/anything');
    assert.equal(echo.json.name, 'no-root');
  });
});
