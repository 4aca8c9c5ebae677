// Watchlist events on one node, seen by stock pusher-js: a user signing in with
// `user_data.watchlist` gets the current online status of its list (`pusher_internal:watchlist_events`,
// emitted by pusher-js on `pusher.user.watchlist`), then every change; a second tab changes
// nothing, closing the last one sends offline; more than 100 ids get pusher:error 4302; an app
// without the feature sends nothing and keeps no tables.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type PusherJs from 'pusher-js';
import { APP, connected, drained, eventually, type RawSocket, startServer, type TestServer } from '../helpers/server';
import { parseExposition, rawGet, sampleValue } from '../helpers/exposition';
import { missingToolSkip, runPromtoolCheckMetrics } from '../helpers/services';

const ON = { DEFAULT_APP_ENABLE_WATCHLIST_EVENTS: 'true' };

interface WatchlistEvent {
  name: string;
  user_ids: string[];
}

/** A pusher-js client signed in as `user`, with the watchlist events and connection errors it got. */
async function signedIn(s: TestServer, user: { id: string; watchlist?: unknown }): Promise<{ client: PusherJs; events: WatchlistEvent[]; errors: any[] }> {
  const client = s.client({ user });
  const events: WatchlistEvent[] = [];
  const errors: any[] = [];
  client.user.watchlist.bind('online', (e: WatchlistEvent) => events.push(e));
  client.user.watchlist.bind('offline', (e: WatchlistEvent) => events.push(e));
  client.connection.bind('error', (e: unknown) => errors.push(e));
  await connected(client);
  client.signin();
  await eventually(() => client.user.user_data !== null, 5000, `sign-in of ${user.id}`);
  return { client, events, errors };
}

/** Signs a raw socket in as `user` and resolves with the frames it got from signin_success on, once `count` of them are there. */
async function signInRaw(s: TestServer, r: RawSocket, user: { id: string; watchlist?: unknown }, count: number): Promise<string[]> {
  const signed = s.sdk().authenticateUser(await r.socketId(), user as { id: string });
  const from = r.texts.length;
  r.send({ event: 'pusher:signin', data: signed });
  await eventually(() => r.texts.length >= from + count, 5000, `${count} frames after the sign-in of ${user.id}`);
  return r.texts.slice(from);
}

const online = (...ids: string[]): WatchlistEvent => ({ name: 'online', user_ids: ids });
const offline = (...ids: string[]): WatchlistEvent => ({ name: 'offline', user_ids: ids });

