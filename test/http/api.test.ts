// The Pusher HTTP API (src/http-api.ts) driven by the official `pusher` SDK and by raw signed
// requests, with real pusher-js subscribers checking what is delivered.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type PusherJs from 'pusher-js';
import { APP, connected, eventually, nextEvent, startServer, subscribed, type TestServer } from '../helpers/server';

type Credentials = { id: string; key: string; secret: string };

/** Signs a request the way Pusher documents it, independently of src/ (so a signing bug there fails here). */
function signedPath(method: string, path: string, params: Record<string, string>, body: string, app: Credentials = APP): string {
  const query: Record<string, string> = { ...params, auth_key: app.key, auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: '1.0' };
  if (body !== '') query.body_md5 = createHash('md5').update(body).digest('hex');
  const sorted = Object.keys(query)
    .sort()
    .map((k) => `${k}=${query[k]}`)
    .join('&');
  const auth_signature = createHmac('sha256', app.secret).update(`${method}\n${path}\n${sorted}`).digest('hex');
  return `${path}?${new URLSearchParams({ ...query, auth_signature })}`;
}

interface Answer {
  status: number;
  contentType: string | null;
  body: any;
}

/** A signed API call; `body` is sent as given when a string (to send malformed JSON), else JSON-encoded. */
async function api(s: TestServer, method: 'GET' | 'POST', path: string, body?: unknown, params: Record<string, string> = {}, app?: Credentials): Promise<Answer> {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(s.url(signedPath(method, path, params, text, app)), { method, body: method === 'POST' ? text : undefined });
  return { status: res.status, contentType: res.headers.get('content-type'), body: await res.json() };
}

/** Records every `event` a pusher-js client receives on a channel it has subscribed to. */
function collect(client: PusherJs, channel: string, event: string): unknown[] {
  const got: unknown[] = [];
  client.channel(channel).bind(event, (data: unknown) => got.push(data));
  return got;
}

async function subscriber(s: TestServer, channel: string, options?: Parameters<TestServer['client']>[0]): Promise<PusherJs> {
  const client = s.client(options);
  await connected(client);
  await subscribed(client, channel);
  return client;
}

/** Resolves once a pusher-js client has signed in as its configured user. */
async function signedIn(client: PusherJs): Promise<void> {
  await connected(client);
  client.signin();
  await client.user.signinDonePromise;
  assert.notEqual(client.user.user_data, null, 'sign-in failed');
}

