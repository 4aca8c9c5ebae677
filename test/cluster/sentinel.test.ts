// Two pws-server nodes that find their Redis through a Sentinel (DB_REDIS_SENTINELS) behave as
// one server: an event triggered on one node reaches subscribers on the other, and presence is
// shared.
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type PusherJs from 'pusher-js';
import { connected, drained, eventually, nextEvent, startServer, subscribed, type TestServer } from '../helpers/server';
import { redisSkip, startRedisSentinel, type RedisSentinelInstance } from '../helpers/redis';

const skip = redisSkip();

/** Collects every event named `event` on `channel` for a pusher-js client. */
function collect(client: PusherJs, channel: string, event: string): unknown[] {
  const seen: unknown[] = [];
  client.channel(channel).bind(event, (data: unknown) => seen.push(data));
  return seen;
}

/** The value of an unlabelled counter on a node's /metrics. */
async function counter(s: TestServer, name: string): Promise<number> {
  const text = await (await fetch(s.url('/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

describe('a cluster on Redis found through Sentinel', { skip }, () => {
  let sentinel: RedisSentinelInstance;
  before(async () => {
    sentinel = await startRedisSentinel();
  });
  after(async () => {
    await sentinel?.stop();
  });

  /** Two in-process nodes on the master the sentinel names (a heartbeat every 250 ms). */
  async function nodes(extra: Record<string, string> = {}): Promise<TestServer[]> {
    const env = {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: '1000',
      DB_REDIS_SENTINELS: sentinel.sentinels,
      DB_REDIS_SENTINEL_NAME: sentinel.name,
      DB_REDIS_KEY_PREFIX: `s${Math.random().toString(36).slice(2, 8)}`,
      ...extra,
    };
    const a = await startServer(env);
    try {
      return [a, await startServer(env)];
    } catch (err) {
      await a.stop();
      throw err;
    }
  }

  test('an event triggered on one node reaches subscribers on both, except the excluded socket', async () => {
    const [a, b] = await nodes();
    try {
      const onA = a.client();
      const onB = b.client();
      const alsoB = b.client();
      await Promise.all([subscribed(onA, 'orders'), subscribed(onB, 'orders'), subscribed(alsoB, 'orders')]);
      const seenA = collect(onA, 'orders', 'created');
      const seenB = collect(onB, 'orders', 'created');
      const seenAlsoB = collect(alsoB, 'orders', 'created');
      const sdk = a.sdk();
      for (let i = 0; i < 10; i++) await sdk.trigger('orders', 'created', { i });
      await sdk.trigger('orders', 'created', { i: 10 }, { socket_id: await connected(alsoB) });
      await eventually(() => seenA.length === 11 && seenB.length === 11 && seenAlsoB.length === 10, 5000, 'deliveries');
      const order = Array.from({ length: 11 }, (_, i) => ({ i }));
      assert.deepEqual(seenA, order);
      assert.deepEqual(seenB, order);
      assert.deepEqual(seenAlsoB, order.slice(0, 10));
      await Promise.all([drained(onA), drained(onB), drained(alsoB)]);
      assert.equal(seenB.length, 11, 'no duplicate from the echo');
      // The state and the pub/sub went to the master the sentinel named.
      const keys = await sentinel.master.cli('--scan', '--pattern', `${a.options.redisKeyPrefix}:*`);
      assert.match(keys, /:subs\n/);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test('presence across nodes: one member per user, member_added and member_removed once, /users on either node', async () => {
    const [a, b] = await nodes();
    try {
      const watcher = a.client({ presence: { user_id: 'watcher' } });
      await subscribed(watcher, 'presence-room');
      const added = collect(watcher, 'presence-room', 'pusher:member_added');
      const removed = collect(watcher, 'presence-room', 'pusher:member_removed');

      const aliceB = b.client({ presence: { user_id: 'alice', user_info: { name: 'Alice' } } });
      const joined = await subscribed(aliceB, 'presence-room');
      assert.deepEqual(joined.members, { watcher: null, alice: { name: 'Alice' } }, 'subscription_succeeded carries members of both nodes');
      await eventually(() => added.length === 1, 5000, 'member_added');
      assert.deepEqual(added, [{ id: 'alice', info: { name: 'Alice' } }]);

      // Alice's second tab, on the other node: no new member.
      const aliceA = a.client({ presence: { user_id: 'alice', user_info: { name: 'Alice' } } });
      await subscribed(aliceA, 'presence-room');
      for (const s of [a, b]) {
        const users = await s.sdk().get({ path: '/channels/presence-room/users' });
        assert.deepEqual(((await users.json()) as { users: { id: string }[] }).users.map((u) => u.id).sort(), ['alice', 'watcher']);
        const info = await s.sdk().get({ path: '/channels/presence-room', params: { info: 'user_count,subscription_count' } });
        assert.deepEqual(await info.json(), { occupied: true, user_count: 2, subscription_count: 3 });
      }

      aliceB.disconnect();
      await eventually(
        async () => ((await (await a.sdk().get({ path: '/channels/presence-room', params: { info: 'subscription_count' } })).json()) as { subscription_count: number }).subscription_count === 2,
        5000,
        'one tab gone',
      );
      await drained(watcher);
      assert.deepEqual(removed, [], 'alice still has a tab open');
      aliceA.disconnect();
      await eventually(() => removed.length === 1, 5000, 'member_removed');
      assert.deepEqual(removed, [{ id: 'alice', info: { name: 'Alice' } }]);
      assert.equal(added.length, 1);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  // The Sentinel client announces 'ready' again only after a failover: a master back at the same
  // address must still count as a reconnection (resubscribe, heartbeat, redis_reconnects_total).
  test('a restart of the master mid-traffic: nodes reconnect, deliver again, their presence members join again, and the reconnection counts', async () => {
    const [a, b] = await nodes({ METRICS_ENABLED: 'true' });
    try {
      const onA = a.client({ presence: { user_id: 'ann' } });
      const onB = b.client({ presence: { user_id: 'bob' } });
      await subscribed(onA, 'presence-live');
      await subscribed(onB, 'presence-live');
      await sentinel.master.restart();
      await eventually(async () => {
        const got = nextEvent(onB, 'presence-live', 'tick').then(() => true);
        await a.sdk().trigger('presence-live', 'tick', {});
        return Promise.race([got, new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
      }, 15000, 'delivery across nodes after the restart');
      await eventually(async () => {
        const res = await b.sdk().get({ path: '/channels/presence-live/users' }).catch(() => null);
        if (res === null) return false;
        const users = (await res.json()) as { users: { id: string }[] };
        return users.users.map((u) => u.id).sort().join() === 'ann,bob';
      }, 15000, 'members back');
      for (const s of [a, b]) await eventually(async () => (await counter(s, 'pws_redis_reconnects_total')) >= 1, 15000, 'the reconnection counted');
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  // Without a master, node-redis's Sentinel client retries each command for about 16 s; the link
  // bounds it like the other connections, so a subscribe and a REST read answer.
  test('with the master down, local clients are served, subscribes succeed and REST reads answer 503 with a JSON error', async () => {
    const [a, b] = await nodes();
    try {
      const one = a.client();
      const two = a.client();
      await Promise.all([subscribed(one, 'c'), subscribed(two, 'c')]);
      await sentinel.master.kill();
      const got = nextEvent(two, 'c', 'e');
      await a.sdk().trigger('c', 'e', { ok: 1 });
      assert.deepEqual(await got, { ok: 1 });
      await subscribed(a.client(), 'c2');
      const signed = await a.sdk().get({ path: '/channels' }).catch((err: { status?: number; body?: string }) => err);
      assert.equal((signed as { status: number }).status, 503);
      assert.match(JSON.parse((signed as { body: string }).body).error, /shared state cannot be read/);

      // Back (empty, same address): delivery across nodes and the listing return.
      await sentinel.master.restart();
      const onB = b.client();
      await subscribed(onB, 'c');
      await eventually(async () => {
        const seen = nextEvent(onB, 'c', 'e').then(() => true);
        await a.sdk().trigger('c', 'e', {});
        return Promise.race([seen, new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
      }, 15000, 'delivery across nodes once the master is back');
      await eventually(async () => {
        const res = await b.sdk().get({ path: '/channels' }).catch(() => null);
        return res !== null && JSON.stringify(await res.json()) === JSON.stringify({ channels: { c: {}, c2: {} } });
      }, 15000, 'channels back');
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe('a cluster on Redis found through Sentinel, through a failover', { skip }, () => {
  let sentinel: RedisSentinelInstance;
  before(async () => {
    sentinel = await startRedisSentinel({ replicas: 1 });
  });
  after(async () => {
    await sentinel?.stop();
  });

  test('nodes follow the promoted replica: delivery across nodes, presence entries and the reconnection', async () => {
    const env = {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: '1000',
      DB_REDIS_SENTINELS: sentinel.sentinels,
      DB_REDIS_SENTINEL_NAME: sentinel.name,
      DB_REDIS_KEY_PREFIX: `f${Math.random().toString(36).slice(2, 8)}`,
      METRICS_ENABLED: 'true',
    };
    const a = await startServer(env);
    const b = await startServer(env).catch(async (err) => {
      await a.stop();
      throw err;
    });
    try {
      const onA = a.client({ presence: { user_id: 'ann' } });
      const onB = b.client({ presence: { user_id: 'bob' } });
      await subscribed(onA, 'presence-live');
      await subscribed(onB, 'presence-live');
      const promoted = await sentinel.failover();
      assert.equal(promoted, sentinel.replicas[0].port);
      await eventually(async () => {
        const got = nextEvent(onB, 'presence-live', 'tick').then(() => true);
        await a.sdk().trigger('presence-live', 'tick', {}).catch(() => undefined);
        return Promise.race([got, new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
      }, 30000, 'delivery across nodes after the failover');
      await eventually(async () => {
        const res = await b.sdk().get({ path: '/channels/presence-live/users' }).catch(() => null);
        if (res === null) return false;
        const users = (await res.json()) as { users: { id: string }[] };
        return users.users.map((u) => u.id).sort().join() === 'ann,bob';
      }, 30000, 'members on the new master');
      for (const s of [a, b]) await eventually(async () => (await counter(s, 'pws_redis_reconnects_total')) >= 1, 30000, 'the reconnection counted');
      // Once both nodes follow the new master, a member who joins is written there.
      await subscribed(a.client({ presence: { user_id: 'cat' } }), 'presence-live');
      assert.match(await sentinel.cli(promoted, 'HGETALL', `${env.DB_REDIS_KEY_PREFIX}:{app-id}:members:presence-live`), /^cat$/m);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

