// Subscription rules for the four channel kinds: public channels need nothing; private and
// private-encrypted need `key:HMAC-SHA256(secret, "socket_id:channel")`; presence signs channel_data
// too and keeps a member list whose changes are announced only when a user's first socket joins and
// its last one leaves, within the member-count and member-size limits. A refused socket gets
// pusher:subscription_error and none of the channel's events.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import Pusher from 'pusher';
import { APP, connected, drained, eventually, nextEvent, type RawSocket, startServer, subscribed, type TestServer } from '../helpers/server';

function sign(text: string): string {
  return createHmac('sha256', APP.secret).update(text).digest('hex');
}

/** The `auth` of a private or encrypted channel, computed here independently of the SDK. */
function channelAuth(socketId: string, channel: string): string {
  return `${APP.key}:${sign(`${socketId}:${channel}`)}`;
}

/** Subscribes a raw socket and returns the server's answer for that channel (success or error). */
function subscribeRaw(r: RawSocket, data: Record<string, unknown>): Promise<any> {
  return r.request({ event: 'pusher:subscribe', data }, (f) => f.channel === data.channel && (f.event === 'pusher_internal:subscription_succeeded' || f.event === 'pusher:subscription_error'));
}

/** Subscribes a raw socket to a presence channel as `user_id`, signed by the SDK. */
async function joinPresence(s: TestServer, r: RawSocket, channel: string, member: { user_id: string; user_info?: Record<string, unknown> }): Promise<any> {
  const signed = s.sdk().authorizeChannel(await r.socketId(), channel, member);
  return subscribeRaw(r, { channel, auth: signed.auth, channel_data: signed.channel_data });
}

/** Waits until the socket has seen everything sent before now (a ping round trip), then lists what it got on `channel`. */
async function framesOn(r: RawSocket, channel: string): Promise<any[]> {
  await r.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
  return r.frames.filter((f) => f.channel === channel);
}


/** Triggers an API event and waits until `witness` has it, so any other subscriber has been sent it too. */
async function triggerSeenBy(s: TestServer, witness: RawSocket, channel: string, event: string, data: unknown): Promise<void> {
  const from = witness.frames.length;
  await s.sdk().trigger(channel, event, data);
  await witness.next((f) => f.event === event && f.channel === channel, from);
}

describe('public channels', () => {
  test('subscribing needs no auth; API events arrive as exact frames; none after unsubscribe', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await r.socketId();
      await subscribeRaw(r, { channel: 'news' });
      assert.equal(r.texts[1], '{"event":"pusher_internal:subscription_succeeded","channel":"news","data":"{}"}');

      await triggerSeenBy(s, r, 'news', 'price', { v: 1 });
      assert.equal(r.texts[2], '{"event":"price","channel":"news","data":"{\\"v\\":1}"}');

      r.send({ event: 'pusher:unsubscribe', data: { channel: 'news' } });
      const witness = await s.raw();
      await witness.socketId();
      await subscribeRaw(witness, { channel: 'news' });
      await eventually(() => s.server.apps.findById(APP.id)!.channels.get('news')?.subscriptions === 1, 2000, 'the unsubscribe');
      await triggerSeenBy(s, witness, 'news', 'price', { v: 2 });
      assert.deepEqual((await framesOn(r, 'news')).map((f) => f.event), ['pusher_internal:subscription_succeeded', 'price']);
    } finally {
      await s.stop();
    }
  });

  test('pusher-js subscribes and receives an API event', async () => {
    const s = await startServer();
    try {
      const client = s.client();
      await connected(client);
      assert.deepEqual(await subscribed(client, 'news'), {});
      const got = nextEvent(client, 'news', 'price');
      await s.sdk().trigger('news', 'price', { v: 1, tags: ['a'] });
      assert.deepEqual(await got, { v: 1, tags: ['a'] });
    } finally {
      await s.stop();
    }
  });

  test('subscribing twice confirms twice but counts the socket once', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await r.socketId();
      await subscribeRaw(r, { channel: 'news' });
      await subscribeRaw(r, { channel: 'news' });
      assert.equal(s.server.apps.findById(APP.id)!.channels.get('news')?.subscriptions, 1);
      r.send({ event: 'pusher:unsubscribe', data: { channel: 'news' } });
      await eventually(() => !s.server.apps.findById(APP.id)!.channels.has('news'), 2000, 'the channel to be dropped');
    } finally {
      await s.stop();
    }
  });
});

