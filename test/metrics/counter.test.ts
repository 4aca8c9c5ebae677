import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter } from '../../src/metrics/counter';

test('add accumulates per series; write prints one line per series', () => {
  const c = new Counter({ name: 'bytes', help: 'h', labelNames: ['app_id'] });
  const a = c.series(['a']);
  const b = c.series(['b']);
  assert.equal(a, 0);
  assert.equal(b, 1);
  c.add(a, 5);
  c.add(a, 0.5);
  c.add(b, 7);
  assert.equal(c.get(a), 5.5);
  assert.equal(c.write(''), 'bytes{app_id="a"} 5.5\nbytes{app_id="b"} 7\n');
});

test('series() is idempotent and resolves by value, not by order of calls', () => {
  const c = new Counter({ name: 'c', help: 'h', labelNames: ['x', 'y'] });
  const s1 = c.series(['1', '2']);
  const s2 = c.series(['12', '']);
  const s3 = c.series(['1', '2']);
  assert.equal(s1, 0);
  assert.equal(s2, 1);
  assert.equal(s3, 0);
  assert.equal(c.size, 2);
});

test('a label-less family has one series at slot 0', () => {
  const c = new Counter({ name: 'pushes_total', help: 'h' });
  assert.equal(c.series([]), 0);
  assert.equal(c.series([]), 0);
  c.add(0, 3);
  assert.equal(c.write(''), 'pushes_total 3\n');
});

test('label values are escaped once, when the series is created', () => {
  const c = new Counter({ name: 'c', help: 'h', labelNames: ['app_id'] });
  c.add(c.series(['a\\b"c\nd']), 1);
  assert.equal(c.write(''), 'c{app_id="a\\\\b\\"c\\nd"} 1\n');
});

test('wrong number or type of label values is refused', () => {
  const c = new Counter({ name: 'c', help: 'h', labelNames: ['app_id'] });
  assert.throws(() => c.series([]), /takes 1 label values, got 0/);
  assert.throws(() => c.series(['a', 'b']), /takes 1 label values, got 2/);
  assert.throws(() => c.series([1 as unknown as string]), /must be strings/);
  assert.equal(c.size, 0);
});

test('slots grow by doubling and keep values and prefixes', () => {
  const c = new Counter({ name: 'c', help: 'h', labelNames: ['app_id'] });
  assert.equal(c.values.length, 16);
  const lengths: number[] = [];
  for (let i = 0; i < 100; i++) {
    const slot = c.series([`app${i}`]);
    assert.equal(slot, i);
    c.add(slot, i * 10);
    if (lengths[lengths.length - 1] !== c.values.length) lengths.push(c.values.length);
  }
  assert.deepEqual(lengths, [16, 32, 64, 128]);
  for (let i = 0; i < 100; i++) {
    assert.equal(c.series([`app${i}`]), i);
    assert.equal(c.get(i), i * 10);
  }
  const lines = c.write('').split('\n');
  assert.equal(lines.length, 101);
  assert.equal(lines[0], 'c{app_id="app0"} 0');
  assert.equal(lines[15], 'c{app_id="app15"} 150');
  assert.equal(lines[16], 'c{app_id="app16"} 160');
  assert.equal(lines[99], 'c{app_id="app99"} 990');
  assert.equal(lines[100], '');
});

test('set mirrors an external total', () => {
  const c = new Counter({ name: 'cpu_seconds_total', help: 'h' });
  c.set(c.series([]), 1.25);
  assert.equal(c.write(''), 'cpu_seconds_total 1.25\n');
});
