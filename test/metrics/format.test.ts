import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CONTENT_TYPE,
  checkLabelNames,
  checkMetricName,
  escapeHelp,
  escapeLabelValue,
  familyHeader,
  formatValue,
  labelPairs,
  samplePrefix,
} from '../../src/metrics/format';

test('content type is text format 0.0.4', () => {
  assert.equal(CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
});

test('HELP escapes backslash and newline but leaves double quotes alone', () => {
  assert.equal(escapeHelp('a\\b\nc "d"'), 'a\\\\b\\nc "d"');
  assert.equal(escapeHelp('\\n'), '\\\\n');
});

test('label values escape backslash first, then quote and newline', () => {
  assert.equal(escapeLabelValue('plain'), 'plain');
  assert.equal(escapeLabelValue('a\\b'), 'a\\\\b');
  assert.equal(escapeLabelValue('say "hi"'), 'say \\"hi\\"');
  assert.equal(escapeLabelValue('two\nlines'), 'two\\nlines');
  // A literal backslash-n must not collapse into the newline escape.
  assert.equal(escapeLabelValue('\\n'), '\\\\n');
  assert.equal(escapeLabelValue('\\"'), '\\\\\\"');
  assert.equal(escapeLabelValue('x\\\n"'), 'x\\\\\\n\\"');
});

test('values: NaN, +Inf, -Inf, integers without exponent or .0', () => {
  assert.equal(formatValue(NaN), 'NaN');
  assert.equal(formatValue(Infinity), '+Inf');
  assert.equal(formatValue(-Infinity), '-Inf');
  assert.equal(formatValue(0), '0');
  assert.equal(formatValue(-0), '0');
  assert.equal(formatValue(1), '1');
  assert.equal(formatValue(-42), '-42');
  assert.equal(formatValue(1e6), '1000000');
  assert.equal(formatValue(2 ** 53 - 1), '9007199254740991');
  assert.equal(formatValue(2 ** 53), '9007199254740992');
  assert.equal(formatValue(1e20), '100000000000000000000');
  assert.equal(formatValue(1e21), '1e+21');
  assert.equal(formatValue(0.1), '0.1');
  assert.equal(formatValue(1.5e-7), '1.5e-7');
  assert.equal(formatValue(5e-324), '5e-324');
});

test('label pairs and sample prefixes', () => {
  assert.equal(labelPairs([], []), '');
  assert.equal(labelPairs(['a', 'b'], ['x', 'y"z']), 'a="x",b="y\\"z"');
  assert.equal(samplePrefix('m', ''), 'm ');
  assert.equal(samplePrefix('m', 'a="x"'), 'm{a="x"} ');
});

test('family header is HELP then TYPE, escaped', () => {
  assert.equal(familyHeader('m', 'gauge', 'Line\none \\ "q"'), '# HELP m Line\\none \\\\ "q"\n# TYPE m gauge\n');
});

test('metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*', () => {
  for (const ok of ['a', '_a', ':a', 'a:b_c9', 'A_Z']) assert.doesNotThrow(() => checkMetricName(ok));
  for (const bad of ['', '9a', 'a-b', 'a.b', 'a b', 'é', 'a\n']) {
    assert.throws(() => checkMetricName(bad), /invalid metric name/, bad);
  }
});

test('label names must be valid, unique, not __-prefixed, not le or quantile', () => {
  assert.doesNotThrow(() => checkLabelNames('m', ['a', '_b', 'app_id', 'C9']));
  for (const bad of ['', '9a', 'a:b', 'a-b', '__name__', '__x']) {
    assert.throws(() => checkLabelNames('m', [bad]), /invalid label name/, bad);
  }
  assert.throws(() => checkLabelNames('m', ['le']), /reserved/);
  assert.throws(() => checkLabelNames('m', ['quantile']), /reserved/);
  assert.throws(() => checkLabelNames('m', ['a', 'a']), /duplicate label name a/);
});
