// Client events (`client-*`): with client messages enabled they reach the other subscribers of a
// private or presence channel the sender has joined, never the sender, and carry `user_id` on
// presence channels; everything else is refused with pusher:error and the socket stays open. Pusher
// sends these refusals with code null ("To send client events, you must enable this feature...",
// "Cannot broadcast client event (connection not subscribed to channel ...)"); its clients read 4301
// as "client event rejected due to rate limit", which would be the wrong story here.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type PusherJs from 'pusher-js';
import { APP, connected, drained, eventually, type RawSocket, startServer, subscribed, type TestServer } from '../helpers/server';

const ENABLED = { DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1' };


/** A pusher-js client subscribed to `channel`, recording every `event` it receives there with its metadata. */
async function listener(s: TestServer, channel: string, event: string, presence?: { user_id: string }): Promise<{ client: PusherJs; got: [unknown, unknown][] }> {
  const client = s.client({ presence });
  await connected(client);
  await subscribed(client, channel);
  const got: [unknown, unknown][] = [];
  client.channel(channel).bind(event, (data: unknown, metadata: unknown) => got.push([data, metadata]));
  return { client, got };
}

/**
 * A raw socket subscribed to `channel`: public with no auth, presence signed by the SDK, private and
 * private-encrypted signed here (the SDK refuses to sign encrypted channels without a master key).
 */
async function rawSubscriber(s: TestServer, channel: string, presence?: { user_id: string }): Promise<RawSocket> {
  const r = await s.raw();
  await subscribeRaw(s, r, channel, presence);
  return r;
}

async function subscribeRaw(s: TestServer, r: RawSocket, channel: string, presence?: { user_id: string }): Promise<void> {
  const id = await r.socketId();
  const data =
    presence !== undefined
      ? { channel, ...s.sdk().authorizeChannel(id, channel, presence) }
      : channel.startsWith('private-')
        ? { channel, auth: `${APP.key}:${createHmac('sha256', APP.secret).update(`${id}:${channel}`).digest('hex')}` }
        : { channel };
  await r.request({ event: 'pusher:subscribe', data }, (f) => f.channel === channel && f.event === 'pusher_internal:subscription_succeeded');
}

/** Sends a frame and returns the pusher:error it earns. */
function errorFor(r: RawSocket, frame: unknown): Promise<any> {
  return r.request(frame, (f) => f.event === 'pusher:error');
}

describe('delivery', () => {
  test('pusher-js trigger on a private channel reaches the other subscribers, not the sender nor outsiders', async () => {
    const s = await startServer(ENABLED);
    try {
      const sender = await listener(s, 'private-chat', 'client-typing');
      const other1 = await listener(s, 'private-chat', 'client-typing');
      const other2 = await listener(s, 'private-chat', 'client-typing');
      const outsider = await listener(s, 'private-elsewhere', 'client-typing');

      assert.equal(sender.client.channel('private-chat').trigger('client-typing', { who: 'sender', n: [1, 2] }), true);
      await eventually(() => other1.got.length > 0 && other2.got.length > 0, 5000, 'both subscribers to receive it');
      assert.deepEqual(other1.got, [[{ who: 'sender', n: [1, 2] }, {}]]);
      assert.deepEqual(other2.got, [[{ who: 'sender', n: [1, 2] }, {}]]);
      await drained(sender.client);
      await drained(outsider.client);
      assert.deepEqual(sender.got, []);
      assert.deepEqual(outsider.got, []);
    } finally {
      await s.stop();
    }
  });

  test('on a presence channel pusher-js receives the sender\'s user_id as metadata', async () => {
    const s = await startServer(ENABLED);
    try {
      const ann = await listener(s, 'presence-room', 'client-wave', { user_id: 'ann' });
      const bob = await listener(s, 'presence-room', 'client-wave', { user_id: 'bob' });
      ann.client.channel('presence-room').trigger('client-wave', { hi: true });
      await eventually(() => bob.got.length > 0, 5000, 'bob to receive it');
      assert.deepEqual(bob.got, [[{ hi: true }, { user_id: 'ann' }]]);
      await drained(ann.client);
      assert.deepEqual(ann.got, []);
    } finally {
      await s.stop();
    }
  });

  test('exact frames: data relayed as sent, user_id only on presence', async () => {
    const s = await startServer(ENABLED);
    try {
      const a = await rawSubscriber(s, 'private-chat');
      const b = await rawSubscriber(s, 'private-chat');
      let from = b.texts.length;
      a.send({ event: 'client-edit', channel: 'private-chat', data: '{"raw":"string"}' });
      await b.next((f) => f.event === 'client-edit', from);
      assert.deepEqual(b.texts.slice(from), ['{"event":"client-edit","channel":"private-chat","data":"{\\"raw\\":\\"string\\"}"}']);

      const pa = await rawSubscriber(s, 'presence-room', { user_id: 'u-a' });
      const pb = await rawSubscriber(s, 'presence-room', { user_id: 'u-b' });
      from = pb.texts.length;
      pa.send({ event: 'client-edit', channel: 'presence-room', data: { x: 1 } });
      await pb.next((f) => f.event === 'client-edit', from);
      assert.deepEqual(pb.texts.slice(from), ['{"event":"client-edit","channel":"presence-room","data":{"x":1},"user_id":"u-a"}']);

      await a.request({ event: 'pusher:ping' }, (f) => f.event === 'pusher:pong');
      await pa.request({ event: 'pusher:ping' }, (f) => f.event === 'pusher:pong');
      assert.equal(a.frames.some((f) => f.event === 'client-edit'), false, 'not echoed on private');
      assert.equal(pa.frames.some((f) => f.event === 'client-edit'), false, 'not echoed on presence');
    } finally {
      await s.stop();
    }
  });
});

describe('refusals (pusher:error with code null)', () => {
  test('pusher-js trigger when the app does not allow client messages raises an error with code null and delivers nothing', async () => {
    const s = await startServer();
    try {
      const sender = await listener(s, 'private-chat', 'client-typing');
      const other = await listener(s, 'private-chat', 'client-typing');
      const error = new Promise<any>((resolve) => sender.client.connection.bind('error', resolve));
      sender.client.channel('private-chat').trigger('client-typing', { n: 1 });
      assert.deepEqual(await error, { type: 'PusherError', data: { code: null, message: 'Client events are not enabled for this app' } });
      await drained(other.client);
      assert.deepEqual(other.got, []);
      assert.equal(sender.client.connection.state, 'connected');
    } finally {
      await s.stop();
    }
  });

  test('public channel, private-encrypted channel, a channel not joined, no channel, an over-long name: each refused, nothing delivered', async () => {
    const s = await startServer(ENABLED);
    try {
      const sender = await s.raw();
      for (const channel of ['news', 'private-encrypted-vault', 'private-mine']) await subscribeRaw(s, sender, channel);
      const receivers = [
        await rawSubscriber(s, 'news'),
        await rawSubscriber(s, 'private-encrypted-vault'),
        await rawSubscriber(s, 'private-chat'),
        await rawSubscriber(s, 'presence-room', { user_id: 'u1' }),
      ];

      const refusals: [string, object, string][] = [
        ['public', { event: 'client-x', channel: 'news', data: {} }, 'Client events are only allowed on private and presence channels, not on news'],
        ['encrypted', { event: 'client-x', channel: 'private-encrypted-vault', data: {} }, 'Client events are only allowed on private and presence channels, not on private-encrypted-vault'],
        ['private not joined', { event: 'client-x', channel: 'private-chat', data: {} }, 'Client event client-x rejected: not subscribed to private-chat'],
        ['presence not joined', { event: 'client-x', channel: 'presence-room', data: {} }, 'Client event client-x rejected: not subscribed to presence-room'],
        ['no channel', { event: 'client-x', data: {} }, 'Client event client-x has no channel'],
        ['name over 200 characters', { event: `client-${'x'.repeat(194)}`, channel: 'private-mine', data: {} }, 'Client event name is longer than 200 characters'],
      ];
      for (const [what, frame, message] of refusals) {
        assert.deepEqual(await errorFor(sender, frame), { event: 'pusher:error', data: { code: null, message } }, what);
      }
      for (const r of receivers) {
        await r.request({ event: 'pusher:ping' }, (f) => f.event === 'pusher:pong');
        assert.equal(r.frames.some((f) => f.event.startsWith('client-')), false);
      }
      await sender.request({ event: 'pusher:ping' }, (f) => f.event === 'pusher:pong');
    } finally {
      await s.stop();
    }
  });

  test('a name of exactly 200 characters is accepted', async () => {
    const s = await startServer(ENABLED);
    try {
      const a = await rawSubscriber(s, 'private-chat');
      const b = await rawSubscriber(s, 'private-chat');
      const event = `client-${'x'.repeat(193)}`;
      assert.equal(event.length, 200);
      const from = b.frames.length;
      a.send({ event, channel: 'private-chat', data: {} });
      assert.equal((await b.next((f) => f.event === event, from)).channel, 'private-chat');
    } finally {
      await s.stop();
    }
  });

  test('after unsubscribing, the socket may no longer send client events there', async () => {
    const s = await startServer(ENABLED);
    try {
      const a = await rawSubscriber(s, 'private-chat');
      a.send({ event: 'pusher:unsubscribe', data: { channel: 'private-chat' } });
      assert.deepEqual((await errorFor(a, { event: 'client-x', channel: 'private-chat', data: {} })).data, {
        code: null,
        message: 'Client event client-x rejected: not subscribed to private-chat',
      });
    } finally {
      await s.stop();
    }
  });
});

describe('hostile data', () => {
  // V8 parses JSON of any depth without recursion, but serializing it again recurses.
  test('data nested 10,000 levels deep is refused as a bad frame: nothing relayed, nothing logged, the socket stays open', async (t) => {
    const logged = [t.mock.method(console, 'error', () => {}), t.mock.method(console, 'warn', () => {})];
    const s = await startServer(ENABLED);
    try {
      const a = await rawSubscriber(s, 'private-chat');
      const b = await rawSubscriber(s, 'private-chat');
      const pa = await rawSubscriber(s, 'presence-room', { user_id: 'u-a' });
      const pb = await rawSubscriber(s, 'presence-room', { user_id: 'u-b' });
      const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
      for (const [sender, channel] of [[a, 'private-chat'], [pa, 'presence-room']] as const) {
        const frame = `{"event":"client-deep","channel":"${channel}","data":${deep}}`;
        assert.deepEqual(await errorFor(sender, frame), { event: 'pusher:error', data: { code: null, message: 'Invalid client event: data is nested too deeply' } }, channel);
        await sender.request({ event: 'pusher:ping' }, (f) => f.event === 'pusher:pong');
      }
      for (const r of [b, pb]) {
        await r.request({ event: 'pusher:ping' }, (f) => f.event === 'pusher:pong');
        assert.equal(r.frames.some((f) => f.event === 'client-deep'), false);
      }
      // Data just shallow enough still goes through.
      const from = b.frames.length;
      a.send(`{"event":"client-deep","channel":"private-chat","data":${'['.repeat(1000)}${']'.repeat(1000)}}`);
      await b.next((f) => f.event === 'client-deep', from);
      assert.deepEqual(logged.map((m) => m.mock.callCount()), [0, 0]);
    } finally {
      await s.stop();
    }
  });
});
