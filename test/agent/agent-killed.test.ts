// A SIGKILLed agent takes its ssh children along:
// its ControlMaster, any pass's rsync and ssh, and so its session on the
// standby's sshd. Before, the master (ssh -M -N) outlived the agent for good.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent, type Agent } from '../fixtures/agent-process.ts';
import { descendants } from '../../core/process-tree.ts';
import { commandLine, killMarked, pidsWithMarker } from '../fixtures/process-tree.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { waitFor } from '../fixtures/wait-for.ts';

/** sshd's per-connection processes: every descendant of the fixture's listener. */
function sshdSessions(sshd: Sshd): number[] {
  const listener = pidsWithMarker(join(sshd.dir, 'sshd_config'))[0]; // sessions retitle themselves ("sshd: root"); the listener keeps its -f
  assert.ok(listener, 'the sshd listener runs');
  return descendants(listener).filter((p) => p !== listener);
}

async function world(t: import('node:test').TestContext): Promise<{ agent: Agent; sshd: Sshd; src: string; runDir: string }> {
  const top = mkdtempSync(join(tmpdir(), 'standby-killed-'));
  const src = join(top, 'src');
  const dst = join(top, 'dst');
  const runDir = join(top, 'run');
  for (const d of [src, dst, runDir]) mkdirSync(d);
  writeFileSync(join(src, 'a.txt'), 'hello\n');
  let sshd: Sshd | undefined;
  let agent: Agent | undefined;
  t.after(async () => {
    await agent?.stop();
    killMarked(runDir); // what the agent left, had the test failed
    await sshd?.close();
    rmSync(top, { recursive: true, force: true });
  });
  sshd = await startSshd();
  agent = await startAgent({
    src,
    dst,
    target: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, sshOptions: sshd.sshOptions },
    dir: top,
    settings: { runDir },
  });
  await agent.ready(30_000);
  await agent.settled(20_000);
  return { agent, sshd, src, runDir };
}

async function assertAllGone(agent: Agent, sshd: Sshd, runDir: string): Promise<void> {
  agent.kill('SIGKILL');
  await agent.exited;
  const started = performance.now();
  await waitFor('no ssh or rsync of the killed agent', () => pidsWithMarker(runDir).length === 0, { timeoutMs: 5_000 })
    .catch((err: Error) => assert.fail(`${err.message}: left ${pidsWithMarker(runDir).map(commandLine).join(' | ')}`));
  await waitFor('no session on the standby', () => sshdSessions(sshd).length === 0, { timeoutMs: 5_000 })
    .catch((err: Error) => assert.fail(`${err.message}: left ${sshdSessions(sshd).map(commandLine).join(' | ')}`));
  assert.ok(performance.now() - started < 10_000);
}

test('SIGKILL of the agent in the middle of a pass: its rsync, the rsync\'s ssh and the master go, and every session on the standby', async (t) => {
  const { agent, sshd, src, runDir } = await world(t);
  writeFileSync(join(src, 'big.bin'), '');
  truncateSync(join(src, 'big.bin'), 512 * 1024 ** 2); // one large transfer, killed as soon as it starts
  await waitFor('the pass rsync', () => pidsWithMarker(runDir).find((p) => commandLine(p).startsWith('rsync')), { timeoutMs: 10_000, everyMs: 5 });
  await assertAllGone(agent, sshd, runDir);
});

test('SIGKILL of the agent: no ssh or rsync of it remains, and its sshd session on the standby is gone', async (t) => {
  const { agent, sshd, runDir } = await world(t);
  // the master is up, the agent's own child, and holds a session on the standby
  const master = await waitFor('the ssh control master', () => pidsWithMarker(runDir).find((p) => commandLine(p).includes(' -M ')), { timeoutMs: 10_000 });
  assert.ok(descendants(agent.pid).includes(master), "the master is the agent's child");
  await waitFor('its sshd session', () => sshdSessions(sshd).length > 0, { timeoutMs: 10_000 });
  await assertAllGone(agent, sshd, runDir);
});
