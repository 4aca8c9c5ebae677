import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter } from '../../src/metrics/counter';
import { Registry } from '../../src/metrics/registry';

test('render: HELP and TYPE once per family, samples contiguous, registration order, final newline', () => {
  const r = new Registry();
  const b = r.counter({ name: 'b_total', help: 'B "quoted" \\ help\nsecond line', labelNames: ['app_id'] });
  const a = r.gauge({ name: 'a', help: 'A.', labelNames: ['app_id', 'kind'] });
  const h = r.histogram({ name: 'c_seconds', help: 'C.', buckets: [1] });
  a.set(a.series(['x', 'k']), 1.5);
  b.add(b.series(['x']), 1);
  a.set(a.series(['y', 'k']), 2);
  b.add(b.series(['y']), 2);
  h.observe(h.series([]), 0.5);
  assert.equal(
    r.render(),
    '# HELP b_total B "quoted" \\\\ help\\nsecond line\n' +
      '# TYPE b_total counter\n' +
      'b_total{app_id="x"} 1\n' +
      'b_total{app_id="y"} 2\n' +
      '# HELP a A.\n' +
      '# TYPE a gauge\n' +
      'a{app_id="x",kind="k"} 1.5\n' +
      'a{app_id="y",kind="k"} 2\n' +
      '# HELP c_seconds C.\n' +
      '# TYPE c_seconds histogram\n' +
      'c_seconds_bucket{le="1"} 1\n' +
      'c_seconds_bucket{le="+Inf"} 1\n' +
      'c_seconds_sum 0.5\n' +
      'c_seconds_count 1\n',
  );
});

test('families without series print nothing; an empty registry renders an empty body', () => {
  const r = new Registry();
  assert.equal(r.render(), '');
  r.counter({ name: 'empty_total', help: 'never used', labelNames: ['app_id'] });
  const g = r.gauge({ name: 'g', help: 'h' });
  assert.equal(r.render(), '');
  g.series([]);
  assert.equal(r.render(), '# HELP g h\n# TYPE g gauge\ng 0\n');
});

test('no carriage returns, no trailing blanks, no timestamps', () => {
  const r = new Registry();
  const c = r.counter({ name: 'c_total', help: 'h', labelNames: ['app_id'] });
  for (let i = 0; i < 50; i++) c.add(c.series([`app ${i} \\ "x"\n`]), i * 1e6);
  const body = r.render();
  assert.ok(body.endsWith('\n'));
  assert.ok(!body.includes('\r'));
  const lines = body.slice(0, -1).split('\n');
  assert.equal(lines.length, 52);
  for (const line of lines) {
    assert.ok(!/[ \t]$/.test(line), line);
    if (!line.startsWith('#')) assert.match(line, /^c_total\{app_id="(?:[^"\\]|\\.)*"\} \d+$/);
  }
});

test('invalid metric and label names are refused', () => {
  const r = new Registry();
  assert.throws(() => r.counter({ name: 'pws-6001', help: 'h' }), /invalid metric name/);
  assert.throws(() => r.gauge({ name: '6001_x', help: 'h' }), /invalid metric name/);
  assert.throws(() => r.gauge({ name: 'x', help: 'h', labelNames: ['app-id'] }), /invalid label name/);
  assert.throws(() => r.gauge({ name: 'x', help: 'h', labelNames: ['__app'] }), /invalid label name/);
  assert.throws(() => r.gauge({ name: 'x', help: 'h', labelNames: ['le'] }), /reserved/);
  assert.throws(() => r.counter({ name: 'x', help: 'h', labelNames: ['quantile'] }), /reserved/);
  assert.throws(() => r.histogram({ name: 'x', help: 'h', labelNames: ['le'], buckets: [1] }), /reserved/);
  assert.equal(r.render(), '');
});

test('duplicate family names are refused, including a histogram\'s sample names', () => {
  const r = new Registry();
  r.counter({ name: 'x_total', help: 'h' });
  assert.throws(() => r.gauge({ name: 'x_total', help: 'h' }), /x_total is already registered/);
  r.histogram({ name: 'd', help: 'h', buckets: [1] });
  assert.throws(() => r.counter({ name: 'd', help: 'h' }), /d is already registered/);
  assert.throws(() => r.counter({ name: 'd_count', help: 'h' }), /d_count is already registered/);
  assert.throws(() => r.gauge({ name: 'd_bucket', help: 'h' }), /d_bucket is already registered/);
  r.gauge({ name: 'e_sum', help: 'h' });
  assert.throws(() => r.histogram({ name: 'e', help: 'h', buckets: [1] }), /e_sum is already registered/);
  const c = new Counter({ name: 'y', help: 'h' });
  r.register(c);
  assert.throws(() => r.register(c), /y is already registered/);
});

test('collect hooks run before every render, in order', () => {
  const r = new Registry();
  const g = r.gauge({ name: 'g', help: 'h' });
  const slot = g.series([]);
  const calls: string[] = [];
  r.onCollect(() => {
    calls.push('first');
    g.add(slot, 1);
  });
  r.onCollect(() => calls.push('second'));
  assert.equal(r.render(), '# HELP g h\n# TYPE g gauge\ng 1\n');
  assert.equal(r.render(), '# HELP g h\n# TYPE g gauge\ng 2\n');
  assert.deepEqual(calls, ['first', 'second', 'first', 'second']);
});

test('remove: a removed series prints nothing, its slot is never reused, the same labels start again from zero', () => {
  const r = new Registry();
  const c = r.counter({ name: 'x_total', help: 'X.', labelNames: ['app_id'] });
  const h = r.histogram({ name: 'd_seconds', help: 'D.', labelNames: ['app_id'], buckets: [1] });
  const a = c.series(['a']);
  const b = c.series(['b']);
  c.add(a, 3);
  c.add(b, 4);
  h.observe(h.series(['a']), 0.5);
  h.observe(h.series(['b']), 2);
  assert.equal(c.remove(['a']), true);
  assert.equal(h.remove(['a']), true);
  assert.equal(c.remove(['a']), false, 'a second removal finds nothing');
  // Work still in flight for the removed app adds to its hidden slot, not to another series.
  c.add(a, 1);
  assert.equal(
    r.render(),
    '# HELP x_total X.\n# TYPE x_total counter\nx_total{app_id="b"} 4\n' +
      '# HELP d_seconds D.\n# TYPE d_seconds histogram\n' +
      'd_seconds_bucket{app_id="b",le="1"} 0\nd_seconds_bucket{app_id="b",le="+Inf"} 1\nd_seconds_sum{app_id="b"} 2\nd_seconds_count{app_id="b"} 1\n',
  );
  const again = c.series(['a']);
  assert.notEqual(again, a);
  assert.notEqual(again, b);
  assert.match(r.render(), /^x_total\{app_id="a"\} 0$/m);
  c.remove(['a']);
  c.remove(['b']);
  h.remove(['b']);
  assert.equal(r.render(), '', 'a family whose series were all removed prints no header either');
});
