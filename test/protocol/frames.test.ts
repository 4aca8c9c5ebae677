// decodeFrame turns one client message into {event, channel, data} or refuses it with a
// PusherError; the encoders produce the exact frames Pusher clients parse.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PusherError } from '../../src/protocol/errors';
import {
  PING_FRAME,
  PONG_FRAME,
  connectionEstablished,
  decodeFrame,
  errorFrame,
  eventFrame,
  memberAdded,
  memberRemoved,
  optionalString,
  requireString,
  signinSuccess,
  subscriptionErrorFrame,
  subscriptionSucceeded,
} from '../../src/protocol/frames';

/** Asserts that `fn` throws a PusherError with code null (a frame error, the socket stays open) and this message. */
function refused(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PusherError, `expected a PusherError, got ${err}`);
    assert.equal(err.code, null);
    assert.equal(err.close, false);
    assert.equal(err.message, message);
    return true;
  });
}

describe('decodeFrame', () => {
  test('parses a pusher:* event whose data is an object', () => {
    assert.deepEqual(decodeFrame('{"event":"pusher:subscribe","data":{"channel":"news","auth":"k:s"}}'), {
      event: 'pusher:subscribe',
      channel: undefined,
      data: { channel: 'news', auth: 'k:s' },
    });
  });

  test('parses a pusher:* event whose data is a JSON string of an object', () => {
    assert.deepEqual(decodeFrame('{"event":"pusher:subscribe","data":"{\\"channel\\":\\"news\\"}"}'), {
      event: 'pusher:subscribe',
      channel: undefined,
      data: { channel: 'news' },
    });
  });

  test('keeps a pusher:* data string that is not JSON as the string, for the handler to refuse', () => {
    assert.deepEqual(decodeFrame('{"event":"pusher:subscribe","data":"news"}'), { event: 'pusher:subscribe', channel: undefined, data: 'news' });
  });

  test('leaves client-* data exactly as sent, strings included', () => {
    assert.deepEqual(decodeFrame('{"event":"client-typing","channel":"private-a","data":"{\\"x\\":1}"}'), {
      event: 'client-typing',
      channel: 'private-a',
      data: '{"x":1}',
    });
    assert.deepEqual(decodeFrame('{"event":"client-typing","channel":"private-a","data":{"x":[1,2]}}'), {
      event: 'client-typing',
      channel: 'private-a',
      data: { x: [1, 2] },
    });
  });

  test('accepts a frame with no data (pusher:ping)', () => {
    assert.deepEqual(decodeFrame('{"event":"pusher:ping"}'), { event: 'pusher:ping', channel: undefined, data: undefined });
  });

  test('refuses text that is not JSON', () => {
    refused(() => decodeFrame('hello'), 'Invalid JSON: every message must be a JSON object with an "event" field');
    refused(() => decodeFrame(''), 'Invalid JSON: every message must be a JSON object with an "event" field');
    refused(() => decodeFrame('{"event":"pusher:ping"'), 'Invalid JSON: every message must be a JSON object with an "event" field');
  });

  test('refuses JSON that is not an object: array, null, string, number', () => {
    for (const text of ['[{"event":"pusher:ping"}]', 'null', '"pusher:ping"', '42', 'true']) {
      refused(() => decodeFrame(text), 'Invalid message: expected a JSON object with an "event" field');
    }
  });

  test('refuses a missing, empty or non-string event', () => {
    for (const text of ['{}', '{"data":{}}', '{"event":""}', '{"event":5}', '{"event":null}', '{"event":["pusher:ping"]}', '{"event":{}}']) {
      refused(() => decodeFrame(text), 'Invalid message: "event" must be a non-empty string');
    }
  });

  test('refuses a channel that is not a string', () => {
    for (const channel of ['5', 'null', '{}', '["private-a"]', 'true']) {
      refused(() => decodeFrame(`{"event":"client-x","channel":${channel},"data":{}}`), 'Invalid message: "channel" must be a string');
    }
  });
});

describe('requireString / optionalString', () => {
  test('requireString returns the field when it is a string', () => {
    assert.equal(requireString({ channel: 'news' }, 'channel', 'pusher:subscribe'), 'news');
  });

  test('requireString refuses absent data, non-object data and non-string fields', () => {
    for (const data of [undefined, null, 'news', 5, {}, { channel: 5 }, { channel: null }, { channel: {} }, { channel: ['news'] }]) {
      refused(() => requireString(data, 'channel', 'pusher:subscribe'), 'Invalid pusher:subscribe: data.channel must be a string');
    }
  });

  test('optionalString returns undefined when absent and refuses non-strings', () => {
    assert.equal(optionalString({ channel: 'news' }, 'auth', 'pusher:subscribe'), undefined);
    assert.equal(optionalString(undefined, 'auth', 'pusher:subscribe'), undefined);
    assert.equal(optionalString({ auth: 'k:s' }, 'auth', 'pusher:subscribe'), 'k:s');
    for (const auth of [{}, 5, null, ['k:s']]) {
      refused(() => optionalString({ auth }, 'auth', 'pusher:subscribe'), 'Invalid pusher:subscribe: data.auth must be a string');
    }
  });
});

describe('encoders', () => {
  test('connection_established carries its data as a JSON string', () => {
    assert.equal(
      connectionEstablished('123.456', 120),
      '{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"123.456\\",\\"activity_timeout\\":120}"}',
    );
  });

  test('pusher:error with a code and with a null code', () => {
    assert.equal(errorFrame(4001, 'App key does not exist'), '{"event":"pusher:error","data":{"code":4001,"message":"App key does not exist"}}');
    assert.equal(errorFrame(null, 'say "hi"'), '{"event":"pusher:error","data":{"code":null,"message":"say \\"hi\\""}}');
  });

  test('ping and pong', () => {
    assert.equal(PING_FRAME, '{"event":"pusher:ping","data":{}}');
    assert.equal(PONG_FRAME, '{"event":"pusher:pong","data":{}}');
  });

  test('subscription_succeeded and subscription_error', () => {
    assert.equal(subscriptionSucceeded('news', '{}'), '{"event":"pusher_internal:subscription_succeeded","channel":"news","data":"{}"}');
    assert.equal(
      subscriptionErrorFrame('private-a', 'AuthError', 'Invalid signature for private-a', 401),
      '{"event":"pusher:subscription_error","channel":"private-a","data":{"type":"AuthError","error":"Invalid signature for private-a","status":401}}',
    );
  });

  test('member_added and member_removed carry their data as JSON strings', () => {
    assert.equal(
      memberAdded('presence-room', 'u1', { name: 'Ann' }),
      '{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\\"user_id\\":\\"u1\\",\\"user_info\\":{\\"name\\":\\"Ann\\"}}"}',
    );
    assert.equal(memberRemoved('presence-room', 'u1'), '{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\\"user_id\\":\\"u1\\"}"}');
  });

  test('signin_success carries the signed user_data string unchanged', () => {
    assert.equal(signinSuccess('{"id":"u1"}'), '{"event":"pusher:signin_success","data":{"user_data":"{\\"id\\":\\"u1\\"}"}}');
  });

  test('eventFrame adds user_id only when given', () => {
    assert.equal(eventFrame('price', 'news', '{"v":1}'), '{"event":"price","channel":"news","data":"{\\"v\\":1}"}');
    assert.equal(eventFrame('client-x', 'presence-room', { v: 1 }, 'u1'), '{"event":"client-x","channel":"presence-room","data":{"v":1},"user_id":"u1"}');
  });
});
