// Webhook configuration: per app in the config file and DEFAULT_APP_WEBHOOKS for the default app,
// parsed into entries; every mistake stops start-up with one line naming the app and the entry.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOptions } from '../../src/options';
import { OptionsError } from '../../src/protocol/errors';

const dir = mkdtempSync(join(tmpdir(), 'pws-webhook-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

function configFile(content: unknown): string {
  const path = join(dir, `config-${++files}.json`);
  writeFileSync(path, JSON.stringify(content));
  return path;
}

function refuses(env: Record<string, string>, message: string, configPath?: string): void {
  assert.throws(
    () => loadOptions(env, configPath),
    (err: unknown) => {
      assert.ok(err instanceof OptionsError, `expected an OptionsError, got ${err}`);
      assert.equal(err.message, message);
      assert.ok(!err.message.includes('\n'));
      return true;
    },
  );
}

const app = (webhooks: unknown) => ({ id: 'chat', key: 'chat-key', secret: 'chat-secret', webhooks });

describe('webhooks in the options', () => {
  test('DEFAULT_APP_WEBHOOKS: a JSON array with the issue example, parsed into entries', () => {
    const options = loadOptions({
      DEFAULT_APP_WEBHOOKS: JSON.stringify([
        {
          url: 'https://api.example.com/pusher',
          event_types: ['channel_occupied', 'member_added'],
          headers: { 'X-Api-Token': 'abc' },
          filter: { channel_name_starts_with: 'presence-', channel_name_ends_with: '' },
        },
      ]),
    });
    assert.deepEqual(options.apps[0].webhooks, [
      {
        url: 'https://api.example.com/pusher',
        eventTypes: ['channel_occupied', 'member_added'],
        headers: { 'X-Api-Token': 'abc' },
        channelNameStartsWith: 'presence-',
        channelNameEndsWith: '',
      },
    ]);
    assert.deepEqual(loadOptions({}).apps[0].webhooks, []);
  });

  test('per app in the config file; an app without webhooks takes DEFAULT_APP_WEBHOOKS', () => {
    const path = configFile({
      DEFAULT_APP_WEBHOOKS: [{ url: 'http://default.test/hook', event_types: ['client_event'] }],
      apps: [app([{ url: 'http://chat.test/hook', event_types: ['member_removed', 'member_removed'], filter: { channel_name_ends_with: '-room' } }]), { id: 'b', key: 'b-key', secret: 'b-secret' }],
    });
    const [chat, b] = loadOptions({}, path).apps;
    assert.deepEqual(chat.webhooks, [{ url: 'http://chat.test/hook', eventTypes: ['member_removed'], headers: {}, channelNameStartsWith: '', channelNameEndsWith: '-room' }]);
    assert.deepEqual(b.webhooks, [{ url: 'http://default.test/hook', eventTypes: ['client_event'], headers: {}, channelNameStartsWith: '', channelNameEndsWith: '' }]);
  });

  test('WEBHOOKS_BATCHING is on and WEBHOOKS_BATCHING_DURATION 250 ms unless set', () => {
    const o = loadOptions({});
    assert.deepEqual([o.webhooksBatching, o.webhooksBatchingDurationMs], [true, 250]);
    const set = loadOptions({ WEBHOOKS_BATCHING: 'false', WEBHOOKS_BATCHING_DURATION: '1000' });
    assert.deepEqual([set.webhooksBatching, set.webhooksBatchingDurationMs], [false, 1000]);
  });

  test('two entries may share a URL (one stream) when they send the same headers', () => {
    const same = loadOptions({
      DEFAULT_APP_WEBHOOKS: JSON.stringify([
        { url: 'http://h.test/a', event_types: ['channel_occupied'], headers: { A: '1' } },
        { url: 'http://h.test/a', event_types: ['client_event'], headers: { A: '1' }, filter: { channel_name_starts_with: 'private-' } },
      ]),
    });
    assert.equal(same.apps[0].webhooks.length, 2);
  });

  const entryRefusals: [string, unknown, string][] = [
    ['an object instead of an array', { url: 'http://h' }, 'expected a JSON array of webhooks, got {"url":"http://h"}'],
    ['an entry that is not an object', ['http://h'], 'entry 0: must be an object with "url" and "event_types"'],
    ['an unknown field', [{ url: 'http://h', event_types: ['client_event'], lambda: {} }], 'entry 0: unknown field "lambda" (valid: url, event_types, headers, filter)'],
    ['no url', [{ event_types: ['client_event'] }], 'entry 0: "url" must be an http:// or https:// URL, got undefined'],
    ['a url that does not parse', [{ url: 'not a url', event_types: ['client_event'] }], 'entry 0: "url" is not a valid URL: "not a url"'],
    ['an ftp url', [{ url: 'ftp://h/x', event_types: ['client_event'] }], 'entry 0: "url" must be an http:// or https:// URL, got "ftp://h/x"'],
    ['no event types', [{ url: 'http://h' }], 'entry 0: "event_types" must be a non-empty array of channel_occupied, channel_vacated, member_added, member_removed, client_event, subscription_count, cache_miss'],
    ['an empty event type list', [{ url: 'http://h', event_types: [] }], 'entry 0: "event_types" must be a non-empty array of channel_occupied, channel_vacated, member_added, member_removed, client_event, subscription_count, cache_miss'],
    [
      'an event type not sent (yet)',
      [{ url: 'http://h', event_types: ['channel_occupied'] }, { url: 'http://h', event_types: ['channel_created'] }],
      'entry 1: unknown event type "channel_created" (valid: channel_occupied, channel_vacated, member_added, member_removed, client_event, subscription_count, cache_miss)',
    ],
    ['headers that are not an object', [{ url: 'http://h', event_types: ['client_event'], headers: ['a'] }], 'entry 0: "headers" must be an object of header names to string values'],
    ['a header name with a space', [{ url: 'http://h', event_types: ['client_event'], headers: { 'X Token': 'a' } }], 'entry 0: invalid header name "X Token"'],
    ['the signature header', [{ url: 'http://h', event_types: ['client_event'], headers: { 'x-pusher-signature': 'a' } }], 'entry 0: header "x-pusher-signature" is set by the server and cannot be configured'],
    ['a content type', [{ url: 'http://h', event_types: ['client_event'], headers: { 'Content-Type': 'text/plain' } }], 'entry 0: header "Content-Type" is set by the server and cannot be configured'],
    ['a header value on two lines', [{ url: 'http://h', event_types: ['client_event'], headers: { 'X-A': 'a\r\nX-B: b' } }], 'entry 0: header "X-A" must be a string of one line, got "a\\r\\nX-B: b"'],
    ['a numeric header value', [{ url: 'http://h', event_types: ['client_event'], headers: { 'X-A': 1 } }], 'entry 0: header "X-A" must be a string of one line, got 1'],
    ['a filter that is a string', [{ url: 'http://h', event_types: ['client_event'], filter: 'presence-' }], 'entry 0: "filter" must be an object with channel_name_starts_with and/or channel_name_ends_with'],
    ['an unknown filter', [{ url: 'http://h', event_types: ['client_event'], filter: { channel_name_contains: 'x' } }], 'entry 0: unknown filter "channel_name_contains" (valid: channel_name_starts_with, channel_name_ends_with)'],
    ['a numeric filter', [{ url: 'http://h', event_types: ['client_event'], filter: { channel_name_starts_with: 1 } }], 'entry 0: filter "channel_name_starts_with" must be a string, got 1'],
    [
      'one URL with two sets of headers',
      [{ url: 'http://h/a', event_types: ['client_event'] }, { url: 'http://h/a', event_types: ['member_added'], headers: { A: '1' } }],
      'entry 1: same url as entry 0 but other headers; give entries of one url the same headers',
    ],
  ];

  for (const [what, webhooks, message] of entryRefusals) {
    test(`refused, naming the app and the entry: ${what}`, () => {
      refuses({ DEFAULT_APP_WEBHOOKS: JSON.stringify(webhooks) }, `DEFAULT_APP_WEBHOOKS: ${message}`);
      const path = configFile({ apps: [{ id: 'a', key: 'a-key', secret: 'a-secret' }, app(webhooks)] });
      refuses({}, `apps[1] in ${path} field "webhooks": ${message}`, path);
    });
  }

  test('the example config file of docs/webhooks.md loads', () => {
    const doc = readFileSync(join(__dirname, '..', '..', '..', 'docs', 'webhooks.md'), 'utf8');
    const example = /```json\n([\s\S]*?)\n```/.exec(doc);
    assert.ok(example, 'no ```json example in docs/webhooks.md');
    const [chat] = loadOptions({}, configFile(JSON.parse(example[1]))).apps;
    assert.deepEqual(
      chat.webhooks.map((w) => [w.url, w.eventTypes.length, w.channelNameStartsWith]),
      [
        ['https://api.example.com/pusher', 4, 'presence-'],
        ['https://api.example.com/typing', 1, ''],
      ],
    );
  });

  test('DEFAULT_APP_WEBHOOKS that is not JSON is refused', () => {
    assert.throws(
      () => loadOptions({ DEFAULT_APP_WEBHOOKS: '[{url: 1}]' }),
      (err: unknown) => err instanceof OptionsError && err.message.startsWith('DEFAULT_APP_WEBHOOKS: not valid JSON ('),
    );
  });
});
