// The WebSocket endpoint's lifecycle: the handshake frame, ping/pong, refusals at connect time
// (unknown key, disabled app, connection quota, protocol version), and malformed input, which gets a
// pusher:error (or, for an oversized message, a 1009 close) and never disturbs any other socket.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OPTION_SPECS } from '../../src/options';
import { APP, connected, eventually, nextEvent, startServer, subscribed, type RawSocket, type TestServer } from '../helpers/server';

const SOCKET_ID = /^\d+\.\d+$/;

/** Sends `frame` and returns the next pusher:error it gets, as parsed JSON. */
function errorFor(r: RawSocket, frame: unknown): Promise<any> {
  return r.request(frame, (f) => f.event === 'pusher:error');
}

/** Proves a raw socket is still served: pusher:ping gets exactly pusher:pong. */
async function answersPing(r: RawSocket): Promise<void> {
  assert.deepEqual(await r.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong'), { event: 'pusher:pong', data: {} });
}

/** Proves the server still serves others: a pusher-js subscriber receives an API event. */
async function stillDelivers(s: TestServer, channel: string): Promise<void> {
  const client = s.client();
  await connected(client);
  await subscribed(client, channel);
  const got = nextEvent(client, channel, 'still-alive');
  await s.sdk().trigger(channel, 'still-alive', { n: 1 });
  assert.deepEqual(await got, { n: 1 });
}

describe('connection', () => {
  test('connection_established carries a unique socket_id and activity_timeout 120, as a JSON string', async () => {
    const s = await startServer();
    try {
      const ids = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const r = await s.raw();
        const frame = await r.next((f) => f.event === 'pusher:connection_established');
        assert.equal(r.frames.indexOf(frame), 0, 'connection_established is the first frame');
        assert.equal(typeof frame.data, 'string');
        const data = JSON.parse(frame.data);
        assert.deepEqual(Object.keys(data), ['socket_id', 'activity_timeout']);
        assert.match(data.socket_id, SOCKET_ID);
        assert.equal(data.activity_timeout, 120);
        assert.equal(r.texts[0], `{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"${data.socket_id}\\",\\"activity_timeout\\":120}"}`);
        ids.add(data.socket_id);
      }
      const client = s.client();
      const id = await connected(client);
      assert.match(id, SOCKET_ID);
      ids.add(id);
      assert.equal(ids.size, 11);
    } finally {
      await s.stop();
    }
  });

  test('pusher:ping gets pusher:pong, with data as an object or a JSON string or absent', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await r.socketId();
      for (const ping of [{ event: 'pusher:ping', data: {} }, { event: 'pusher:ping', data: '{}' }, { event: 'pusher:ping' }]) {
        const from = r.texts.length;
        await r.request(ping, (f) => f.event === 'pusher:pong');
        assert.deepEqual(r.texts.slice(from), ['{"event":"pusher:pong","data":{}}']);
      }
    } finally {
      await s.stop();
    }
  });

  test('pusher:pong from the client is accepted silently', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await r.socketId();
      r.send({ event: 'pusher:pong', data: {} });
      await answersPing(r);
      assert.deepEqual(r.frames.map((f) => f.event), ['pusher:connection_established', 'pusher:pong']);
    } finally {
      await s.stop();
    }
  });

  test('a closed socket is forgotten: its app no longer counts it', async () => {
    const s = await startServer();
    try {
      const app = s.server.apps.findById(APP.id)!;
      const a = await s.raw();
      const b = await s.raw();
      await a.socketId();
      const idB = await b.socketId();
      assert.equal(app.sockets.size, 2);
      a.close();
      await a.closed;
      await eventually(() => app.sockets.size === 1, 2000, 'the closed socket to be dropped');
      assert.deepEqual([...app.sockets.ids()], [idB]);
    } finally {
      await s.stop();
    }
  });
});

