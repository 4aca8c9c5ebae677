// The apps table's rows as apps: soketi's columns by name, NULL or a missing column as the default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOptions } from '../../src/options';
import { OptionsError } from '../../src/protocol/errors';
import { COLUMNS, columnNamed, parseColumn, rowToApp } from '../../src/apps/sql/columns';

const defaults = loadOptions({ DEFAULT_APP_MAX_CONNS: '7', PRESENCE_MAX_MEMBERS: '50' }).apps[0];

test('a row with only the credentials takes every other setting from the defaults', () => {
  const app = rowToApp({ id: 'a', key: 'k', secret: 's' }, defaults);
  assert.deepEqual(app, { ...defaults, id: 'a', key: 'k', secret: 's' });
  assert.equal(app.maxConnections, 7);
  assert.equal(app.maxPresenceMembersPerChannel, 50);
});

test("soketi's values: tinyint and smallint booleans, NULL limits, 0 limits, JSON webhooks as text or parsed", () => {
  const row = {
    id: 'a', key: 'k', secret: 's', max_connections: 200, enable_client_messages: 1, enabled: '0',
    max_backend_events_per_sec: '-1', max_presence_members_per_channel: null, max_event_batch_size: 0,
    max_channel_name_length: 64, enable_user_authentication: 't', enable_stats: 1,
    webhooks: '[{"url":"http://127.0.0.1:1/hook","event_types":["channel_occupied"]}]',
  };
  const app = rowToApp(row, defaults);
  assert.equal(app.maxConnections, 200);
  assert.equal(app.enableClientMessages, true);
  assert.equal(app.enabled, false);
  assert.equal(app.maxBackendEventsPerSecond, -1);
  assert.equal(app.maxPresenceMembersPerChannel, 50, 'NULL: the server-wide default');
  assert.equal(app.maxEventBatchSize, defaults.maxEventBatchSize, '0 in a limit soketi types tinyint(1): the default');
  assert.equal(app.maxChannelNameLength, 64);
  assert.equal(app.userAuthentication, true);
  assert.equal(app.webhooks[0].url, 'http://127.0.0.1:1/hook');
  const parsed = rowToApp({ ...row, webhooks: [{ url: 'http://127.0.0.1:1/x', event_types: ['member_added'] }] }, defaults);
  assert.deepEqual(parsed.webhooks[0].eventTypes, ['member_added'], 'a JSON column the driver parsed already');
});

test('unusable values name the app and the column', () => {
  const bad = (row: Record<string, unknown>, message: RegExp) => assert.throws(() => rowToApp({ id: 'a', key: 'k', secret: 's', ...row }, defaults), (err: unknown) => err instanceof OptionsError && message.test(err.message));
  bad({ key: null }, /^app "a": column "key" is empty$/);
  bad({ max_connections: -2 }, /app "a" column "max_connections": expected a whole number of at least -1, got -2/);
  bad({ max_connections: 1.5 }, /max_connections/);
  bad({ enabled: 2 }, /app "a" column "enabled": expected true, false, 1 or 0, got 2/);
  bad({ webhooks: '{not json' }, /app "a" column "webhooks"/);
  bad({ max_event_name_length: -1 }, /at least 1/);
});

test('every column names a distinct field; the CLI parses values as the server reads them', () => {
  assert.equal(new Set(COLUMNS.map((c) => c.field)).size, COLUMNS.length);
  assert.equal(parseColumn('500', columnNamed('max_connections')!, 'x'), 500);
  assert.equal(parseColumn('true', columnNamed('enabled')!, 'x'), true);
  assert.throws(() => parseColumn('', columnNamed('secret')!, 'apps: secret'), /apps: secret: expected a non-empty string/);
});