describe('POST /apps/:id/events', () => {
  test('an SDK-triggered event reaches a pusher-js subscriber with the exact data', async () => {
    const s = await startServer();
    try {
      const client = await subscriber(s, 'orders');
      const got = nextEvent(client, 'orders', 'order-created');
      const res = await s.sdk().trigger('orders', 'order-created', { id: 42, items: ['tea', 'cake'], note: 'ünïcode ✓' });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {});
      assert.deepEqual(await got, { id: 42, items: ['tea', 'cake'], note: 'ünïcode ✓' });
    } finally {
      await s.stop();
    }
  });

  test('"channel" (one) and "channels" (many) both deliver to every named channel', async () => {
    const s = await startServer();
    try {
      const a = await subscriber(s, 'a');
      const b = await subscriber(s, 'b');
      const c = await subscriber(s, 'c');
      const gotA = collect(a, 'a', 'ev');
      const gotB = collect(b, 'b', 'ev');
      const gotC = collect(c, 'c', 'ev');
      assert.equal((await api(s, 'POST', '/apps/app-id/events', { name: 'ev', data: 'one', channel: 'a' })).status, 200);
      assert.equal((await api(s, 'POST', '/apps/app-id/events', { name: 'ev', data: 'many', channels: ['b', 'c'] })).status, 200);
      await eventually(() => gotA.length === 1 && gotB.length === 1 && gotC.length === 1);
      assert.deepEqual([gotA, gotB, gotC], [['one'], ['many'], ['many']]);
    } finally {
      await s.stop();
    }
  });

  test('socket_id: the excluded pusher-js client does not get the event, another subscriber does', async () => {
    const s = await startServer();
    try {
      const excluded = await subscriber(s, 'room');
      const other = await subscriber(s, 'room');
      const gotExcluded = collect(excluded, 'room', 'msg');
      const gotOther = collect(other, 'room', 'msg');
      const sdk = s.sdk();
      await sdk.trigger('room', 'msg', { n: 1 }, { socket_id: excluded.connection.socket_id });
      // Frames on one socket arrive in order: once n=2 is in, n=1 would have been too.
      await sdk.trigger('room', 'msg', { n: 2 });
      await eventually(() => gotExcluded.length >= 1 && gotOther.length === 2);
      assert.deepEqual(gotExcluded, [{ n: 2 }]);
      assert.deepEqual(gotOther, [{ n: 1 }, { n: 2 }]);
    } finally {
      await s.stop();
    }
  });

  test('info=subscription_count,user_count answers {channels} with exact counts', async () => {
    const s = await startServer();
    try {
      // Three sockets, two distinct users.
      await subscriber(s, 'presence-room', { presence: { user_id: 'alice' } });
      await subscriber(s, 'presence-room', { presence: { user_id: 'alice' } });
      await subscriber(s, 'presence-room', { presence: { user_id: 'bob' } });
      await subscriber(s, 'presence-empty-neighbour', { presence: { user_id: 'carol' } });
      const res = await s.sdk().trigger(['presence-room', 'presence-nobody'], 'ev', {}, { info: 'subscription_count,user_count' });
      assert.deepEqual(await res.json(), {
        channels: {
          'presence-room': { subscription_count: 3, user_count: 2 },
          'presence-nobody': { subscription_count: 0, user_count: 0 },
        },
      });
      await subscriber(s, 'public');
      await subscriber(s, 'public');
      const pub = await s.sdk().trigger(['public', 'presence-room'], 'ev', {}, { info: 'subscription_count' });
      assert.deepEqual(await pub.json(), { channels: { public: { subscription_count: 2 }, 'presence-room': { subscription_count: 3 } } });
    } finally {
      await s.stop();
    }
  });

  test('info=user_count on a non-presence channel is refused with 400 and delivers nothing', async () => {
    const s = await startServer();
    try {
      const client = await subscriber(s, 'public');
      const got = collect(client, 'public', 'ev');
      const res = await api(s, 'POST', '/apps/app-id/events', { name: 'ev', data: 'refused', channels: ['public'], info: 'user_count' });
      assert.deepEqual(res, { status: 400, contentType: 'application/json', body: { error: 'user_count is only available for presence channels, not public' } });
      await s.sdk().trigger('public', 'ev', 'marker');
      await eventually(() => got.length >= 1);
      assert.deepEqual(got, ['marker']);
    } finally {
      await s.stop();
    }
  });

  test('EVENT_MAX_CHANNELS_AT_ONCE: 100 channels by default are accepted, 101 refused with 400', async () => {
    const s = await startServer();
    try {
      const names = Array.from({ length: 101 }, (_, i) => `ch-${i}`);
      const client = await subscriber(s, 'ch-0');
      const got = collect(client, 'ch-0', 'ev');
      assert.deepEqual(await api(s, 'POST', '/apps/app-id/events', { name: 'ev', data: 'too-many', channels: names }), {
        status: 400,
        contentType: 'application/json',
        body: { error: 'event: at most 100 channels per event' },
      });
      assert.equal((await api(s, 'POST', '/apps/app-id/events', { name: 'ev', data: 'hundred', channels: names.slice(0, 100) })).status, 200);
      await eventually(() => got.length >= 1);
      assert.deepEqual(got, ['hundred']);
    } finally {
      await s.stop();
    }
  });

  test('EVENT_MAX_CHANNELS_AT_ONCE=2 refuses an event for 3 channels', async () => {
    const s = await startServer({ EVENT_MAX_CHANNELS_AT_ONCE: '2' });
    try {
      assert.equal((await api(s, 'POST', '/apps/app-id/events', { name: 'ev', data: '', channels: ['a', 'b'] })).status, 200);
      const res = await api(s, 'POST', '/apps/app-id/events', { name: 'ev', data: '', channels: ['a', 'b', 'c'] });
      assert.deepEqual(res.body, { error: 'event: at most 2 channels per event' });
      assert.equal(res.status, 400);
    } finally {
      await s.stop();
    }
  });

  test('sendToUser reaches every signed-in socket of that user with exact data, and no other user', async () => {
    const s = await startServer();
    try {
      const alice1 = s.client({ user: { id: 'alice' } });
      const alice2 = s.client({ user: { id: 'alice' } });
      const bob = s.client({ user: { id: 'bob' } });
      await Promise.all([signedIn(alice1), signedIn(alice2), signedIn(bob)]);
      const got: Record<string, unknown[]> = { alice1: [], alice2: [], bob: [] };
      alice1.user.bind('notice', (d: unknown) => got.alice1.push(d));
      alice2.user.bind('notice', (d: unknown) => got.alice2.push(d));
      bob.user.bind('notice', (d: unknown) => got.bob.push(d));
      const sdk = s.sdk();
      assert.equal((await sdk.sendToUser('alice', 'notice', { text: 'for alice' })).status, 200);
      await sdk.sendToUser('bob', 'notice', { text: 'for bob' });
      await eventually(() => got.alice1.length === 1 && got.alice2.length === 1 && got.bob.length >= 1);
      assert.deepEqual(got, { alice1: [{ text: 'for alice' }], alice2: [{ text: 'for alice' }], bob: [{ text: 'for bob' }] });
    } finally {
      await s.stop();
    }
  });
});