describe('refusals at connect time', () => {
  test('an unknown app key gets pusher:error 4001, then close 4001, and nothing else', async () => {
    const s = await startServer();
    try {
      const r = await s.raw('no-such-key');
      assert.deepEqual(await r.closed, { code: 4001, reason: 'App key does not exist' });
      assert.deepEqual(r.texts, ['{"event":"pusher:error","data":{"code":4001,"message":"App key does not exist"}}']);
    } finally {
      await s.stop();
    }
  });

  test('pusher-js with an unknown key does not connect', async () => {
    const s = await startServer();
    try {
      const client = s.client({ key: 'no-such-key' });
      const errors: any[] = [];
      client.connection.bind('error', (e: any) => errors.push(e));
      await eventually(() => ['failed', 'disconnected'].includes(client.connection.state), 5000, 'pusher-js to give up');
      assert.deepEqual(errors, [{ type: 'WebSocketError', error: { type: 'PusherError', data: { code: 4001, message: 'App key does not exist' } } }]);
      assert.equal(s.server.apps.findById(APP.id)!.sockets.size, 0);
    } finally {
      await s.stop();
    }
  });

  test('DEFAULT_APP_ENABLED=0 refuses with pusher:error 4003 and close 4003', async () => {
    const s = await startServer({ DEFAULT_APP_ENABLED: '0' });
    try {
      const r = await s.raw();
      assert.deepEqual(await r.closed, { code: 4003, reason: 'App is disabled' });
      assert.deepEqual(r.texts, ['{"event":"pusher:error","data":{"code":4003,"message":"App is disabled"}}']);
    } finally {
      await s.stop();
    }
  });

  test('DEFAULT_APP_MAX_CONNS=1: the second connection gets 4004, the first stays, a new one fits after the first leaves', async () => {
    const s = await startServer({ DEFAULT_APP_MAX_CONNS: '1' });
    try {
      const first = await s.raw();
      await first.socketId();
      const second = await s.raw();
      assert.deepEqual(await second.closed, { code: 4004, reason: 'The app has reached its connection quota' });
      assert.deepEqual(second.texts, ['{"event":"pusher:error","data":{"code":4004,"message":"The app has reached its connection quota"}}']);
      await answersPing(first);

      first.close();
      await first.closed;
      const app = s.server.apps.findById(APP.id)!;
      await eventually(() => app.sockets.size === 0, 2000, 'the first socket to be dropped');
      const third = await s.raw();
      assert.match(await third.socketId(), SOCKET_ID);
      await answersPing(third);
    } finally {
      await s.stop();
    }
  });

  test('a protocol version other than 5 to 7 is refused with 4007', async () => {
    const s = await startServer();
    try {
      const r = await s.raw(APP.key, 'protocol=8');
      assert.deepEqual(await r.closed, { code: 4007, reason: 'Unsupported protocol version 8: this server speaks 5 to 7' });
      assert.deepEqual(r.frames, [{ event: 'pusher:error', data: { code: 4007, message: 'Unsupported protocol version 8: this server speaks 5 to 7' } }]);
      const ok = await s.raw(APP.key, 'protocol=5');
      assert.match(await ok.socketId(), SOCKET_ID);
    } finally {
      await s.stop();
    }
  });
});

