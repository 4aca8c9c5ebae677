// The scrape parser the endpoint tests rely on: it must read our writer's output and refuse
// every malformed body, or the format checks that ride on it would prove nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExpositionError, parseExposition, sampleValue } from './exposition';

const GOOD =
  '# HELP x_total Things, with a \\\\ and a\\nnewline "quoted".\n' +
  '# TYPE x_total counter\n' +
  'x_total{app_id="a\\\\b\\"c\\nd",k="é€😀"} 3\n' +
  'x_total{app_id="z",k=""} 1e+21\n' +
  '# HELP g A gauge.\n' +
  '# TYPE g gauge\n' +
  'g -0.25\n' +
  'g{s="nan"} NaN\n' +
  '# HELP h A histogram.\n' +
  '# TYPE h histogram\n' +
  'h_bucket{kind="minor",le="0.001"} 1\n' +
  'h_bucket{kind="minor",le="1"} 2\n' +
  'h_bucket{kind="minor",le="+Inf"} 3\n' +
  'h_sum{kind="minor"} 7.5\n' +
  'h_count{kind="minor"} 3\n';

test('parses samples, labels with escapes, HELP texts and types', () => {
  const e = parseExposition(Buffer.from(GOOD));
  assert.deepEqual([...e.families.keys()], ['x_total', 'g', 'h']);
  assert.equal(e.families.get('x_total')!.help, 'Things, with a \\ and a\nnewline "quoted".');
  assert.equal(e.families.get('h')!.type, 'histogram');
  assert.equal(sampleValue(e, 'x_total', { app_id: 'a\\b"c\nd', k: 'é€😀' }), 3);
  assert.equal(sampleValue(e, 'x_total', { app_id: 'z', k: '' }), 1e21);
  assert.equal(sampleValue(e, 'g'), -0.25);
  assert.ok(Number.isNaN(sampleValue(e, 'g', { s: 'nan' })));
  assert.equal(sampleValue(e, 'h_bucket', { kind: 'minor', le: '+Inf' }), 3);
  assert.equal(sampleValue(e, 'h_count', { kind: 'minor' }), 3);
  assert.equal(e.samples.length, 9);
  assert.deepEqual(parseExposition(''), { samples: [], families: new Map() });
});

test('refuses each kind of malformed body', () => {
  const head = '# HELP x X.\n# TYPE x gauge\n';
  // Each body, with the reason the parser must give (so it fails for the right one).
  const bad: Record<string, [string | Buffer, RegExp]> = {
    'no final LF': [head + 'x 1', /line feed/],
    CRLF: ['# HELP x X.\r\n# TYPE x gauge\r\nx 1\r\n', /\\r/],
    'blank line': [head + '\nx 1\n', /blank line/],
    'plain comment': [head + '# hello\nx 1\n', /neither # HELP/],
    'invalid UTF-8': [Buffer.concat([Buffer.from(head + 'x{a="'), Buffer.from([0xff]), Buffer.from('"} 1\n')]), /UTF-8/],
    'escaped quote in HELP': ['# HELP x say \\"hi\\"\n# TYPE x gauge\nx 1\n', /escape sequence '\\"' in HELP/],
    'tab escape in label': [head + 'x{a="\\t"} 1\n', /escape sequence '\\t'/],
    'bare quote in label': [head + 'x{a="""} 1\n', /expected , or }/],
    'unterminated label': [head + 'x{a="b} 1\n', /unexpected end of label value/],
    'repeated label': [head + 'x{a="1",a="2"} 1\n', /repeated/],
    '__name__ label': [head + 'x{__name__="y"} 1\n', /reserved label name/],
    'trailing comma': [head + 'x{a="1",} 1\n', /trailing comma/],
    'empty braces': [head + 'x{} 1\n', /empty label braces/],
    'second HELP': [head + '# HELP x again\nx 1\n', /second HELP/],
    'TYPE after samples': [head + 'x 1\n# TYPE x gauge\n', /TYPE of x without its HELP/],
    'TYPE without HELP': ['# TYPE x gauge\nx 1\n', /without its HELP/],
    'upper-case type': ['# HELP x X.\n# TYPE x GAUGE\nx 1\n', /unknown type "GAUGE"/],
    'unknown type': ['# HELP x X.\n# TYPE x info\nx 1\n', /unknown type "info"/],
    'sample without TYPE': ['x 1\n', /has no # TYPE/],
    'invalid metric name': ['# HELP 1x X.\n# TYPE 1x gauge\n1x 1\n', /invalid metric name/],
    'split family': [head + 'x{a="1"} 1\n# HELP y Y.\n# TYPE y gauge\ny 1\nx{a="2"} 1\n', /outside its family's group/],
    'duplicate series': [head + 'x{a="1"} 1\nx{a="1"} 2\n', /duplicate series/],
    timestamp: [head + 'x 1 1700000000000\n', /timestamp/],
    'trailing blank': [head + 'x 1 \n', /trailing blank/],
    'two spaces': [head + 'x  1\n', /exactly one space/],
    'hex value': [head + 'x 0x10\n', /invalid value/],
    'non-canonical value': [head + 'x 1.0\n', /not written canonically/],
    'Go exponent': [head + 'x 1e+06\n', /not written canonically/],
    'negative counter': ['# HELP c C.\n# TYPE c counter\nc -1\n', /≥ 0/],
    'family without samples': [head, /no samples/],
    'histogram without +Inf': ['# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /without a le="\+Inf"/],
    'histogram +Inf differs from _count': ['# HELP h H.\n# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', /_count 3 differs/],
    'histogram not cumulative': ['# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /not cumulative/],
    'histogram le out of order': ['# HELP h H.\n# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /le not increasing/],
    'le on a gauge': [head + 'x{le="1"} 1\n', /le label only/],
  };
  for (const [what, [body, reason]] of Object.entries(bad)) {
    assert.throws(() => parseExposition(body), (err: unknown) => err instanceof ExpositionError && reason.test(err.message), what);
  }
});
