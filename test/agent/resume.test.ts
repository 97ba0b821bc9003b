// The resume command on a recovery's new GPU, through the heartbeat socket
// with real processes: a primary grant with resume: true runs agent.json's
// command (or the workspace's .standby/resume) once, its exit is in the
// heartbeats; a grant without resume runs nothing; a second grant, a
// reconnect or a restarted agent does not run it again; a file that cannot be
// executed (or that group or others may write) fails to start; a workspace
// file runs as its owner; a timeout kills it; the agent's end does not.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { Resumer } from '../../agent/resume.ts';
import type { ResumeState } from '../../protocol/messages.ts';
import { inProcessAgent, startAgentSocket } from '../fixtures/agent-socket.ts';
import { waitFor } from '../fixtures/wait-for.ts';

interface World {
  dir: string;
  workspace: string;
  runDir: string;
  /** starts an agent (its heartbeat client with a resumer) on the world's folders; a second call is a restarted agent */
  agent(): Promise<Agent>;
}

interface Agent {
  grant(o: { epoch: number; role?: 'primary' | 'fenced'; resume?: boolean }): void;
  /** the resume state of the next heartbeat after now */
  nextResume(): Promise<ResumeState | null>;
  /** waits for a heartbeat whose resume state passes `test` */
  resumeWhere(what: string, test: (r: ResumeState | null) => boolean): Promise<ResumeState | null>;
  close(): Promise<void>;
}

/** A proxy's agent socket on loopback; agents with `resume` settings connect to it. */
async function world(t: TestContext, resume: Record<string, unknown>): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'standby-resume-'));
  const workspace = join(dir, 'workspace');
  const runDir = join(dir, 'run');
  mkdirSync(workspace);
  const proxy = await startAgentSocket();
  const received = proxy.received;
  const log = pino({ level: 'silent' });
  const closers: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const c of closers.reverse()) await c();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    workspace,
    runDir,
    async agent() {
      // no standby section: a primary grant has nowhere to push (this test is about the resume command only)
      const { config, client, close } = inProcessAgent({ hostId: 'gpu-new', workspace, runDir, proxy: { url: proxy.url, token: 'agent-token-gpu-new', heartbeatIntervalMs: 50 }, resume });
      const resumer = new Resumer(config, log);
      resumer.onChange = () => client.beatNow();
      client.resumer = resumer;
      const before = proxy.connections();
      closers.push(close);
      client.start();
      const ws = await proxy.connected({ after: before });
      const beats = () => received.filter((m) => m['type'] === 'heartbeat');
      return {
        grant: ({ epoch, role = 'primary', resume: r }) => ws.send(JSON.stringify({ type: 'grant', epoch, role, reason: 'test', heartbeatSeq: null, ...(r ? { resume: true } : {}) })),
        async nextResume() {
          const from = beats().length;
          const hb = await waitFor('a heartbeat', () => beats()[from], { timeoutMs: 5_000 });
          return hb['resume'] as ResumeState | null;
        },
        async resumeWhere(what, test) {
          const from = beats().length;
          const hb = await waitFor(what, () => beats().slice(from).find((m) => test(m['resume'] as ResumeState | null)), { timeoutMs: 15_000 });
          return hb['resume'] as ResumeState | null;
        },
        close,
      };
    },
  };
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
}

test('a grant with resume runs the command in the workspace: its output in the log (0600), its exit code in the heartbeats', async (t) => {
  const w = await world(t, { command: 'echo "ran at epoch $STANDBY_RESUME_EPOCH" >> ran.txt; echo to-the-log; exit 3' });
  const agent = await w.agent();
  agent.grant({ epoch: 3, resume: true });
  const r = await agent.resumeWhere('the command exited', (x) => x?.state === 'exited');
  assert.equal(r?.exitCode, 3);
  assert.equal(r?.signal, null);
  assert.equal(r?.error, null);
  assert.equal(r?.epoch, 3);
  assert.ok(typeof r?.pid === 'number');
  assert.ok(r !== null && r.endedAgeMs !== null && r.endedAgeMs <= r.startedAgeMs);
  assert.deepEqual(lines(join(w.workspace, 'ran.txt')), ['ran at epoch 3']);
  const logFile = join(w.runDir, 'resume.log');
  assert.match(readFileSync(logFile, 'utf8'), /to-the-log/);
  assert.equal(statSync(logFile).mode & 0o777, 0o600);
});

test('grants without resume (primary or fenced) run nothing', async (t) => {
  const w = await world(t, { command: 'echo ran >> ran.txt' });
  const agent = await w.agent();
  agent.grant({ epoch: 1, role: 'fenced' });
  agent.grant({ epoch: 2, role: 'primary' });
  // a fenced grant that says resume is not a switch back to this host either
  agent.grant({ epoch: 2, role: 'fenced', resume: true });
  await agent.nextResume();
  assert.equal(await agent.nextResume(), null);
  assert.deepEqual(lines(join(w.workspace, 'ran.txt')), []);
});

test('it runs once: a second grant, a reconnect and a restarted agent do not run it again for that epoch', async (t) => {
  const w = await world(t, { command: 'echo ran >> ran.txt' });
  const first = await w.agent();
  first.grant({ epoch: 4, resume: true });
  await first.resumeWhere('the command exited', (x) => x?.state === 'exited');
  first.grant({ epoch: 4, resume: true });
  first.grant({ epoch: 4, resume: true });
  await first.nextResume();
  await first.close();
  // the agent restarted (a new process: a new resumer on the same run folder), granted the same again
  const second = await w.agent();
  const before = await second.nextResume();
  assert.equal(before?.state, 'exited', 'a restarted agent reports the run its run folder recorded');
  assert.equal(before?.exitCode, 0);
  second.grant({ epoch: 4, resume: true });
  await second.nextResume();
  const after = await second.nextResume();
  assert.equal(after?.epoch, 4);
  assert.deepEqual(lines(join(w.workspace, 'ran.txt')), ['ran'], 'ran exactly once');
});

