// Socket ids: the nonce part is random, in range, and keeps coming across refills of its pool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomNonce } from '../../src/ws/socket';

test('nonces are integers in [1, 2^30), different across pool refills', () => {
  // Three refills of the 1,024-nonce pool.
  const nonces = Array.from({ length: 3500 }, randomNonce);
  for (const n of nonces) assert.ok(Number.isInteger(n) && n >= 1 && n < 2 ** 30, `nonce ${n}`);
  // 3,500 draws from 2^30 values: a repeat is possible, a handful would mean a stuck pool.
  assert.ok(new Set(nonces).size >= 3495);
});