describe('private channels', () => {
  test('pusher-js with a valid signature subscribes and receives events', async () => {
    const s = await startServer();
    try {
      const client = s.client();
      await connected(client);
      await subscribed(client, 'private-orders');
      const got = nextEvent(client, 'private-orders', 'placed');
      await s.sdk().trigger('private-orders', 'placed', { id: 7 });
      assert.deepEqual(await got, { id: 7 });
    } finally {
      await s.stop();
    }
  });

  test('the signature is HMAC-SHA256(secret, "socket_id:channel"), prefixed by the key', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      const answer = await subscribeRaw(r, { channel: 'private-orders', auth: channelAuth(await r.socketId(), 'private-orders') });
      assert.deepEqual(answer, { event: 'pusher_internal:subscription_succeeded', channel: 'private-orders', data: '{}' });
    } finally {
      await s.stop();
    }
  });

  test('pusher-js signed with the wrong secret gets subscription_error and no events', async () => {
    const s = await startServer();
    try {
      const good = await s.raw();
      await subscribeRaw(good, { channel: 'private-orders', auth: channelAuth(await good.socketId(), 'private-orders') });
      const client = s.client({ app: { ...APP, secret: 'wrong-secret' } });
      await connected(client);
      await assert.rejects(subscribed(client, 'private-orders'), (err: any) => {
        assert.deepEqual(err.data, { type: 'AuthError', error: 'Invalid signature for private-orders', status: 401 });
        return true;
      });
      let delivered = 0;
      client.channel('private-orders').bind('placed', () => delivered++);
      await triggerSeenBy(s, good, 'private-orders', 'placed', { id: 1 });
      await drained(client);
      assert.equal(delivered, 0);
      assert.equal(s.server.apps.findById(APP.id)!.channels.get('private-orders')?.subscriptions, 1);
    } finally {
      await s.stop();
    }
  });

  test('missing auth, a wrong key, and auth signed for another socket or channel are each refused, and the socket gets no events', async () => {
    const s = await startServer();
    try {
      const good = await s.raw();
      const goodId = await good.socketId();
      await subscribeRaw(good, { channel: 'private-orders', auth: channelAuth(goodId, 'private-orders') });

      const bad = await s.raw();
      const badId = await bad.socketId();
      const attempts: [string, Record<string, unknown>, string][] = [
        ['no auth', { channel: 'private-orders' }, 'Subscribing to private-orders requires an auth signature'],
        ['signed for another socket', { channel: 'private-orders', auth: channelAuth(goodId, 'private-orders') }, 'Invalid signature for private-orders'],
        ['signed for another channel', { channel: 'private-orders', auth: channelAuth(badId, 'private-other') }, 'Invalid signature for private-orders'],
        ['another app key', { channel: 'private-orders', auth: `other-key:${sign(`${badId}:private-orders`)}` }, 'Invalid signature for private-orders'],
        ['no key at all', { channel: 'private-orders', auth: sign(`${badId}:private-orders`) }, 'Invalid signature for private-orders'],
        ['a truncated signature', { channel: 'private-orders', auth: channelAuth(badId, 'private-orders').slice(0, -1) }, 'Invalid signature for private-orders'],
        ['empty auth', { channel: 'private-orders', auth: '' }, 'Invalid signature for private-orders'],
      ];
      for (const [what, data, error] of attempts) {
        assert.deepEqual(await subscribeRaw(bad, data), { event: 'pusher:subscription_error', channel: 'private-orders', data: { type: 'AuthError', error, status: 401 } }, what);
      }
      await triggerSeenBy(s, good, 'private-orders', 'placed', { id: 1 });
      assert.deepEqual(
        (await framesOn(bad, 'private-orders')).map((f) => f.event),
        attempts.map(() => 'pusher:subscription_error'),
      );
    } finally {
      await s.stop();
    }
  });
});

