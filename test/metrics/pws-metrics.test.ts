import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Counter } from '../../src/metrics/counter';
import { PwsMetrics } from '../../src/metrics/pws-metrics';
import { findTool, missingToolSkip } from '../helpers/tools';

const FAMILIES: ReadonlyArray<[keyof PwsMetrics, string, string, string]> = [
  ['connected', 'connected', 'gauge', 'The number of currently connected sockets.'],
  ['newConnections', 'new_connections_total', 'counter', 'Total amount of pWS connection requests.'],
  ['newDisconnections', 'new_disconnections_total', 'counter', 'Total amount of pWS disconnections.'],
  ['socketReceivedBytes', 'socket_received_bytes', 'counter', 'Total amount of bytes that pWS received.'],
  ['socketTransmittedBytes', 'socket_transmitted_bytes', 'counter', 'Total amount of bytes that pWS transmitted.'],
  ['httpReceivedBytes', 'http_received_bytes', 'counter', "Total amount of bytes that pWS's REST API received."],
  ['httpTransmittedBytes', 'http_transmitted_bytes', 'counter', "Total amount of bytes that pWS's REST API sent back."],
  ['httpCallsReceived', 'http_calls_received_total', 'counter', 'Total amount of received REST API calls.'],
  ['wsMessagesReceived', 'ws_messages_received_total', 'counter', 'The total amount of WS messages received from connections by the server.'],
  ['wsMessagesSent', 'ws_messages_sent_total', 'counter', 'The total amount of WS messages sent to the connections from the server.'],
];

function serverPart(body: string): string {
  return body.slice(0, body.indexOf('# HELP pws_process_'));
}

test('ten app families named <prefix><port>_<name>, with the documented HELP and type', (t) => {
  const m = new PwsMetrics({ prefix: 'pws_', port: 6001 });
  t.after(() => m.stop());
  const slot = m.appSlot('app-1');
  FAMILIES.forEach(([field], i) => (m[field] as Counter).add(slot, i + 1));
  let expected = '';
  FAMILIES.forEach(([, name, type, help], i) => {
    expected += `# HELP pws_6001_${name} ${help}\n# TYPE pws_6001_${name} ${type}\npws_6001_${name}{app_id="app-1"} ${i + 1}\n`;
  });
  assert.equal(serverPart(m.render()), expected);
});

test('appSlot is idempotent and one index serves all ten families', (t) => {
  const m = new PwsMetrics({ prefix: 'pws_', port: 6001 });
  t.after(() => m.stop());
  const slots = Array.from({ length: 40 }, (_, i) => m.appSlot(`app${i}`));
  assert.deepEqual(slots, Array.from({ length: 40 }, (_, i) => i));
  assert.equal(m.appSlot('app7'), 7);
  m.socketTransmittedBytes.add(m.appSlot('app33'), 100 * 3);
  m.connected.add(m.appSlot('app33'), 1);
  m.connected.add(m.appSlot('app33'), -1);
  m.connected.add(m.appSlot('app33'), 1);
  const body = m.render();
  assert.ok(body.includes('\npws_6001_socket_transmitted_bytes{app_id="app33"} 300\n'));
  assert.ok(body.includes('\npws_6001_connected{app_id="app33"} 1\n'));
  assert.ok(body.includes('\npws_6001_ws_messages_sent_total{app_id="app39"} 0\n'));
});

test('before any app there are no server families, only process ones', (t) => {
  const m = new PwsMetrics({ prefix: 'pws_', port: 6001 });
  t.after(() => m.stop());
  const body = m.render();
  assert.ok(!body.includes('pws_6001_'));
  assert.ok(body.startsWith('# HELP pws_process_cpu_user_seconds_total '));
});

test('other drivers can add families, including label-less ones, to the same body', (t) => {
  const m = new PwsMetrics({ prefix: 'pws_', port: 6001 });
  t.after(() => m.stop());
  const failures = m.registry.counter({
    name: `${m.prefix}pushgateway_push_failures_total`,
    help: 'Pushes to the Pushgateway that failed.',
  });
  const slot = failures.series([]);
  assert.equal(slot, 0);
  failures.add(slot, 2);
  assert.ok(
    m.render().endsWith(
      '# HELP pws_pushgateway_push_failures_total Pushes to the Pushgateway that failed.\n' +
        '# TYPE pws_pushgateway_push_failures_total counter\n' +
        'pws_pushgateway_push_failures_total 2\n',
    ),
  );
  assert.throws(() => m.registry.gauge({ name: 'pws_6001_connected', help: 'again' }), /already registered/);
});

// What promtool 2.42's linter says about the names pWS has always used.
const EXPECTED_LINT = new Set([
  'pws_6001_http_received_bytes counter metrics should have "_total" suffix',
  'pws_6001_http_transmitted_bytes counter metrics should have "_total" suffix',
  'pws_6001_socket_received_bytes counter metrics should have "_total" suffix',
  'pws_6001_socket_transmitted_bytes counter metrics should have "_total" suffix',
  'pws_nodejs_active_handles_total non-counter metrics should not have "_total" suffix',
  'pws_nodejs_active_requests_total non-counter metrics should not have "_total" suffix',
]);

test('promtool check metrics parses a full render; only the historical names are linted', { skip: missingToolSkip('promtool', 'prometheus') }, async (t) => {
  const m = new PwsMetrics({ prefix: 'pws_', port: 6001 });
  t.after(() => m.stop());
  for (const appId of ['app-1', 'app-2', 'we\\ird "app"\nid']) {
    const slot = m.appSlot(appId);
    m.connected.add(slot, 3);
    m.socketTransmittedBytes.add(slot, 1e21);
    m.wsMessagesSent.add(slot, 0.5);
  }
  m.registry.counter({ name: 'pws_pushgateway_push_failures_total', help: 'Failed \\ "pushes"\nto the gateway.' }).series([]);
  const body = m.render();
  const result = spawnSync(findTool('promtool') as string, ['check', 'metrics'], { input: body, encoding: 'utf8' });
  assert.notEqual(result.status, 1, result.stderr);
  assert.ok(result.status === 0 || result.status === 3, `exit ${result.status}: ${result.stderr}`);
  const lines = result.stderr.split('\n').filter((l) => l !== '');
  for (const line of lines) assert.ok(EXPECTED_LINT.has(line), `unexpected promtool output: ${line}`);
});