describe('malformed input', () => {
  // Each bad frame, with the exact pusher:error message it earns; code null means the socket stays open.
  const BAD: [string, string | object, string][] = [
    ['not JSON', 'hello', 'Invalid JSON: every message must be a JSON object with an "event" field'],
    ['truncated JSON', '{"event":"pusher:ping"', 'Invalid JSON: every message must be a JSON object with an "event" field'],
    ['a JSON array', '[{"event":"pusher:ping"}]', 'Invalid message: expected a JSON object with an "event" field'],
    ['JSON null', 'null', 'Invalid message: expected a JSON object with an "event" field'],
    ['a JSON string', '"pusher:ping"', 'Invalid message: expected a JSON object with an "event" field'],
    ['no event', { data: {} }, 'Invalid message: "event" must be a non-empty string'],
    ['a numeric event', { event: 42 }, 'Invalid message: "event" must be a non-empty string'],
    ['an object event', { event: { name: 'pusher:ping' } }, 'Invalid message: "event" must be a non-empty string'],
    ['a numeric channel', { event: 'client-x', channel: 5, data: {} }, 'Invalid message: "channel" must be a string'],
    ['an unknown event', { event: 'hello', data: {} }, 'Unsupported event "hello"'],
    ['an unknown pusher: event', { event: 'pusher:nope', data: {} }, 'Unsupported event "pusher:nope"'],
    ['a pusher_internal: event from a client', { event: 'pusher_internal:member_added', data: {} }, 'Unsupported event "pusher_internal:member_added"'],
    ['pusher:subscribe with no data', { event: 'pusher:subscribe' }, 'Invalid pusher:subscribe: data.channel must be a string'],
    ['pusher:subscribe with null data', { event: 'pusher:subscribe', data: null }, 'Invalid pusher:subscribe: data.channel must be a string'],
    ['pusher:subscribe with string data', { event: 'pusher:subscribe', data: 'news' }, 'Invalid pusher:subscribe: data.channel must be a string'],
    ['pusher:subscribe with channel: 5', { event: 'pusher:subscribe', data: { channel: 5 } }, 'Invalid pusher:subscribe: data.channel must be a string'],
    ['pusher:subscribe with channel: 5 in a JSON string', { event: 'pusher:subscribe', data: '{"channel":5}' }, 'Invalid pusher:subscribe: data.channel must be a string'],
    ['pusher:subscribe with auth: {}', { event: 'pusher:subscribe', data: { channel: 'private-a', auth: {} } }, 'Invalid pusher:subscribe: data.auth must be a string'],
    ['pusher:subscribe with channel_data: {}', { event: 'pusher:subscribe', data: { channel: 'presence-a', auth: 'x:y', channel_data: {} } }, 'Invalid pusher:subscribe: data.channel_data must be a string'],
    ['pusher:unsubscribe with no data', { event: 'pusher:unsubscribe' }, 'Invalid pusher:unsubscribe: data.channel must be a string'],
    ['pusher:signin with no data', { event: 'pusher:signin' }, 'Invalid pusher:signin: data.auth must be a string'],
    ['pusher:signin with user_data: {}', { event: 'pusher:signin', data: { auth: 'x:y', user_data: {} } }, 'Invalid pusher:signin: data.user_data must be a string'],
  ];
  const BAD_NAMES = ['', 'news!', 'a b', 'private-é', 'x'.repeat(201), '#news'];

  test('each malformed frame gets its exact pusher:error, and the socket still answers ping', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await r.socketId();
      for (const [what, frame, message] of BAD) {
        assert.deepEqual((await errorFor(r, frame)).data, { code: null, message }, what);
      }
      for (const name of BAD_NAMES) {
        assert.deepEqual(
          (await errorFor(r, { event: 'pusher:subscribe', data: { channel: name } })).data,
          { code: null, message: `Invalid channel name "${name}": use at most 200 of a-z A-Z 0-9 _ - = @ , . ;` },
          `channel name ${JSON.stringify(name)}`,
        );
      }
      await answersPing(r);
      assert.equal(r.frames.filter((f) => f.event === 'pusher:error').length, BAD.length + BAD_NAMES.length);
    } finally {
      await s.stop();
    }
  });

  test('a binary frame gets a pusher:error even when it holds a valid ping, and the socket stays open', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await r.socketId();
      const from = r.frames.length;
      r.ws.send(Buffer.from('{"event":"pusher:ping","data":{}}'), { binary: true });
      const err = await r.next((f) => f.event === 'pusher:error', from);
      assert.deepEqual(err.data, { code: null, message: 'Binary messages are not supported: send JSON text frames' });
      assert.equal(r.frames.slice(from).some((f) => f.event === 'pusher:pong'), false);
      await answersPing(r);
    } finally {
      await s.stop();
    }
  });

  test('the whole barrage on one socket leaves another socket and a pusher-js subscriber served', async () => {
    const s = await startServer();
    try {
      const bystander = await s.raw();
      await bystander.socketId();
      const bad = await s.raw();
      await bad.socketId();
      for (const [, frame] of BAD) bad.send(frame);
      for (const name of BAD_NAMES) bad.send({ event: 'pusher:subscribe', data: { channel: name } });
      bad.ws.send(Buffer.from([0xff, 0x00, 0x7b]), { binary: true });
      await eventually(() => bad.frames.filter((f) => f.event === 'pusher:error').length === BAD.length + BAD_NAMES.length + 1, 5000, 'every error');
      await answersPing(bad);
      await answersPing(bystander);
      await stillDelivers(s, 'news');
      assert.deepEqual(bystander.frames.map((f) => f.event), ['pusher:connection_established', 'pusher:pong']);
    } finally {
      await s.stop();
    }
  });

  test('pusher:subscribe with no data (which crashes soketi 1.6.1) leaves the process serving new connections', async () => {
    const s = await startServer();
    try {
      for (let i = 0; i < 3; i++) {
        const r = await s.raw();
        await r.socketId();
        r.send('{"event":"pusher:subscribe"}');
        r.send('{"event":"pusher:subscribe","data":"{}"}');
        await eventually(() => r.frames.filter((f) => f.event === 'pusher:error').length === 2, 2000, 'both errors');
        r.close();
      }
      const r = await s.raw();
      assert.match(await r.socketId(), SOCKET_ID);
      await stillDelivers(s, 'news');
    } finally {
      await s.stop();
    }
  });

  test('a message over WS_MAX_MESSAGE_SIZE closes that socket with 1009; one at the limit is served; others are untouched', async () => {
    const s = await startServer({ WS_MAX_MESSAGE_SIZE: '1' });
    try {
      const bystander = await s.raw();
      await bystander.socketId();

      const atLimit = await s.raw();
      await atLimit.socketId();
      const ping = JSON.stringify({ event: 'pusher:ping', data: { pad: '' } });
      const exactly1KB = JSON.stringify({ event: 'pusher:ping', data: { pad: 'x'.repeat(1024 - ping.length) } });
      assert.equal(Buffer.byteLength(exactly1KB), 1024);
      await atLimit.request(exactly1KB, (f) => f.event === 'pusher:pong');

      const over = await s.raw();
      await over.socketId();
      over.send(JSON.stringify({ event: 'pusher:ping', data: { pad: 'x'.repeat(1025 - ping.length) } }));
      assert.deepEqual(await over.closed, { code: 1009, reason: 'Message larger than 1 KB' });

      await answersPing(atLimit);
      await answersPing(bystander);
      await stillDelivers(s, 'news');
    } finally {
      await s.stop();
    }
  });

  test('at its maximum, WS_MAX_MESSAGE_SIZE still lets messages through (uWS\'s 32-bit payload ceiling does not wrap)', async () => {
    const max = OPTION_SPECS.find((spec) => spec.env === 'WS_MAX_MESSAGE_SIZE')!.max!;
    const s = await startServer({ WS_MAX_MESSAGE_SIZE: String(max) });
    try {
      const r = await s.raw();
      await r.socketId();
      await answersPing(r);
      await stillDelivers(s, 'news');
    } finally {
      await s.stop();
    }
  });

  test('a message far over the limit is cut off unread, and only that socket', async () => {
    const s = await startServer({ WS_MAX_MESSAGE_SIZE: '1' });
    try {
      const bystander = await s.raw();
      await bystander.socketId();
      const huge = await s.raw();
      await huge.socketId();
      huge.send('x'.repeat(64 * 1024));
      assert.equal((await huge.closed).code, 1006);
      assert.deepEqual(huge.frames.map((f) => f.event), ['pusher:connection_established']);
      await answersPing(bystander);
      await stillDelivers(s, 'news');
    } finally {
      await s.stop();
    }
  });
});

