import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gauge } from '../../src/metrics/gauge';

test('set and add move a gauge both ways', () => {
  const g = new Gauge({ name: 'connected', help: 'h', labelNames: ['app_id'] });
  const a = g.series(['a']);
  g.add(a, 3);
  g.add(a, -1);
  assert.equal(g.get(a), 2);
  g.set(a, -7.5);
  assert.equal(g.write(''), 'connected{app_id="a"} -7.5\n');
});

test('non-finite gauge values print as NaN, +Inf, -Inf', () => {
  const g = new Gauge({ name: 'g', help: 'h', labelNames: ['k'] });
  g.set(g.series(['nan']), NaN);
  g.set(g.series(['inf']), Infinity);
  g.set(g.series(['ninf']), -Infinity);
  g.set(g.series(['big']), 2 ** 53 - 1);
  assert.equal(
    g.write(''),
    'g{k="nan"} NaN\ng{k="inf"} +Inf\ng{k="ninf"} -Inf\ng{k="big"} 9007199254740991\n',
  );
});

test('a new series starts at 0', () => {
  const g = new Gauge({ name: 'g', help: 'h' });
  assert.equal(g.get(g.series([])), 0);
  assert.equal(g.write(''), 'g 0\n');
});
