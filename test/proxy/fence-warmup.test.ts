// The fence's warm-up connection: the failover loop asks for it every 25 ms
// while anything is off, so a standby that refuses connections sees attempts
// spaced by a backoff, not one per tick; a standby that answers gets one.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { FenceWarmup } from '../../proxy/fence-warmup.ts';
import { startSshd } from '../../proxy/provision/loopback-sshd.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const TICK_MS = 25; // how often proxy/failover.ts evaluates, and may ask for a warm-up

test('a standby that drops every connection gets a few attempts, spaced by the backoff, not one per tick', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-warmup-'));
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    s.destroy(); // as an sshd over MaxStartups, or a firewall's reset
  });
  let warm: FenceWarmup | undefined;
  try {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const identityFile = join(dir, 'key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', identityFile], { stdio: 'ignore', timeout: 20_000 });
    warm = new FenceWarmup({ host: '127.0.0.1', port: (server.address() as { port: number }).port, user: 'root', identityFile }, pino({ level: 'silent' }));
    const ticks = Math.round(1_500 / TICK_MS);
    for (let i = 0; i < ticks; i++) {
      warm.warm();
      await sleep(TICK_MS);
    }
    // backoff 500 ms, then 1 s (+-20 %): attempts at about 0, 0.5 and 1.5 s
    assert.ok(connections >= 1 && connections <= 4, `${connections} connections in ${ticks} ticks`);
  } finally {
    warm?.close();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a standby that answers: one connection, kept, however often it is asked', async () => {
  const sshd = await startSshd();
  const warm = new FenceWarmup({ host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile }, pino({ level: 'silent' }));
  try {
    await waitFor("the fixture's own start probe logged", () => sshd.connections() >= 1, { timeoutMs: 5_000 });
    const before = sshd.connections();
    for (let i = 0; i < 40; i++) {
      warm.warm();
      await sleep(TICK_MS);
    }
    const client = await waitFor('the warm connection ready', () => warm.take(), { timeoutMs: 10_000 });
    assert.equal(sshd.connections() - before, 1);
    await new Promise((resolve) => {
      client.on('close', () => resolve(undefined));
      client.end(); // ours now: closed before sshd goes
    });
  } finally {
    warm.close();
    await sshd.close();
  }
});