describe('private-encrypted channels', () => {
  test('auth is required and checked like a private channel', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      const id = await r.socketId();
      assert.deepEqual((await subscribeRaw(r, { channel: 'private-encrypted-vault' })).data, {
        type: 'AuthError',
        error: 'Subscribing to private-encrypted-vault requires an auth signature',
        status: 401,
      });
      assert.deepEqual((await subscribeRaw(r, { channel: 'private-encrypted-vault', auth: channelAuth(id, 'private-vault') })).data, {
        type: 'AuthError',
        error: 'Invalid signature for private-encrypted-vault',
        status: 401,
      });
      assert.equal((await subscribeRaw(r, { channel: 'private-encrypted-vault', auth: channelAuth(id, 'private-encrypted-vault') })).event, 'pusher_internal:subscription_succeeded');
    } finally {
      await s.stop();
    }
  });

  test('API events are relayed with their data untouched, SDK-encrypted or not', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await subscribeRaw(r, { channel: 'private-encrypted-vault', auth: channelAuth(await r.socketId(), 'private-encrypted-vault') });

      const opaque = '{"nonce":"bm9uY2U=","ciphertext":"c2VjcmV0"}';
      const from = r.frames.length;
      // post() JSON-encodes the body itself, though its typings ask for a string.
      await s.sdk().post({ path: '/events', body: { name: 'sealed', channels: ['private-encrypted-vault'], data: opaque } as never });
      await r.next((f) => f.event === 'sealed', from);
      assert.equal(r.texts[r.texts.length - 1], JSON.stringify({ event: 'sealed', channel: 'private-encrypted-vault', data: opaque }));

      const encrypting = new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(s.port), useTLS: false, encryptionMasterKeyBase64: randomBytes(32).toString('base64') });
      await encrypting.trigger('private-encrypted-vault', 'sealed', { card: '4111' });
      const frame = await r.next((f) => f.event === 'sealed' && f.data !== opaque, from);
      assert.equal(typeof frame.data, 'string');
      const payload = JSON.parse(frame.data);
      assert.deepEqual(Object.keys(payload).sort(), ['ciphertext', 'nonce']);
      assert.equal(frame.data.includes('4111'), false);
    } finally {
      await s.stop();
    }
  });
});