describe('POST /apps/:id/batch_events', () => {
  test('every event of a batch reaches its channel with its exact data, in order', async () => {
    const s = await startServer();
    try {
      const a = await subscriber(s, 'a');
      const b = await subscriber(s, 'private-b');
      const gotA = collect(a, 'a', 'ev');
      const gotB = collect(b, 'private-b', 'other');
      const res = await s.sdk().triggerBatch([
        { channel: 'a', name: 'ev', data: { n: 1 } },
        { channel: 'private-b', name: 'other', data: 'plain text' },
        { channel: 'a', name: 'ev', data: { n: 2 } },
      ]);
      assert.deepEqual(await res.json(), {});
      await eventually(() => gotA.length === 2 && gotB.length === 1);
      assert.deepEqual(gotA, [{ n: 1 }, { n: 2 }]);
      assert.deepEqual(gotB, ['plain text']);
    } finally {
      await s.stop();
    }
  });

  test('info answers {batch} with one entry per event, in order, empty where not asked', async () => {
    const s = await startServer();
    try {
      await subscriber(s, 'presence-p', { presence: { user_id: 'u1' } });
      await subscriber(s, 'presence-p', { presence: { user_id: 'u2' } });
      await subscriber(s, 'pub');
      const res = await s.sdk().triggerBatch([
        { channel: 'presence-p', name: 'ev', data: '', info: 'user_count,subscription_count' },
        { channel: 'pub', name: 'ev', data: '' },
        { channel: 'pub', name: 'ev', data: '', info: 'subscription_count' },
      ]);
      assert.deepEqual(await res.json(), { batch: [{ user_count: 2, subscription_count: 2 }, {}, { subscription_count: 1 }] });
    } finally {
      await s.stop();
    }
  });

  test('an invalid event anywhere in the batch answers 400 and delivers none of the batch', async () => {
    const s = await startServer();
    try {
      const client = await subscriber(s, 'a');
      const got = collect(client, 'a', 'ev');
      const invalid: [string, unknown, string][] = [
        ['a bad channel name last', { channel: 'bad name!', name: 'ev', data: '' }, 'batch[2]: invalid channel name "bad name!"'],
        ['a missing name', { channel: 'a', data: '' }, 'batch[2]: "name" must be a non-empty string'],
        ['object data', { channel: 'a', name: 'ev', data: {} }, 'batch[2]: "data" must be a string (JSON-encode objects)'],
        ['user_count on a public channel', { channel: 'a', name: 'ev', data: '', info: 'user_count' }, 'user_count is only available for presence channels, not a'],
      ];
      for (const [what, bad, error] of invalid) {
        const res = await api(s, 'POST', '/apps/app-id/batch_events', { batch: [{ channel: 'a', name: 'ev', data: 'first' }, { channel: 'a', name: 'ev', data: 'second' }, bad] });
        assert.deepEqual(res, { status: 400, contentType: 'application/json', body: { error } }, what);
      }
      await s.sdk().trigger('a', 'ev', 'marker');
      await eventually(() => got.length >= 1);
      assert.deepEqual(got, ['marker']);
    } finally {
      await s.stop();
    }
  });

  test('EVENT_MAX_BATCH_SIZE: 10 events are accepted, 11 refused with 400', async () => {
    const s = await startServer();
    try {
      const event = { channel: 'a', name: 'ev', data: '' };
      assert.equal((await api(s, 'POST', '/apps/app-id/batch_events', { batch: Array(10).fill(event) })).status, 200);
      assert.deepEqual(await api(s, 'POST', '/apps/app-id/batch_events', { batch: Array(11).fill(event) }), {
        status: 400,
        contentType: 'application/json',
        body: { error: 'A batch may hold at most 10 events' },
      });
    } finally {
      await s.stop();
    }
  });
});