describe('watchlist events on one node', () => {
  test('signing in sends the current state of the watchlist, after signin_success, as one frame pusher-js reads', async () => {
    const s = await startServer(ON);
    try {
      await signedIn(s, { id: 'bob' });
      const r = await s.raw();
      const frames = await signInRaw(s, r, { id: 'ann', watchlist: ['bob', 'cat'] }, 2);
      assert.equal(JSON.parse(frames[0]).event, 'pusher:signin_success');
      assert.equal(frames[1], '{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"online","user_ids":["bob"]},{"name":"offline","user_ids":["cat"]}]}}');

      const ann = await signedIn(s, { id: 'ann', watchlist: ['bob', 'cat'] });
      await eventually(() => ann.events.length === 2, 5000, 'the initial state');
      assert.deepEqual(ann.events, [online('bob'), offline('cat')]);
      assert.deepEqual(ann.errors, []);
    } finally {
      await s.stop();
    }
  });

  test('only non-empty groups are sent, and a user without a watchlist gets no watchlist frame', async () => {
    const s = await startServer(ON);
    try {
      const r = await s.raw();
      const frames = await signInRaw(s, r, { id: 'ann', watchlist: ['bob', 'bob', 'cat'] }, 2);
      assert.equal(frames[1], '{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"offline","user_ids":["bob","cat"]}]}}');
      const plain = await s.raw();
      await signInRaw(s, plain, { id: 'dan' }, 1);
      await plain.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
      assert.deepEqual(plain.frames.map((f) => f.event), ['pusher:connection_established', 'pusher:signin_success', 'pusher:pong']);
    } finally {
      await s.stop();
    }
  });

  test('online when a watched user signs in; a second tab changes nothing; offline when its last tab closes', async () => {
    const s = await startServer(ON);
    try {
      const ann = await signedIn(s, { id: 'ann', watchlist: ['bob', 'zed'] });
      await eventually(() => ann.events.length === 1, 5000, 'the initial state');
      assert.deepEqual(ann.events.splice(0), [offline('bob', 'zed')]);

      const bobTab1 = await signedIn(s, { id: 'bob' });
      await eventually(() => ann.events.length === 1, 5000, 'bob online');
      assert.deepEqual(ann.events.splice(0), [online('bob')]);

      // zed's changes mark where bob's would have come: each step's frames go out in order.
      const bobTab2 = await signedIn(s, { id: 'bob' });
      const zed = await signedIn(s, { id: 'zed' });
      await eventually(() => ann.events.length === 1, 5000, 'zed online');
      assert.deepEqual(ann.events.splice(0), [online('zed')], 'a second tab of bob changes nothing');

      bobTab1.client.disconnect();
      await eventually(() => s.server.apps.findById(APP.id)!.users.get('bob')?.size === 1, 5000, 'bob down to one tab');
      zed.client.disconnect();
      await eventually(() => ann.events.length === 1, 5000, 'zed offline');
      assert.deepEqual(ann.events.splice(0), [offline('zed')], 'closing one of two tabs changes nothing');

      bobTab2.client.disconnect();
      await eventually(() => ann.events.length === 1, 5000, 'bob offline');
      assert.deepEqual(ann.events.splice(0), [offline('bob')]);
      await drained(ann.client);
      assert.deepEqual(ann.events, []);
      assert.deepEqual(ann.errors, []);
    } finally {
      await s.stop();
    }
  });

  test('a user watched by several sockets reaches each; a socket that closed or signed in again stops watching', async () => {
    const s = await startServer(ON);
    try {
      const ann = await signedIn(s, { id: 'ann', watchlist: ['bob'] });
      const amy = await signedIn(s, { id: 'amy', watchlist: ['bob'] });
      const r = await s.raw();
      await signInRaw(s, r, { id: 'art', watchlist: ['bob'] }, 2);
      // Signed in again as someone who watches nobody: no more bob for this socket.
      await signInRaw(s, r, { id: 'art' }, 1);
      amy.client.disconnect();
      await eventually(() => ann.events.length === 1, 5000, 'the initial state');
      await signedIn(s, { id: 'bob' });
      await eventually(() => ann.events.length === 2, 5000, 'bob online');
      assert.deepEqual(ann.events, [offline('bob'), online('bob')]);
      await r.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
      assert.equal(r.frames.filter((f) => f.event === 'pusher_internal:watchlist_events').length, 1, 'only the first sign-in\'s initial state');
      const app = s.server.apps.findById(APP.id)!;
      assert.deepEqual([...app.watched!.entries()].map(([id, w]) => [id, w.watchers]), [['bob', 1]]);
      assert.equal(app.watchlists!.size, 1);
    } finally {
      await s.stop();
    }
  });

  test('more than 100 ids: the first 100 are watched, sign-in succeeds, and pusher:error 4302 says so', async () => {
    const s = await startServer(ON);
    try {
      const ids = Array.from({ length: 105 }, (_, i) => `u${i}`);
      const ann = await signedIn(s, { id: 'ann', watchlist: ids });
      await eventually(() => ann.events.length === 1 && ann.errors.length === 1, 5000, 'the initial state and the error');
      assert.deepEqual(ann.client.user.user_data, { id: 'ann', watchlist: ids });
      assert.deepEqual(ann.events.splice(0), [offline(...ids.slice(0, 100))]);
      assert.deepEqual(ann.errors, [{ type: 'PusherError', data: { code: 4302, message: 'Watchlist has 105 user ids: only the first 100 are watched' } }]);
      assert.equal(ann.client.connection.state, 'connected');

      await signedIn(s, { id: 'u100' });
      await signedIn(s, { id: 'u99' });
      await eventually(() => ann.events.length === 1, 5000, 'u99 online');
      await drained(ann.client);
      assert.deepEqual(ann.events, [online('u99')], 'u100, the 101st, is not watched');
    } finally {
      await s.stop();
    }
  });

  test('a watchlist that is not an array of user ids is told with a pusher:error; sign-in still succeeds', async () => {
    const s = await startServer(ON);
    try {
      const r = await s.raw();
      const frames = await signInRaw(s, r, { id: 'ann', watchlist: 'bob' }, 2);
      assert.deepEqual(frames.map((f) => JSON.parse(f)), [
        { event: 'pusher:signin_success', data: { user_data: '{"id":"ann","watchlist":"bob"}' } },
        { event: 'pusher:error', data: { code: null, message: 'user_data.watchlist must be an array of user ids: nothing is watched' } },
      ]);
      const mixed = await s.raw();
      const more = await signInRaw(s, mixed, { id: 'amy', watchlist: ['bob', 7, ''] }, 3);
      assert.deepEqual(more.slice(1).map((f) => JSON.parse(f)), [
        { event: 'pusher:error', data: { code: null, message: 'user_data.watchlist: 2 entries are not user ids (non-empty strings) and are not watched' } },
        { event: 'pusher_internal:watchlist_events', data: { events: [{ name: 'offline', user_ids: ['bob'] }] } },
      ]);
    } finally {
      await s.stop();
    }
  });

  test('an app without the feature sends no watchlist frame, keeps no tables and registers no metric', async () => {
    const s = await startServer({ METRICS_ENABLED: 'true' });
    try {
      await signedIn(s, { id: 'bob' });
      const r = await s.raw();
      await signInRaw(s, r, { id: 'ann', watchlist: ['bob'] }, 1);
      await r.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
      assert.deepEqual(r.frames.map((f) => f.event), ['pusher:connection_established', 'pusher:signin_success', 'pusher:pong']);
      const app = s.server.apps.findById(APP.id)!;
      assert.equal(app.watchlists, null);
      assert.equal(app.watched, null);
      const metrics = parseExposition((await rawGet(s.url('/metrics'))).body);
      assert.equal(metrics.families.has('pws_watchlist_events_total'), false);
    } finally {
      await s.stop();
    }
  });

  test('pws_watchlist_events_total counts the frames sent: initial states, and each change once whoever watches it; promtool finds nothing new', { skip: missingToolSkip('promtool', 'prometheus') }, async () => {
    const s = await startServer({ ...ON, METRICS_ENABLED: 'true' });
    try {
      const ann = await signedIn(s, { id: 'ann', watchlist: ['bob'] });
      const amy = await signedIn(s, { id: 'amy', watchlist: ['bob'] });
      const bob = await signedIn(s, { id: 'bob' });
      await eventually(() => ann.events.length === 2 && amy.events.length === 2, 5000, 'bob online for both');
      bob.client.disconnect();
      await eventually(() => ann.events.length === 3 && amy.events.length === 3, 5000, 'bob offline for both');
      const metrics = parseExposition((await rawGet(s.url('/metrics'))).body);
      // Two initial states; ann's and amy's online (nobody watches them) and bob's online and
      // offline, each published once to all its watchers.
      assert.equal(sampleValue(metrics, 'pws_watchlist_events_total', { app_id: APP.id }), 6);
      const result = await runPromtoolCheckMetrics((await rawGet(s.url('/metrics'))).body.toString('utf8'));
      // Leaving out the seed's historical names, kept on purpose (docs/metrics.md).
      assert.deepEqual(result.stderr.split('\n').filter((l) => l !== '' && !/^pws_(0_|nodejs_active_)/.test(l)), []);
    } finally {
      await s.stop();
    }
  });
});
