// deploy/prometheus: the rules load (`promtool check rules`) and their unit tests pass
// (`promtool test rules`), so CI runs both with npm test; every alert carries a severity, a
// summary and a description, and has test cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RULE_TESTS as TESTS, RULES, rules } from '../helpers/deploy';
import { findTool, missingToolSkip } from '../helpers/tools';

const DIR = path.dirname(RULES);
const skip = missingToolSkip('promtool', 'prometheus');

function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync(findTool('promtool')!, args, { cwd: DIR, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, output: result.stdout + result.stderr };
}

test('promtool check rules: the rules file loads, every expression parses', { skip }, () => {
  const { status, output } = promtool('check', 'rules', RULES);
  assert.equal(status, 0, output);
  assert.match(output, /SUCCESS: \d+ rules found/);
});

test('promtool test rules: every unit test of pws-alerts.test.yml passes', { skip }, () => {
  const { status, output } = promtool('test', 'rules', TESTS);
  assert.equal(status, 0, output);
  assert.match(output, /SUCCESS/);
});

test('every alert has a severity, a summary, a description, and test cases that fire it and keep it quiet', () => {
  const tests = fs.readFileSync(TESTS, 'utf8');
  const list = rules().filter((r) => r.kind === 'alert');
  assert.ok(list.length >= 10, `${list.length} alerts`);
  for (const { name, text } of list) {
    assert.match(text, /^ {10}severity: (critical|warning|info)$/m, name);
    assert.match(text, /^ {10}summary: /m, name);
    assert.match(text, /^ {10}description: /m, name);
    // Its evaluations: at least one expecting alerts, at least one expecting none.
    const cases = tests.split(/^(?=      - eval_time: )/m).filter((c) => new RegExp(`^ {8}alertname: ${name}$`, 'm').test(c));
    assert.ok(cases.some((c) => c.includes('exp_alerts:')), `${name}: no case where it fires`);
    assert.ok(cases.some((c) => !c.includes('exp_alerts:')), `${name}: no case where it stays quiet`);
  }
});