describe('GET /apps/:id/channels', () => {
  test('lists occupied channels, filtered by filter_by_prefix, with user_count for presence-', async () => {
    const s = await startServer();
    try {
      await subscriber(s, 'news');
      await subscriber(s, 'private-inbox');
      await subscriber(s, 'presence-lobby', { presence: { user_id: 'alice' } });
      await subscriber(s, 'presence-lobby', { presence: { user_id: 'alice' } });
      await subscriber(s, 'presence-game', { presence: { user_id: 'bob' } });
      await subscriber(s, 'presence-game', { presence: { user_id: 'carol' } });
      const sdk = s.sdk();
      const all = await (await sdk.get({ path: '/channels' })).json();
      assert.deepEqual(all, { channels: { news: {}, 'private-inbox': {}, 'presence-lobby': {}, 'presence-game': {} } });
      const priv = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'private-' } })).json();
      assert.deepEqual(priv, { channels: { 'private-inbox': {} } });
      const presence = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json();
      assert.deepEqual(presence, { channels: { 'presence-lobby': { user_count: 1 }, 'presence-game': { user_count: 2 } } });
    } finally {
      await s.stop();
    }
  });

  test('a channel leaves the list when its last subscriber unsubscribes', async () => {
    const s = await startServer();
    try {
      const client = await subscriber(s, 'news');
      await subscriber(s, 'other');
      client.unsubscribe('news');
      await eventually(async () => (await api(s, 'GET', '/apps/app-id/channels')).body.channels.news === undefined);
      assert.deepEqual((await api(s, 'GET', '/apps/app-id/channels')).body, { channels: { other: {} } });
    } finally {
      await s.stop();
    }
  });

  test('info=user_count without filter_by_prefix=presence- is refused with 400', async () => {
    const s = await startServer();
    try {
      for (const params of [{ info: 'user_count' }, { info: 'user_count', filter_by_prefix: 'private-' }] as Record<string, string>[]) {
        assert.deepEqual(await api(s, 'GET', '/apps/app-id/channels', undefined, params), {
          status: 400,
          contentType: 'application/json',
          body: { error: 'info=user_count requires filter_by_prefix=presence-' },
        });
      }
      assert.equal((await api(s, 'GET', '/apps/app-id/channels', undefined, { info: 'bogus' })).status, 400);
    } finally {
      await s.stop();
    }
  });
});

describe('GET /apps/:id/channels/:name', () => {
  test('occupied and subscription_count of a public channel', async () => {
    const s = await startServer();
    try {
      await subscriber(s, 'news');
      await subscriber(s, 'news');
      const sdk = s.sdk();
      assert.deepEqual(await (await sdk.get({ path: '/channels/news' })).json(), { occupied: true });
      assert.deepEqual(await (await sdk.get({ path: '/channels/news', params: { info: 'subscription_count' } })).json(), { occupied: true, subscription_count: 2 });
      assert.deepEqual(await (await sdk.get({ path: '/channels/empty', params: { info: 'subscription_count' } })).json(), { occupied: false, subscription_count: 0 });
    } finally {
      await s.stop();
    }
  });

  test('user_count counts distinct users of a presence channel; asked of a public channel it is a 400', async () => {
    const s = await startServer();
    try {
      await subscriber(s, 'presence-room', { presence: { user_id: 'alice' } });
      await subscriber(s, 'presence-room', { presence: { user_id: 'alice' } });
      await subscriber(s, 'presence-room', { presence: { user_id: 'bob' } });
      const sdk = s.sdk();
      const info = await (await sdk.get({ path: '/channels/presence-room', params: { info: 'user_count,subscription_count' } })).json();
      assert.deepEqual(info, { occupied: true, user_count: 2, subscription_count: 3 });
      assert.deepEqual(await api(s, 'GET', '/apps/app-id/channels/news', undefined, { info: 'user_count' }), {
        status: 400,
        contentType: 'application/json',
        body: { error: 'user_count is only available for presence channels, not news' },
      });
    } finally {
      await s.stop();
    }
  });
});

