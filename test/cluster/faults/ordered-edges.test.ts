// Edges decided on two nodes reach clients in the order Redis decided them: a reload from one
// node onto another, a subscriber's member list (or a watcher's initial state) against an edge
// decided meanwhile, live subscription counts sent by two nodes, and the presence member cap
// against a user's second socket. Each race is made deterministic by holding back the replies
// Redis sends to one node (test/helpers/reply-hold.ts) while the other node goes on.
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import PusherJs from 'pusher-js';
import { APP, drained, eventually, nextEvent, startServer, subscribed, type TestServer } from '../../helpers/server';
import { redisSkip, startRedis, type RedisInstance } from '../../helpers/redis';
import { parseExposition, rawGet, sampleValue } from '../../helpers/exposition';
import { replyHold, type ReplyHold } from '../../helpers/reply-hold';
import { spawnNode } from '../../helpers/nodes';
import { THROTTLE_ABOVE, THROTTLE_MS } from '../../../src/channels/subscription-counts';
import * as scripts from '../../../src/cluster/scripts';

const skip = redisSkip();

describe('ordered edges in a cluster on one Redis', { skip }, () => {
  let redis: RedisInstance;
  let proxy: ReplyHold;
  const servers: TestServer[] = [];
  before(async () => {
    redis = await startRedis();
    // A node runs a script by its hash first and sends its source on NOSCRIPT: with its replies
    // held, that second step would wait too. Redis knows every script from the start here.
    for (const script of Object.values(scripts)) if (typeof script === 'object' && 'source' in script) await redis.cli('SCRIPT', 'LOAD', script.source);
  });
  after(async () => {
    await redis?.stop();
  });

  /** Node `held` reaches Redis through a proxy that can hold its replies; `direct` does not. */
  async function twoNodes(extra: Record<string, string> = {}): Promise<{ held: TestServer; direct: TestServer; prefix: string }> {
    proxy = await replyHold(redis.port);
    const prefix = `o${Math.random().toString(36).slice(2, 8)}`;
    const env = { ADAPTER_DRIVER: 'redis', ADAPTER_NODE_TIMEOUT: '10000', DB_REDIS_KEY_PREFIX: prefix, METRICS_ENABLED: 'true', ...extra };
    const held = await startServer({ ...env, REDIS_URL: proxy.url });
    const direct = await startServer({ ...env, REDIS_URL: redis.url });
    servers.push(held, direct);
    return { held, direct, prefix };
  }

  async function stopAll(): Promise<void> {
    proxy?.release();
    for (const s of servers.splice(0)) await s.stop();
    await proxy?.close();
  }

  async function hexists(key: string, field: string): Promise<boolean> {
    return (await redis.cli('HEXISTS', key, field)).trim() === '1';
  }

  async function published(s: TestServer): Promise<number> {
    return sampleValue(parseExposition((await rawGet(s.url('/metrics'))).body), 'pws_cluster_messages_published_total', { app_id: APP.id }) ?? 0;
  }

  /**
   * Releases the held node's replies and waits until it has acted on them (published `frames`
   * more frames) and `observer` has received everything it published up to then: a marker event
   * the held node publishes afterwards, on the same connection, arrives after all of it.
   */
  async function releaseAndSettle(held: TestServer, frames: number, observer: PusherJs, channel: string): Promise<void> {
    const before = await published(held);
    proxy.release();
    await eventually(async () => (await published(held)) >= before + frames, 10000, 'the held node acting on its replies');
    const marker = nextEvent(observer, channel, 'marker');
    await held.sdk().trigger(channel, 'marker', {});
    await marker;
  }

  test('a reload onto another node: the old node\'s late member_removed does not undo the new node\'s member_added', async () => {
    const { held: a, direct: b, prefix } = await twoNodes();
    try {
      const watcher = b.client({ presence: { user_id: 'watcher' } });
      await subscribed(watcher, 'presence-room');
      const members = watcher.channel('presence-room') as unknown as { members: { get(id: string): unknown; count: number } };
      const added: { id: string }[] = [];
      watcher.channel('presence-room').bind('pusher:member_added', (m: { id: string }) => added.push(m));
      const onA = a.client({ presence: { user_id: 'u' } });
      await subscribed(onA, 'presence-room');
      await eventually(() => added.length === 1, 10000, 'u a member for the watcher');

      // u reloads: its socket on a closes, and a learns the result of its leave only later.
      proxy.hold();
      onA.disconnect();
      await eventually(async () => !(await hexists(`${prefix}:{${APP.id}}:members:presence-room`, 'u')), 10000, 'the leave ran in Redis');
      const onB = b.client({ presence: { user_id: 'u' } });
      await subscribed(onB, 'presence-room');
      await eventually(() => added.length === 2, 10000, 'member_added from b');

      await releaseAndSettle(a, 1, watcher, 'presence-room');
      assert.notEqual(members.members.get('u'), null, 'u is still a member for the watcher');
      assert.equal(members.members.count, 2);
      const users = (await (await b.sdk().get({ path: '/channels/presence-room/users' })).json()) as { users: { id: string }[] };
      assert.deepEqual(users.users.map((u) => u.id).sort(), ['u', 'watcher']);
    } finally {
      await stopAll();
    }
  });

  test('a joiner\'s member list and an edge decided after it: the edge wins, whether a join or a leave', async () => {
    const { held: b, direct: a, prefix } = await twoNodes();
    const membersKey = `${prefix}:{${APP.id}}:members:presence-room`;
    try {
      // t keeps node b subscribed to the channel, and shows when b has delivered an edge.
      const t = b.client({ presence: { user_id: 't' } });
      await subscribed(t, 'presence-room');
      const leaver = a.client({ presence: { user_id: 'leaver' } });
      await subscribed(leaver, 'presence-room');
      const tMembers = (t.channel('presence-room') as unknown as { members: { get(id: string): unknown } }).members;
      await eventually(() => tMembers.get('leaver') !== null, 10000, 'leaver known to t');

      // s joins on b; before b learns its member list, joiner joins and leaver leaves on a.
      proxy.hold();
      const s = b.client({ presence: { user_id: 's' } });
      const confirmed = subscribed(s, 'presence-room');
      await eventually(() => hexists(membersKey, 's'), 10000, 's joined in Redis');
      const joiner = a.client({ presence: { user_id: 'joiner' } });
      await subscribed(joiner, 'presence-room');
      leaver.disconnect();
      await eventually(() => tMembers.get('joiner') !== null && tMembers.get('leaver') === null, 10000, 'b delivered both edges');
      proxy.release();
      await confirmed;
      await drained(s);
      const sMembers = (s.channel('presence-room') as unknown as { members: { get(id: string): unknown; count: number } }).members;
      assert.notEqual(sMembers.get('joiner'), null, 'joiner, who joined after s\'s list was read, is a member for s');
      assert.equal(sMembers.get('leaver'), null, 'leaver, who left after s\'s list was read, is no member for s');
      assert.equal(sMembers.count, 3);
    } finally {
      await stopAll();
    }
  });

  test('a watcher\'s initial state and a sign-in decided after it: the sign-in wins', async () => {
    const { held: b, direct: a } = await twoNodes({ DEFAULT_APP_ENABLE_WATCHLIST_EVENTS: 'true' });
    try {
      const hmgets = async () => Number(/cmdstat_hmget:calls=(\d+)/.exec(await redis.cli('INFO', 'commandstats'))?.[1] ?? 0);
      const before = await hmgets();
      proxy.hold();
      const w = b.client({ user: { id: 'w', watchlist: ['u'] } });
      const events: { name: string; user_ids: string[] }[] = [];
      w.user.watchlist.bind('online', (e: { name: string; user_ids: string[] }) => events.push(e));
      w.user.watchlist.bind('offline', (e: { name: string; user_ids: string[] }) => events.push(e));
      w.signin();
      // The watcher's state was read in Redis (u offline); u signs in on a before b learns it.
      await eventually(async () => (await hmgets()) > before, 10000, 'the initial state read in Redis');
      const u = a.client({ user: { id: 'u' } });
      u.signin();
      await eventually(() => events.length === 1, 10000, 'u online, delivered by b');
      proxy.release();
      await eventually(() => events.length >= 2, 10000, 'the initial state');
      await drained(w);
      assert.deepEqual(events.at(-1), { name: 'online', user_ids: ['u'] }, `u ends online: ${JSON.stringify(events)}`);
    } finally {
      await stopAll();
    }
  });

  test('a user signing out on one node and in on another: the old node\'s late offline does not undo the new node\'s online', async () => {
    const { held: a, direct: b, prefix } = await twoNodes({ DEFAULT_APP_ENABLE_WATCHLIST_EVENTS: 'true' });
    try {
      const w = b.client({ user: { id: 'w', watchlist: ['u'] } });
      const events: { name: string; user_ids: string[] }[] = [];
      w.user.watchlist.bind('online', (e: { name: string; user_ids: string[] }) => events.push(e));
      w.user.watchlist.bind('offline', (e: { name: string; user_ids: string[] }) => events.push(e));
      w.signin();
      await subscribed(w, 'marks');
      await eventually(() => events.length === 1, 10000, 'the initial state');
      const onA = a.client({ user: { id: 'u' } });
      onA.signin();
      await eventually(() => events.length === 2, 10000, 'u online');

      proxy.hold();
      onA.disconnect();
      await eventually(async () => (await redis.cli('HGET', `${prefix}:{${APP.id}}:online`, 'u')).trim() === '', 10000, 'the sign-out ran in Redis');
      b.client({ user: { id: 'u' } }).signin();
      await eventually(() => events.length === 3, 10000, 'u online again, from b');
      await releaseAndSettle(a, 1, w, 'marks');
      assert.deepEqual(events.at(-1), { name: 'online', user_ids: ['u'] }, `u ends online: ${JSON.stringify(events)}`);
    } finally {
      await stopAll();
    }
  });

  test('live counts sent by two nodes: subscribers end on the last count Redis decided', async () => {
    const { held: a, direct: b, prefix } = await twoNodes({ DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT: 'true' });
    try {
      const observer = b.client();
      await subscribed(observer, 'c');
      const x = a.client();
      await subscribed(x, 'c');
      const channel = observer.channel('c') as unknown as { subscriptionCount: number | null };
      await eventually(() => channel.subscriptionCount === 2, 10000, 'count 2');

      // x leaves on a (count 1), then y joins on b (count 2), and a sends its count last.
      proxy.hold();
      x.disconnect();
      await eventually(async () => (await redis.cli('HGET', `${prefix}:{${APP.id}}:subs`, 'c')).trim() === '1', 10000, 'the leave ran in Redis');
      await subscribed(b.client(), 'c');
      await eventually(() => channel.subscriptionCount === 2, 10000, 'count 2 from b');
      await releaseAndSettle(a, 1, observer, 'c');
      assert.equal(channel.subscriptionCount, 2);
    } finally {
      await stopAll();
    }
  });

  test('a reap sends the new count of the channels the dead node had subscribers of', async () => {
    const env = { ADAPTER_DRIVER: 'redis', ADAPTER_NODE_TIMEOUT: '1000', REDIS_URL: redis.url, DB_REDIS_KEY_PREFIX: `k${Math.random().toString(36).slice(2, 8)}`, DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT: 'true' };
    const survivor = await startServer(env);
    servers.push(survivor);
    const doomed = await spawnNode(env);
    try {
      const observer = survivor.client();
      await subscribed(observer, 'c');
      const channel = observer.channel('c') as unknown as { subscriptionCount: number | null };
      const onDoomed = new PusherJs(APP.key, { cluster: 'local', wsHost: '127.0.0.1', wsPort: doomed.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true });
      await subscribed(onDoomed, 'c');
      await eventually(() => channel.subscriptionCount === 2, 10000, 'count 2');
      await doomed.kill();
      onDoomed.disconnect();
      await eventually(() => channel.subscriptionCount === 1, 15000, 'count 1 once the dead node is reaped');
    } finally {
      await stopAll();
      await doomed.stop().catch(() => undefined);
    }
  });

  test(`a large channel's throttle state is dropped when its window ends, also when later changes happen on other nodes`, async () => {
    const { held: a, direct: b } = await twoNodes({ DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT: 'true' });
    try {
      const many = await Promise.all(Array.from({ length: THROTTLE_ABOVE }, () => b.raw()));
      for (const r of many) r.send({ event: 'pusher:subscribe', data: { channel: 'big' } });
      await eventually(async () => ((await (await a.sdk().get({ path: '/channels/big', params: { info: 'subscription_count' } })).json()) as { subscription_count?: number }).subscription_count === THROTTLE_ABOVE, 20000, 'the subscribers on b');
      // a's one subscriber makes a send a count above the threshold: a throttles the channel.
      await subscribed(a.client(), 'big');
      for (const r of many) r.close();
      const counts = (a.server as unknown as Record<string, unknown>).counts as object;
      const tables = Object.values(counts).filter((v): v is Map<unknown, Map<string, unknown>> => v instanceof Map);
      const tracked = () => tables.some((byApp) => [...byApp.values()].some((channels) => channels.has('big')));
      assert.ok(tracked(), 'a throttles the channel');
      await eventually(() => !tracked(), THROTTLE_MS * 4, 'the throttle state dropped');
    } finally {
      await stopAll();
    }
  });

  test('the presence member cap holds against two sockets of one user joining on one node at once', async () => {
    const { held: b, direct: a, prefix } = await twoNodes({ PRESENCE_MAX_MEMBERS: '2' });
    try {
      await subscribed(a.client({ presence: { user_id: 'u1' } }), 'presence-capped');
      await subscribed(a.client({ presence: { user_id: 'u2' } }), 'presence-capped');
      const sockets = [await b.raw(), await b.raw()];
      const ids = await Promise.all(sockets.map((r) => r.socketId()));
      proxy.hold();
      for (let i = 0; i < sockets.length; i++) {
        const { auth, channel_data } = b.sdk().authorizeChannel(ids[i], 'presence-capped', { user_id: 'u3' });
        sockets[i].send({ event: 'pusher:subscribe', data: { channel: 'presence-capped', auth, channel_data } });
      }
      // Both joins ran in Redis before b learns either answer.
      await eventually(async () => (await redis.cli('HGET', `${prefix}:{${APP.id}}:subs`, 'presence-capped')).trim() === '4', 10000, 'both joins ran');
      proxy.release();
      const frames = await Promise.all(sockets.map((r) => r.next((f) => f.channel === 'presence-capped', 0, 20000)));
      assert.deepEqual(frames.map((f) => f.event), ['pusher:subscription_error', 'pusher:subscription_error']);
      const users = (await (await a.sdk().get({ path: '/channels/presence-capped/users' })).json()) as { users: { id: string }[] };
      assert.deepEqual(users.users.map((u) => u.id).sort(), ['u1', 'u2']);
    } finally {
      await stopAll();
    }
  });
});