test('without a command, the workspace\'s executable .standby/resume runs; without one, nothing', async (t) => {
  const w = await world(t, {});
  const agent = await w.agent();
  mkdirSync(join(w.workspace, '.standby'));
  const file = join(w.workspace, '.standby', 'resume');
  writeFileSync(file, '#!/bin/sh\npwd > where.txt\nexit 0\n', { mode: 0o700 });
  agent.grant({ epoch: 2, resume: true });
  const r = await agent.resumeWhere('the file exited', (x) => x?.state === 'exited');
  assert.equal(r?.exitCode, 0);
  assert.deepEqual(lines(join(w.workspace, 'where.txt')), [w.workspace], 'it runs in the workspace');

  const empty = await world(t, {});
  const bare = await empty.agent();
  bare.grant({ epoch: 2, resume: true });
  await bare.nextResume();
  assert.equal(await bare.nextResume(), null, 'no command and no file: nothing ran, nothing reported');
});

test('a resume file that cannot be executed fails to start, and says why', async (t) => {
  for (const [name, make] of [
    ['not executable', (f: string) => writeFileSync(f, '#!/bin/sh\necho ran > ran.txt\n', { mode: 0o600 })],
    ['a link to a missing program', (f: string) => symlinkSync('/nonexistent/standby-no-such-program', f)],
  ] as const) {
    const w = await world(t, { file: 'bin/resume' });
    mkdirSync(join(w.workspace, 'bin'));
    make(join(w.workspace, 'bin', 'resume'));
    const agent = await w.agent();
    agent.grant({ epoch: 2, resume: true });
    const r = await agent.resumeWhere(`${name}: failed to start`, (x) => x !== null && x.state !== 'running');
    assert.equal(r?.state, 'failed-to-start', name);
    assert.equal(r?.exitCode, null);
    assert.match(r?.error ?? '', /did not start: .*(EACCES|ENOENT)/, name);
    assert.equal(existsSync(join(w.workspace, 'ran.txt')), false);
  }
});

test('timeoutS ends its process group; the agent stopping does not end it', async (t) => {
  const w = await world(t, { command: 'sleep 30', timeoutS: 0.3 });
  const agent = await w.agent();
  agent.grant({ epoch: 2, resume: true });
  const r = await agent.resumeWhere('the command ended on its timeout', (x) => x?.state === 'exited');
  assert.equal(r?.signal, 'SIGTERM');
  assert.match(r?.error ?? '', /timeout/);

  // no timeout: the command outlives the agent
  const long = await world(t, { command: 'echo $$ > pid.txt; exec sleep 30' });
  const a = await long.agent();
  a.grant({ epoch: 2, resume: true });
  const running = await a.resumeWhere('it runs', (x) => x?.state === 'running');
  const pid = running!.pid!;
  t.after(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  await waitFor('its pid file', () => lines(join(long.workspace, 'pid.txt'))[0], { timeoutMs: 5_000 });
  await a.close();
  process.kill(pid, 0); // throws ESRCH if the agent's end took it along
  // a restarted agent sees it still running (the same process: pid and start time)
  const again = await long.agent();
  const seen = await again.nextResume();
  assert.equal(seen?.state, 'running');
  assert.equal(seen?.pid, pid);
  process.kill(pid, 'SIGKILL');
  const gone = await again.resumeWhere('its end seen by the restarted agent', (x) => x?.state === 'exited');
  assert.match(gone?.error ?? '', /not seen/);
});

test('a workspace file runs as its owner (an agent running as root lends its root to nobody), and not at all when group or others may write it', async (t) => {
  const w = await world(t, {});
  mkdirSync(join(w.workspace, '.standby'));
  const file = join(w.workspace, '.standby', 'resume');
  writeFileSync(file, '#!/bin/sh\necho "uid $(id -u)"\n', { mode: 0o755 });
  chmodSync(file, 0o775);
  const agent = await w.agent();
  agent.grant({ epoch: 2, resume: true });
  const refused = await agent.resumeWhere('refused', (x) => x !== null && x.state !== 'running');
  assert.equal(refused?.state, 'failed-to-start');
  assert.match(refused?.error ?? '', /writable by group or others \(mode 775\)/);

  if (process.getuid?.() !== 0) return t.skip('not root: the owner case needs root');
  const nobody = await world(t, {});
  chmodSync(nobody.dir, 0o755); // the owner must reach the workspace, its cwd
  mkdirSync(join(nobody.workspace, '.standby'));
  const theirs = join(nobody.workspace, '.standby', 'resume');
  writeFileSync(theirs, '#!/bin/sh\necho "uid $(id -u)"\n', { mode: 0o755 });
  chownSync(theirs, 65534, 65534);
  const a = await nobody.agent();
  a.grant({ epoch: 2, resume: true });
  const r = await a.resumeWhere('it ran', (x) => x?.state === 'exited');
  assert.equal(r?.exitCode, 0);
  assert.match(readFileSync(join(nobody.runDir, 'resume.log'), 'utf8'), /^uid 65534$/m);
});