describe('GET /apps/:id/channels/:name/users', () => {
  test('lists the distinct user ids of a presence channel', async () => {
    const s = await startServer();
    try {
      await subscriber(s, 'presence-room', { presence: { user_id: 'alice', user_info: { name: 'Alice' } } });
      await subscriber(s, 'presence-room', { presence: { user_id: 'bob' } });
      await subscriber(s, 'presence-room', { presence: { user_id: 'alice', user_info: { name: 'Alice' } } });
      const users = await (await s.sdk().get({ path: '/channels/presence-room/users' })).json();
      assert.deepEqual(users, { users: [{ id: 'alice' }, { id: 'bob' }] });
      assert.deepEqual((await api(s, 'GET', '/apps/app-id/channels/presence-nobody/users')).body, { users: [] });
    } finally {
      await s.stop();
    }
  });

  test('a non-presence channel is refused with 400', async () => {
    const s = await startServer();
    try {
      assert.deepEqual(await api(s, 'GET', '/apps/app-id/channels/private-x/users'), {
        status: 400,
        contentType: 'application/json',
        body: { error: 'Users can only be listed for presence channels, not private-x' },
      });
    } finally {
      await s.stop();
    }
  });
});

describe('one channel-name rule for every entry point', () => {
  // Names the events API refuses; the read endpoints used to answer them as empty channels.
  const BAD = ['../../etc/passwd', '€', '😀', 'c'.repeat(10_000), 'a b', '#news', '#server-to-user-'];
  test('POST events, GET a channel and GET its users all answer the same 400 for a bad name', async () => {
    const s = await startServer();
    try {
      for (const name of BAD) {
        const error = `invalid channel name ${JSON.stringify(name)}`;
        assert.deepEqual(await api(s, 'POST', '/apps/app-id/events', { name: 'ev', data: '', channel: name }), { status: 400, contentType: 'application/json', body: { error: `event: ${error}` } }, `events ${name}`);
        const path = `/apps/app-id/channels/${encodeURIComponent(name)}`;
        assert.deepEqual(await api(s, 'GET', path), { status: 400, contentType: 'application/json', body: { error: `path: ${error}` } }, `channel ${name}`);
        assert.deepEqual(await api(s, 'GET', `${path}/users`), { status: 400, contentType: 'application/json', body: { error: `path: ${error}` } }, `users ${name}`);
      }
    } finally {
      await s.stop();
    }
  });

  test('names the events API accepts are answered by the read endpoints: a user channel, a name at the length limit', async () => {
    const s = await startServer();
    try {
      const atLimit = `presence-${'c'.repeat(191)}`;
      assert.equal(atLimit.length, 200);
      for (const name of ['#server-to-user-u1', atLimit]) {
        assert.equal((await api(s, 'POST', '/apps/app-id/events', { name: 'ev', data: '', channel: name })).status, 200, `events ${name}`);
        assert.deepEqual((await api(s, 'GET', `/apps/app-id/channels/${encodeURIComponent(name)}`)).body, { occupied: false }, `channel ${name}`);
      }
      assert.deepEqual((await api(s, 'GET', `/apps/app-id/channels/${atLimit}/users`)).body, { users: [] });
    } finally {
      await s.stop();
    }
  });
});

describe('POST /apps/:id/users/:user/terminate_connections', () => {
  test("closes every signed-in socket of that user with 4009 and leaves other users' sockets open", async () => {
    const s = await startServer();
    try {
      // Raw sockets, not pusher-js: pusher-js answers a 40xx close by closing its already-closed
      // socket, which arms a 30 s timer in its WebSocket library and holds the test process.
      const sdk = s.sdk();
      const sockets = [await s.raw(), await s.raw(), await s.raw()];
      const users = ['alice', 'alice', 'bob'];
      for (let i = 0; i < sockets.length; i++) {
        const auth = sdk.authenticateUser(await sockets[i].socketId(), { id: users[i] });
        await sockets[i].request({ event: 'pusher:signin', data: auth }, (f) => f.event === 'pusher:signin_success');
      }
      const [alice1, alice2, bob] = sockets;
      const res = await sdk.terminateUserConnections('alice');
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {});
      for (const alice of [alice1, alice2]) {
        assert.deepEqual(await alice.closed, { code: 4009, reason: 'You got disconnected by the app.' });
        assert.deepEqual(alice.frames.at(-1), { event: 'pusher:error', data: { code: 4009, message: 'You got disconnected by the app.' } });
      }
      const pong = await bob.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
      assert.deepEqual(pong, { event: 'pusher:pong', data: {} });
    } finally {
      await s.stop();
    }
  });

  test('an unknown user is not an error', async () => {
    const s = await startServer();
    try {
      assert.deepEqual(await api(s, 'POST', '/apps/app-id/users/nobody/terminate_connections', {}), { status: 200, contentType: 'application/json', body: {} });
    } finally {
      await s.stop();
    }
  });
});

