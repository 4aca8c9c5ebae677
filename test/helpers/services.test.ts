// Self-test of the shared service helpers: real prometheus, pushgateway and promtool.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  freePort,
  missingToolSkip,
  runPromtoolCheckMetrics,
  startPrometheus,
  startPushgateway,
} from './services';

test('freePort returns a usable loopback port', async () => {
  const port = await freePort();
  assert.ok(port > 0 && port < 65536);
  const srv = http.createServer();
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
  await new Promise<void>((r) => srv.close(() => r()));
});

test(
  'startPrometheus scrapes a tiny HTTP server and query() returns its value',
  { skip: missingToolSkip('prometheus', 'prometheus'), timeout: 60_000 },
  async () => {
    const srv = http.createServer((req, res) => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
        res.end('# TYPE x gauge\nx 42\n');
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const { port } = srv.address() as AddressInfo;
    const prom = await startPrometheus({ scrapeTargets: [`127.0.0.1:${port}`], scrapeIntervalSeconds: 1 });
    try {
      const result = await prom.waitForValue('x', (r) => r.length > 0, 20_000);
      assert.equal(result.length, 1);
      assert.equal(Number(result[0].value[1]), 42);
      assert.equal(result[0].metric.job, 'pws');
      const targets = await prom.targetsHealth();
      assert.equal(targets.length, 1);
      assert.equal(targets[0].health, 'up', JSON.stringify(targets));
    } finally {
      await prom.stop();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  },
);

test(
  'startPushgateway accepts a PUT and shows it in metricsText()',
  { skip: missingToolSkip('prometheus-pushgateway', 'prometheus-pushgateway'), timeout: 60_000 },
  async () => {
    const pg = await startPushgateway();
    try {
      const res = await fetch(`${pg.url}/metrics/job/t`, { method: 'PUT', body: 'x 1\n' });
      assert.ok(res.status === 200 || res.status === 202, `PUT status ${res.status}`);
      const text = await pg.metricsText();
      assert.match(text, /^x\{[^}]*job="t"[^}]*\} 1$/m);
    } finally {
      await pg.stop();
    }
  },
);

test(
  'runPromtoolCheckMetrics accepts valid and rejects invalid exposition text',
  { skip: missingToolSkip('promtool', 'prometheus'), timeout: 30_000 },
  async () => {
    const ok = await runPromtoolCheckMetrics('# HELP x A gauge.\n# TYPE x gauge\nx 42\n');
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const bad = await runPromtoolCheckMetrics('# TYPE x gauge\nx{ 42\n');
    assert.notEqual(bad.code, 0);
  },
);
