// Whether the agent may push (agent/push-gate.ts): the proxy's grants, and the
// standby's refusal, which no grant of that epoch or an older one undoes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PushGate } from '../../agent/push-gate.ts';

describe('PushGate', () => {
  test('without a proxy it pushes from the start, under no epoch', () => {
    const g = new PushGate(false);
    assert.equal(g.pushing, true);
    assert.equal(g.epoch, undefined);
  });

  test('with a proxy nothing is pushed until it grants primary', () => {
    const g = new PushGate(true);
    assert.equal(g.pushing, false);
    assert.deepEqual(g.grant('primary', 3), { now: 'primary' });
    assert.equal(g.pushing, true);
    assert.equal(g.epoch, 3);
    assert.equal(g.grant('primary', 3), undefined, 'a repeat changes nothing');
  });

  test('fenced: pushing stops; the epoch is still told, for a comparison', () => {
    const g = new PushGate(true);
    g.grant('primary', 3);
    assert.deepEqual(g.grant('fenced', 4), { now: 'fenced', wasPushing: true });
    assert.equal(g.pushing, false);
    assert.equal(g.epoch, undefined);
    assert.equal(g.toldEpoch, 4);
    assert.equal(g.grant('fenced', 4), undefined, 'a repeat changes nothing');
    assert.deepEqual(g.grant('fenced', 5), { now: 'fenced', wasPushing: false }, 'a newer fence is news, but nothing was being pushed');
  });

  test('without a proxy, a fence (the standby refused) stops a host that was pushing', () => {
    const g = new PushGate(false);
    assert.equal(g.refuse(), 0);
    assert.deepEqual(g.grant('fenced', 0), { now: 'fenced', wasPushing: true });
    assert.equal(g.pushing, false);
  });

  test('a refused epoch: no grant of it or an older one counts; a newer one does', () => {
    const g = new PushGate(true);
    g.grant('primary', 6);
    assert.equal(g.refuse(), 6);
    assert.equal(g.pushing, false, 'refused: pushing stops at once, before any fenced grant');
    g.grant('fenced', 6);
    assert.equal(g.grant('primary', 6), undefined);
    assert.equal(g.grant('primary', 5), undefined);
    assert.equal(g.pushing, false);
    assert.deepEqual(g.grant('primary', 7), { now: 'primary' });
    assert.equal(g.pushing, true);
    assert.equal(g.epoch, 7);
  });
});