describe('apps from a config file', () => {
  test('two apps are isolated: an event to app A never reaches app B subscribers of the same channel name', async () => {
    const A = { id: 'app-a', key: 'key-a', secret: 'secret-a' };
    const B = { id: 'app-b', key: 'key-b', secret: 'secret-b' };
    const dir = mkdtempSync(join(tmpdir(), 'pws-apps-'));
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ apps: [A, B] }));
    const s = await startServer({}, config);
    try {
      const onA = await subscriber(s, 'news', { app: A });
      const onB = await subscriber(s, 'news', { app: B });
      const gotA = collect(onA, 'news', 'ev');
      const gotB = collect(onB, 'news', 'ev');
      await s.sdk(A).trigger('news', 'ev', 'for A');
      await s.sdk(B).trigger('news', 'ev', 'for B');
      await eventually(() => gotA.length >= 1 && gotB.length >= 1);
      assert.deepEqual([gotA, gotB], [['for A'], ['for B']]);
      await subscriber(s, 'only-in-b', { app: B });
      assert.deepEqual((await api(s, 'GET', '/apps/app-a/channels', undefined, {}, A)).body, { channels: { news: {} } });
      assert.deepEqual((await api(s, 'GET', '/apps/app-b/channels', undefined, {}, B)).body, { channels: { news: {}, 'only-in-b': {} } });
      // App B's credentials do not open app A's API, and the default app is not there.
      assert.equal((await api(s, 'GET', '/apps/app-a/channels', undefined, {}, B)).status, 401);
      assert.equal((await api(s, 'GET', '/apps/app-id/channels')).status, 404);
    } finally {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('status codes and JSON error bodies', () => {
  const EVENTS = '/apps/app-id/events';
  const badEvents: [string, string | object, string][] = [
    ['malformed JSON', '{"name": "ev",', 'The request body is not valid JSON'],
    ['a JSON array body', '[]', 'The request body must be a JSON object'],
    ['an empty body', '', 'The request body is not valid JSON'],
    ['a missing name', { data: '', channel: 'a' }, 'event: "name" must be a non-empty string'],
    ['a numeric name', { name: 1, data: '', channel: 'a' }, 'event: "name" must be a non-empty string'],
    ['a name over 200 characters', { name: 'e'.repeat(201), data: '', channel: 'a' }, 'event: event name is longer than 200 characters'],
    ['missing data', { name: 'ev', channel: 'a' }, 'event: "data" must be a string (JSON-encode objects)'],
    ['object data', { name: 'ev', data: { x: 1 }, channel: 'a' }, 'event: "data" must be a string (JSON-encode objects)'],
    ['no channel', { name: 'ev', data: '' }, 'event: "channels" or "channel" is required'],
    ['channels not an array', { name: 'ev', data: '', channels: 'a' }, 'event: "channels" must be an array of channel names'],
    ['an empty channels array', { name: 'ev', data: '', channels: [] }, 'event: no channel given'],
    ['a channel name with a space', { name: 'ev', data: '', channel: 'a b' }, 'event: invalid channel name "a b"'],
    ['a numeric channel', { name: 'ev', data: '', channels: [5] }, 'event: invalid channel name 5'],
    // Echoing it back as JSON would recurse 10,000 levels deep.
    ['a channel nested 10,000 arrays deep', `{"name":"ev","data":"","channels":[${'['.repeat(10_000)}${']'.repeat(10_000)}]}`, 'event: invalid channel name (an array)'],
    ['a channel name over 200 characters', { name: 'ev', data: '', channel: 'c'.repeat(201) }, `event: invalid channel name "${'c'.repeat(201)}"`],
    ['an encrypted channel among others', { name: 'ev', data: '', channels: ['private-encrypted-x', 'a'] }, 'event: an event for an encrypted channel must target that one channel only'],
    ['a malformed socket_id', { name: 'ev', data: '', channel: 'a', socket_id: 'abc' }, 'event: "socket_id" must look like 1234.5678'],
    ['a numeric socket_id', { name: 'ev', data: '', channel: 'a', socket_id: 1.2 }, 'event: "socket_id" must look like 1234.5678'],
    ['an unknown info attribute', { name: 'ev', data: '', channel: 'a', info: 'bogus' }, 'Unknown info attribute "bogus" (valid: user_count, subscription_count)'],
  ];
  for (const [what, body, error] of badEvents) {
    test(`POST events with ${what} answers 400 {"error": "${error.slice(0, 60)}"}`, async () => {
      const s = await startServer();
      try {
        assert.deepEqual(await api(s, 'POST', EVENTS, body), { status: 400, contentType: 'application/json', body: { error } });
      } finally {
        await s.stop();
      }
    });
  }

  test('POST batch_events without a batch array, or with an empty one, answers 400', async () => {
    const s = await startServer();
    try {
      assert.deepEqual((await api(s, 'POST', '/apps/app-id/batch_events', { batch: {} })).body, { error: '"batch" must be an array of events' });
      assert.deepEqual((await api(s, 'POST', '/apps/app-id/batch_events', {})).body, { error: '"batch" must be an array of events' });
      assert.deepEqual(await api(s, 'POST', '/apps/app-id/batch_events', { batch: [] }), { status: 400, contentType: 'application/json', body: { error: '"batch" holds no events' } });
    } finally {
      await s.stop();
    }
  });

  test('event data over EVENT_MAX_SIZE_IN_KB answers 413; exactly the limit is accepted', async () => {
    const s = await startServer({ EVENT_MAX_SIZE_IN_KB: '1' });
    try {
      assert.equal((await api(s, 'POST', EVENTS, { name: 'ev', data: 'x'.repeat(1024), channel: 'a' })).status, 200);
      assert.deepEqual(await api(s, 'POST', EVENTS, { name: 'ev', data: 'x'.repeat(1025), channel: 'a' }), {
        status: 413,
        contentType: 'application/json',
        body: { error: 'event: event data is larger than 1 KB' },
      });
      const batch = await api(s, 'POST', '/apps/app-id/batch_events', { batch: [{ name: 'ev', data: 'é'.repeat(513), channel: 'a' }] });
      assert.deepEqual(batch.body, { error: 'batch[0]: event data is larger than 1 KB' });
      assert.equal(batch.status, 413);
    } finally {
      await s.stop();
    }
  });

  test('a body over HTTP_MAX_REQUEST_SIZE answers 413, whether announced by Content-Length or streamed', async () => {
    const s = await startServer();
    try {
      const limitError = { error: 'Request body is larger than the limit of 102400 bytes' };
      const big = JSON.stringify({ name: 'ev', channel: 'a', data: 'x'.repeat(102400) });
      const sized = await fetch(s.url(signedPath('POST', EVENTS, {}, big)), { method: 'POST', body: big });
      assert.deepEqual([sized.status, sized.headers.get('content-type'), await sized.json()], [413, 'application/json', limitError]);
      const chunks = Buffer.from(big);
      const stream = new ReadableStream({
        start(controller) {
          for (let i = 0; i < chunks.length; i += 16384) controller.enqueue(chunks.subarray(i, i + 16384));
          controller.close();
        },
      });
      const streamed = await fetch(s.url(signedPath('POST', EVENTS, {}, big)), { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
      assert.deepEqual([streamed.status, await streamed.json()], [413, limitError]);
      // The server still answers on the same port afterwards.
      assert.equal((await api(s, 'POST', EVENTS, { name: 'ev', data: '', channel: 'a' })).status, 200);
    } finally {
      await s.stop();
    }
  });

  test('HTTP_MAX_REQUEST_SIZE=1 refuses a 1025-byte body with 413 and accepts 1024 bytes', async () => {
    const s = await startServer({ HTTP_MAX_REQUEST_SIZE: '1' });
    try {
      const fill = (size: number) => {
        const base = { name: 'ev', channel: 'a', data: '' };
        return JSON.stringify({ ...base, data: 'x'.repeat(size - JSON.stringify(base).length) });
      };
      assert.equal(Buffer.byteLength(fill(1024)), 1024);
      assert.equal((await api(s, 'POST', EVENTS, fill(1024))).status, 200);
      assert.deepEqual(await api(s, 'POST', EVENTS, fill(1025)), { status: 413, contentType: 'application/json', body: { error: 'Request body is larger than the limit of 1024 bytes' } });
    } finally {
      await s.stop();
    }
  });

  test('an unknown app id answers 404, for a signed and an unsigned request', async () => {
    const s = await startServer();
    try {
      const other = { id: 'nope', key: 'app-key', secret: 'app-secret' };
      assert.deepEqual(await api(s, 'GET', '/apps/nope/channels', undefined, {}, other), { status: 404, contentType: 'application/json', body: { error: 'Unknown app id "nope"' } });
      const unsigned = await fetch(s.url('/apps/nope/events'), { method: 'POST', body: '{}' });
      assert.deepEqual([unsigned.status, await unsigned.json()], [404, { error: 'Unknown app id "nope"' }]);
    } finally {
      await s.stop();
    }
  });

  test('an unknown route answers 404 with a JSON error', async () => {
    const s = await startServer();
    try {
      for (const [method, path] of [['GET', '/nope'], ['GET', '/apps/app-id/nope'], ['POST', '/apps/app-id/events/extra'], ['GET', '/apps/app-id']]) {
        const res = await fetch(s.url(path), { method });
        assert.deepEqual([res.status, res.headers.get('content-type'), await res.json()], [404, 'application/json', { error: `Not found: ${method} ${path}` }]);
      }
    } finally {
      await s.stop();
    }
  });

  test('the wrong method on a known route answers 405 with a JSON error naming the right one', async () => {
    const s = await startServer();
    try {
      const cases: [string, string, string][] = [
        ['GET', '/apps/app-id/events', 'POST'],
        ['PUT', '/apps/app-id/events', 'POST'],
        ['GET', '/apps/app-id/batch_events', 'POST'],
        ['POST', '/apps/app-id/channels', 'GET'],
        ['DELETE', '/apps/app-id/channels/news', 'GET'],
        ['POST', '/apps/app-id/channels/presence-x/users', 'GET'],
        ['GET', '/apps/app-id/users/alice/terminate_connections', 'POST'],
      ];
      for (const [method, path, allowed] of cases) {
        const res = await fetch(s.url(path), { method });
        assert.deepEqual([res.status, res.headers.get('content-type'), await res.json()], [405, 'application/json', { error: `Method not allowed: use ${allowed}` }], `${method} ${path}`);
      }
    } finally {
      await s.stop();
    }
  });

  test('a malformed percent-escape in the URL answers 400', async () => {
    const s = await startServer();
    try {
      const res = await fetch(s.url('/apps/app-id/channels/%E0'));
      assert.deepEqual([res.status, await res.json()], [400, { error: 'Malformed URL parameter "%E0"' }]);
    } finally {
      await s.stop();
    }
  });
});

describe('channel names that are also JavaScript property names', () => {
  // Compared as JSON text: in an object literal, "__proto__" would set the prototype instead.
  test('"__proto__" channels and presence users are listed like any other', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      const id = await r.socketId();
      await r.request({ event: 'pusher:subscribe', data: { channel: '__proto__' } }, (f) => f.event === 'pusher_internal:subscription_succeeded');
      const list = await s.sdk().get({ path: '/channels' });
      assert.equal(await list.text(), '{"channels":{"__proto__":{}}}');
      const info = await s.sdk().trigger('__proto__', 'ev', 'x', { info: 'subscription_count' });
      assert.equal(await info.text(), '{"channels":{"__proto__":{"subscription_count":1}}}');

      const auth = s.sdk().authorizeChannel(id, 'presence-odd', { user_id: '__proto__', user_info: { n: 1 } });
      const ok = await r.request({ event: 'pusher:subscribe', data: { channel: 'presence-odd', ...auth } }, (f) => f.channel === 'presence-odd');
      assert.equal(ok.data, '{"presence":{"ids":["__proto__"],"hash":{"__proto__":{"n":1}},"count":1}}');
    } finally {
      await s.stop();
    }
  });
});
