import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram } from '../../src/metrics/histogram';

test('buckets are cumulative, +Inf equals _count, le comes last', () => {
  const h = new Histogram({ name: 'd_seconds', help: 'h', labelNames: ['kind'], buckets: [0.25, 1, 5] });
  const s = h.series(['minor']);
  for (const v of [0.125, 0.25, 0.5, 1, 3, 7, 100]) h.observe(s, v);
  assert.equal(h.count(s), 7);
  assert.equal(h.sum(s), 111.875);
  assert.equal(
    h.write(''),
    'd_seconds_bucket{kind="minor",le="0.25"} 2\n' +
      'd_seconds_bucket{kind="minor",le="1"} 4\n' +
      'd_seconds_bucket{kind="minor",le="5"} 5\n' +
      'd_seconds_bucket{kind="minor",le="+Inf"} 7\n' +
      'd_seconds_sum{kind="minor"} 111.875\n' +
      'd_seconds_count{kind="minor"} 7\n',
  );
});

test('a label-less histogram and an empty series print zeros', () => {
  const h = new Histogram({ name: 'x', help: 'h', buckets: [1] });
  h.series([]);
  assert.equal(h.write(''), 'x_bucket{le="1"} 0\nx_bucket{le="+Inf"} 0\nx_sum 0\nx_count 0\n');
});

test('NaN and +Inf observations land in +Inf only', () => {
  const h = new Histogram({ name: 'x', help: 'h', buckets: [1] });
  const s = h.series([]);
  h.observe(s, Infinity);
  assert.equal(h.write(''), 'x_bucket{le="1"} 0\nx_bucket{le="+Inf"} 1\nx_sum +Inf\nx_count 1\n');
  h.observe(s, NaN);
  assert.equal(h.write(''), 'x_bucket{le="1"} 0\nx_bucket{le="+Inf"} 2\nx_sum NaN\nx_count 2\n');
});

test('series keep their buckets apart and survive growth', () => {
  const h = new Histogram({ name: 'x', help: 'h', labelNames: ['k'], buckets: [1, 2] });
  for (let i = 0; i < 40; i++) {
    const s = h.series([String(i)]);
    for (let j = 0; j < i; j++) h.observe(s, 1.5);
  }
  for (let i = 0; i < 40; i++) {
    assert.equal(h.count(i), i);
    assert.equal(h.sum(i), 1.5 * i);
  }
  const lines = h.write('').split('\n');
  assert.equal(lines[5 * 39], 'x_bucket{k="39",le="1"} 0');
  assert.equal(lines[5 * 39 + 1], 'x_bucket{k="39",le="2"} 39');
  assert.equal(lines[5 * 39 + 2], 'x_bucket{k="39",le="+Inf"} 39');
  assert.equal(lines[5 * 39 + 3], 'x_sum{k="39"} 58.5');
  assert.equal(lines[5 * 39 + 4], 'x_count{k="39"} 39');
});

test('user label le is refused; buckets must be finite and increasing', () => {
  assert.throws(() => new Histogram({ name: 'x', help: 'h', labelNames: ['le'], buckets: [1] }), /reserved/);
  assert.throws(() => new Histogram({ name: 'x', help: 'h', buckets: [2, 1] }), /strictly increasing/);
  assert.throws(() => new Histogram({ name: 'x', help: 'h', buckets: [1, 1] }), /strictly increasing/);
  assert.throws(() => new Histogram({ name: 'x', help: 'h', buckets: [1, Infinity] }), /finite/);
  assert.throws(() => new Histogram({ name: 'x', help: 'h', buckets: [NaN] }), /finite/);
});