// What uWebSockets.js does with frames RFC 6455 tells a server to refuse, which pws-server cannot
// change: uWS hands the application whole messages only (see docs/limitations.md).
describe('known limitations of uWebSockets.js', () => {
  test('a text frame with invalid UTF-8 is dropped with 1006, not closed with 1007; other sockets are untouched', async () => {
    const s = await startServer();
    try {
      const bystander = await s.raw();
      await bystander.socketId();
      const r = await s.raw();
      await r.socketId();
      r.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
      assert.deepEqual(await r.closed, { code: 1006, reason: '' });
      await answersPing(bystander);
    } finally {
      await s.stop();
    }
  });

  test('an unmasked client frame is neither answered nor closed with 1002; the activity timeout ends the socket with 4201', async () => {
    const s = await startServer({ ACTIVITY_TIMEOUT: '1', PONG_TIMEOUT: '500' });
    try {
      const r = await s.raw();
      await r.socketId();
      // uWS reads every client frame header as if a 4-byte mask key followed, so it takes this
      // ping's first 4 bytes for the key and then waits for 4 bytes that never come.
      r.ws.send('{"event":"pusher:ping","data":{}}', { mask: false });
      assert.deepEqual(await r.closed, { code: 4201, reason: 'Pong reply not received in time' });
      assert.deepEqual(
        r.frames.map((f) => f.event),
        ['pusher:connection_established', 'pusher:ping', 'pusher:error'],
      );
    } finally {
      await s.stop();
    }
  });
});
