// The hold-back behind channel_vacated and member_removed: values come out after the hold, in
// the order they went in, unless cancelled; at shutdown everything comes out at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HoldBack } from '../../src/webhooks/hold-back';
import { eventually } from '../helpers/server';

test('held values are released in order after the hold, cancelled ones never, a replaced one at its new time', async () => {
  const released: string[] = [];
  const holds = new HoldBack<string>(100, (v) => released.push(v));
  holds.hold('a', 'a1');
  holds.hold('b', 'b1');
  holds.hold('c', 'c1');
  assert.equal(holds.cancel('b'), true);
  assert.equal(holds.cancel('b'), false);
  holds.hold('a', 'a2');
  assert.deepEqual(released, [], 'nothing before the hold is over');
  await eventually(() => released.length === 2, 5000, 'two releases');
  assert.deepEqual(released, ['c1', 'a2']);
});

test('releaseAll releases everything held at once, in order', () => {
  const released: string[] = [];
  const holds = new HoldBack<string>(60_000, (v) => released.push(v));
  holds.hold('x', 'x');
  holds.hold('y', 'y');
  holds.releaseAll();
  assert.deepEqual(released, ['x', 'y']);
  assert.equal(holds.cancel('x'), false);
});
