// Sync settings the proxy pushes (grant.settings), applied by the engine
// without a restart, on real rsync and sshd: a new exclude deletes nothing
// the standby holds (not even in a full reconcile), and removing it sends
// what it kept out at once (a full pass) and watches its folders again.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('excludes changed live: a new one deletes nothing on the standby, a removed one sends what it kept out', async () => {
  const pair = await startPair({
    before: (gpu) => {
      mkdirSync(join(gpu, 'logs'));
      writeFileSync(join(gpu, 'logs', 'a.log'), 'a, first');
      writeFileSync(join(gpu, 'logs', 'c.log'), 'c');
      writeFileSync(join(gpu, 'keep.txt'), 'keep');
    },
  });
  try {
    assert.equal(readFileSync(join(pair.cpu, 'logs', 'c.log'), 'utf8'), 'c');
    pair.engine.applySettings({ exclude: ['logs/'] });
    const s = pair.engine.status().settings;
    assert.deepEqual(s, { delayMs: pair.config.sync.delayMs, maxDelayMs: pair.config.sync.maxDelayMs, exclude: ['logs/'], pushed: true });

    writeFileSync(join(pair.gpu, 'logs', 'a.log'), 'a, second');
    writeFileSync(join(pair.gpu, 'logs', 'b.log'), 'b');
    rmSync(join(pair.gpu, 'logs', 'c.log'));
    writeFileSync(join(pair.gpu, 'other.txt'), 'other');
    await waitFor('other.txt on the standby', () => existsSync(join(pair.cpu, 'other.txt')), { timeoutMs: 10_000 });
    // a full reconcile (rsync --delete over the whole tree) under the new exclude
    pair.engine.requestFullResync('test: a full reconcile under the new exclude');
    await waitFor('the full reconcile', () => pair.engine.status().fullPasses >= 2, { timeoutMs: 15_000 });
    await pair.synced();
    assert.equal(readFileSync(join(pair.cpu, 'logs', 'c.log'), 'utf8'), 'c', 'the standby kept what the new exclude covers: nothing deleted');
    assert.equal(readFileSync(join(pair.cpu, 'logs', 'a.log'), 'utf8'), 'a, first', 'nor updated');
    assert.equal(existsSync(join(pair.cpu, 'logs', 'b.log')), false, 'nor sent');

    // the proxy dropped it: agent.json's excludes again (none of the user's)
    const fullBefore = pair.engine.status().fullPasses;
    pair.engine.applySettings(undefined);
    assert.deepEqual(pair.engine.status().settings, { delayMs: pair.config.sync.delayMs, maxDelayMs: pair.config.sync.maxDelayMs, exclude: [], pushed: false });
    // no new write: a full pass sends it
    await waitFor('a full pass after the exclude went', () => pair.engine.status().fullPasses > fullBefore, { timeoutMs: 15_000 });
    assert.equal(existsSync(join(pair.cpu, 'logs', 'b.log')), true, 'what the exclude kept out was sent');
    assert.equal(existsSync(join(pair.cpu, 'logs', 'c.log')), false, 'and its deletion applied');
    assert.equal(readFileSync(join(pair.cpu, 'logs', 'a.log'), 'utf8'), 'a, second');
    // its folder is watched again
    writeFileSync(join(pair.gpu, 'logs', 'd.log'), 'd');
    await waitFor('a new file in the folder once excluded', () => existsSync(join(pair.cpu, 'logs', 'd.log')), { timeoutMs: 10_000 });
    await pair.synced();
    assert.deepEqual(await pair.verify(), []);
  } finally {
    await pair.close();
  }
});

test('delays pushed live: the open batch waits by the new quiet delay; none pushed: agent.json\'s again', async () => {
  const pair = await startPair({ settings: { sync: { delayMs: 50 } } });
  try {
    pair.engine.applySettings({ delayMs: 1_200 });
    assert.deepEqual(pair.engine.status().settings, { delayMs: 1_200, maxDelayMs: 1_200, exclude: [], pushed: true }, 'maxDelayMs raised to the pushed delay');
    const starts: number[] = [];
    pair.engine.on('pass', (e) => starts.push(performance.now() - e.durationMs));
    const wroteAt = performance.now();
    writeFileSync(join(pair.gpu, 'one.txt'), '1');
    await waitFor('the pass', () => starts.length > 0, { timeoutMs: 10_000 });
    const waited = starts[0]! - wroteAt;
    assert.ok(waited >= 1_100, `the pass began ${Math.round(waited)} ms after the write: the pushed 1200 ms quiet delay, not agent.json's 50`);
    pair.engine.applySettings({});
    assert.deepEqual(pair.engine.status().settings, { delayMs: 50, maxDelayMs: 1_000, exclude: [], pushed: false });
  } finally {
    await pair.close();
  }
});