describe('presence channels', () => {
  test('subscription_succeeded carries the exact {presence:{ids,hash,count}}', async () => {
    const s = await startServer();
    try {
      const ann = await s.raw();
      assert.deepEqual(await joinPresence(s, ann, 'presence-room', { user_id: 'u1', user_info: { name: 'Ann' } }), {
        event: 'pusher_internal:subscription_succeeded',
        channel: 'presence-room',
        data: '{"presence":{"ids":["u1"],"hash":{"u1":{"name":"Ann"}},"count":1}}',
      });
      const bob = await s.raw();
      assert.equal(
        (await joinPresence(s, bob, 'presence-room', { user_id: 'u2', user_info: { name: 'Bob', tags: [1, 2] } })).data,
        '{"presence":{"ids":["u1","u2"],"hash":{"u1":{"name":"Ann"},"u2":{"name":"Bob","tags":[1,2]}},"count":2}}',
      );
      const anon = await s.raw();
      assert.equal(
        (await joinPresence(s, anon, 'presence-room', { user_id: 'u3' })).data,
        '{"presence":{"ids":["u1","u2","u3"],"hash":{"u1":{"name":"Ann"},"u2":{"name":"Bob","tags":[1,2]},"u3":null},"count":3}}',
      );
    } finally {
      await s.stop();
    }
  });

  test('pusher-js sees members, member_added and member_removed', async () => {
    const s = await startServer();
    try {
      const ann = s.client({ presence: { user_id: 'u1', user_info: { name: 'Ann' } } });
      await connected(ann);
      await subscribed(ann, 'presence-room');
      const channel = ann.channel('presence-room') as any;
      assert.equal(channel.members.count, 1);
      assert.deepEqual(channel.members.me, { id: 'u1', info: { name: 'Ann' } });

      const added = nextEvent(ann, 'presence-room', 'pusher:member_added');
      const bob = s.client({ presence: { user_id: 'u2', user_info: { name: 'Bob' } } });
      await connected(bob);
      const seenByBob = await subscribed(bob, 'presence-room');
      assert.equal(seenByBob.count, 2);
      assert.deepEqual(await added, { id: 'u2', info: { name: 'Bob' } });
      assert.equal(channel.members.count, 2);

      const removed = nextEvent(ann, 'presence-room', 'pusher:member_removed');
      bob.disconnect();
      assert.deepEqual(await removed, { id: 'u2', info: { name: 'Bob' } });
      assert.equal(channel.members.count, 1);
    } finally {
      await s.stop();
    }
  });

  test('member_added only for a user\'s first socket, member_removed only when its last socket leaves', async () => {
    const s = await startServer();
    try {
      const watcher = await s.raw();
      await joinPresence(s, watcher, 'presence-room', { user_id: 'watcher' });
      const events = async () => (await framesOn(watcher, 'presence-room')).slice(1).map((f) => [f.event, f.data]);

      const first = await s.raw();
      await joinPresence(s, first, 'presence-room', { user_id: 'u1', user_info: { n: 1 } });
      assert.deepEqual(await events(), [['pusher_internal:member_added', '{"user_id":"u1","user_info":{"n":1}}']]);
      assert.deepEqual((await framesOn(first, 'presence-room')).map((f) => f.event), ['pusher_internal:subscription_succeeded'], 'no member_added echoed to the joiner');

      const second = await s.raw();
      const answer = await joinPresence(s, second, 'presence-room', { user_id: 'u1', user_info: { n: 1 } });
      assert.equal(answer.data, '{"presence":{"ids":["watcher","u1"],"hash":{"watcher":null,"u1":{"n":1}},"count":2}}');
      assert.deepEqual((await events()).length, 1, 'the second socket of u1 is not announced');
      assert.deepEqual((await framesOn(first, 'presence-room')).length, 1, 'nor shown to u1\'s first socket');

      first.send({ event: 'pusher:unsubscribe', data: { channel: 'presence-room' } });
      await eventually(() => s.server.apps.findById(APP.id)!.channels.get('presence-room')!.subscriptions === 2, 2000, 'the unsubscribe');
      assert.deepEqual((await events()).length, 1, 'u1 still has a socket: no member_removed');

      second.close();
      await eventually(async () => (await events()).length === 2, 2000, 'member_removed');
      assert.deepEqual((await events())[1], ['pusher_internal:member_removed', '{"user_id":"u1"}']);
      assert.deepEqual([...s.server.apps.findById(APP.id)!.channels.get('presence-room')!.members!.keys()], ['watcher']);
    } finally {
      await s.stop();
    }
  });

  test('a numeric user_id is accepted and reported as a string', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      const signed = s.sdk().authorizeChannel(await r.socketId(), 'presence-room', { user_id: 42 } as never);
      assert.equal((await subscribeRaw(r, { channel: 'presence-room', ...signed })).data, '{"presence":{"ids":["42"],"hash":{"42":null},"count":1}}');
    } finally {
      await s.stop();
    }
  });

  test('channel_data is part of the signature: missing, altered or lacking user_id is refused', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      const id = await r.socketId();
      const signed = s.sdk().authorizeChannel(id, 'presence-room', { user_id: 'u1' });
      const refusals: [string, Record<string, unknown>, object][] = [
        ['no channel_data', { channel: 'presence-room', auth: signed.auth }, { type: 'AuthError', error: 'Presence channels require channel_data', status: 401 }],
        ['no auth', { channel: 'presence-room', channel_data: signed.channel_data }, { type: 'AuthError', error: 'Subscribing to presence-room requires an auth signature', status: 401 }],
        ['altered channel_data', { channel: 'presence-room', auth: signed.auth, channel_data: '{"user_id":"admin"}' }, { type: 'AuthError', error: 'Invalid signature for presence-room', status: 401 }],
        ['signed without channel_data', { channel: 'presence-room', auth: channelAuth(id, 'presence-room'), channel_data: signed.channel_data }, { type: 'AuthError', error: 'Invalid signature for presence-room', status: 401 }],
        ['channel_data not JSON', { channel: 'presence-room', auth: `${APP.key}:${sign(`${id}:presence-room:u1`)}`, channel_data: 'u1' }, { type: 'InvalidChannelData', error: 'channel_data must be a JSON object', status: 400 }],
        ['no user_id', { channel: 'presence-room', auth: `${APP.key}:${sign(`${id}:presence-room:{"user_info":{}}`)}`, channel_data: '{"user_info":{}}' }, { type: 'InvalidChannelData', error: 'channel_data must have a user_id string or number', status: 400 }],
        ['empty user_id', { channel: 'presence-room', auth: `${APP.key}:${sign(`${id}:presence-room:{"user_id":""}`)}`, channel_data: '{"user_id":""}' }, { type: 'InvalidChannelData', error: 'channel_data must have a user_id string or number', status: 400 }],
      ];
      for (const [what, data, error] of refusals) {
        assert.deepEqual(await subscribeRaw(r, data), { event: 'pusher:subscription_error', channel: 'presence-room', data: error }, what);
      }
      assert.equal(s.server.apps.findById(APP.id)!.channels.has('presence-room'), false);
    } finally {
      await s.stop();
    }
  });

  test('signed channel_data whose user_info nests 10,000 levels deep is refused as invalid, and nothing is logged', async (t) => {
    const logged = [t.mock.method(console, 'error', () => {}), t.mock.method(console, 'warn', () => {})];
    const s = await startServer({ PRESENCE_MAX_MEMBER_SIZE: '100' });
    try {
      const member = await s.raw();
      await joinPresence(s, member, 'presence-room', { user_id: 'u1' });
      const r = await s.raw();
      const id = await r.socketId();
      // Signed here: the SDK cannot serialize such user_info itself.
      const channelData = `{"user_id":"u2","user_info":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
      assert.deepEqual(await subscribeRaw(r, { channel: 'presence-room', auth: `${APP.key}:${sign(`${id}:presence-room:${channelData}`)}`, channel_data: channelData }), {
        event: 'pusher:subscription_error',
        channel: 'presence-room',
        data: { type: 'InvalidChannelData', error: 'channel_data user_info is nested too deeply', status: 400 },
      });
      assert.deepEqual([...s.server.apps.findById(APP.id)!.channels.get('presence-room')!.members!.keys()], ['u1']);
      assert.deepEqual((await framesOn(member, 'presence-room')).map((f) => f.event), ['pusher_internal:subscription_succeeded']);
      assert.deepEqual(logged.map((m) => m.mock.callCount()), [0, 0]);
    } finally {
      await s.stop();
    }
  });

  test('PRESENCE_MAX_MEMBERS=2: a third user is refused, an existing user\'s extra socket is not, and a freed place is reusable', async () => {
    const s = await startServer({ PRESENCE_MAX_MEMBERS: '2' });
    try {
      const u1 = await s.raw();
      const u2 = await s.raw();
      await joinPresence(s, u1, 'presence-room', { user_id: 'u1' });
      await joinPresence(s, u2, 'presence-room', { user_id: 'u2' });

      const u3 = await s.raw();
      assert.deepEqual(await joinPresence(s, u3, 'presence-room', { user_id: 'u3' }), {
        event: 'pusher:subscription_error',
        channel: 'presence-room',
        data: { type: 'LimitReached', error: 'Presence channel presence-room already has the maximum of 2 members', status: 4100 },
      });
      assert.deepEqual((await framesOn(u1, 'presence-room')).map((f) => f.event), ['pusher_internal:subscription_succeeded', 'pusher_internal:member_added']);

      const u1Again = await s.raw();
      assert.equal((await joinPresence(s, u1Again, 'presence-room', { user_id: 'u1' })).data, '{"presence":{"ids":["u1","u2"],"hash":{"u1":null,"u2":null},"count":2}}');

      u2.close();
      await eventually(() => s.server.apps.findById(APP.id)!.channels.get('presence-room')!.members!.size === 1, 2000, 'u2 to leave');
      assert.equal((await joinPresence(s, u3, 'presence-room', { user_id: 'u3' })).event, 'pusher_internal:subscription_succeeded');
    } finally {
      await s.stop();
    }
  });

  test('PRESENCE_MAX_MEMBER_SIZE=1: user_info over 1 KB is refused, exactly 1 KB is accepted', async () => {
    const s = await startServer({ PRESENCE_MAX_MEMBER_SIZE: '1' });
    try {
      const exact = { bio: 'x'.repeat(1024 - '{"bio":""}'.length) };
      assert.equal(JSON.stringify(exact).length, 1024);
      const big = await s.raw();
      assert.deepEqual(await joinPresence(s, big, 'presence-room', { user_id: 'u1', user_info: { bio: exact.bio + 'x' } }), {
        event: 'pusher:subscription_error',
        channel: 'presence-room',
        data: { type: 'LimitReached', error: 'Presence member info is larger than 1 KB', status: 4100 },
      });
      const fits = await s.raw();
      assert.equal((await joinPresence(s, fits, 'presence-room', { user_id: 'u2', user_info: exact })).event, 'pusher_internal:subscription_succeeded');
      assert.deepEqual([...s.server.apps.findById(APP.id)!.channels.get('presence-room')!.members!.keys()], ['u2']);
    } finally {
      await s.stop();
    }
  });
});

describe('a socket on many channels', () => {
  test('past eight channels each is still found, re-subscribed, left, and left on close, presence included', async () => {
    const s = await startServer();
    try {
      const app = s.server.apps.findById(APP.id)!;
      const watcher = await s.raw();
      await joinPresence(s, watcher, 'presence-room', { user_id: 'watcher' });
      const r = await s.raw();
      const id = await r.socketId();
      await joinPresence(s, r, 'presence-room', { user_id: 'u1' });
      const names = Array.from({ length: 10 }, (_, i) => `c${i}`);
      for (const channel of names) await subscribeRaw(r, { channel });
      await subscribeRaw(r, { channel: 'private-p', auth: channelAuth(id, 'private-p') });

      await triggerSeenBy(s, r, 'c9', 'price', { v: 1 });
      await triggerSeenBy(s, r, 'private-p', 'price', { v: 2 });
      assert.equal((await subscribeRaw(r, { channel: 'c3' })).event, 'pusher_internal:subscription_succeeded');
      assert.equal(app.channels.get('c3')?.subscriptions, 1, 'a re-subscription is not counted again');

      r.send({ event: 'pusher:unsubscribe', data: { channel: 'c0' } });
      await eventually(() => !app.channels.has('c0'), 2000, 'the unsubscribe');
      const witness = await s.raw();
      await witness.socketId();
      await subscribeRaw(witness, { channel: 'c0' });
      await triggerSeenBy(s, witness, 'c0', 'price', { v: 3 });
      assert.deepEqual((await framesOn(r, 'c0')).map((f) => f.event), ['pusher_internal:subscription_succeeded'], 'nothing after the unsubscribe');

      r.close();
      await watcher.next((f) => f.event === 'pusher_internal:member_removed');
      await eventually(() => [...app.channels.keys()].sort().join() === 'c0,presence-room', 2000, 'every channel of the closed socket to be left');
      assert.deepEqual([...app.channels.get('presence-room')!.members!.keys()], ['watcher']);
    } finally {
      await s.stop();
    }
  });
});
