// Several pws-server nodes on one real Redis behave as one server: delivery across nodes with
// order and exclusion, presence and channel state, the connection quota, a Redis restart, a
// node killed with SIGKILL and reaped, and the same checks on a three-master Redis Cluster.
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type PusherJs from 'pusher-js';
import { connected, drained, eventually, nextEvent, startServer, subscribed, type TestServer } from '../helpers/server';
import { redisSkip, startRedis, startRedisCluster, type RedisClusterInstance, type RedisInstance } from '../helpers/redis';
import { presenceClient, spawnNode } from '../helpers/nodes';
import { parseExposition, rawGet, sampleValue } from '../helpers/exposition';
import { missingToolSkip, runPromtoolCheckMetrics } from '../helpers/services';

const skip = redisSkip();

/**
 * Two or more in-process nodes on one Redis, a heartbeat every second. Not shorter: nodes of one
 * process stall together, and a stall past the node timeout on a loaded machine makes them reap
 * each other (which only the reaping test wants).
 */
async function nodes(count: number, redisEnv: Record<string, string>, extra: Record<string, string> = {}): Promise<TestServer[]> {
  const out: TestServer[] = [];
  for (let i = 0; i < count; i++) out.push(await startServer({ ADAPTER_DRIVER: 'redis', ADAPTER_NODE_TIMEOUT: '4000', ...redisEnv, ...extra }));
  return out;
}

async function stopAll(servers: TestServer[]): Promise<void> {
  for (const s of servers) await s.stop();
}

/** Collects every event named `event` on `channel` for a pusher-js client. */
function collect(client: PusherJs, channel: string, event: string): unknown[] {
  const seen: unknown[] = [];
  client.channel(channel).bind(event, (data: unknown) => seen.push(data));
  return seen;
}

/** A pusher-js client on a node running in another process, authorized by `signer`'s SDK. */
function clientOn(port: number, signer: TestServer, userId: string): PusherJs {
  return presenceClient(port, signer.sdk(), userId);
}

/** The delivery and presence checks, run against one Redis and against a Redis Cluster. */
function sharedBehaviour(redisEnv: () => Record<string, string>): void {
  test('an event triggered on one node reaches subscribers on every node, in order, except the excluded socket', async () => {
    const [a, b] = await nodes(2, redisEnv());
    try {
      const onA = a.client();
      const onB = b.client();
      const alsoB = b.client();
      await Promise.all([subscribed(onA, 'orders'), subscribed(onB, 'orders'), subscribed(alsoB, 'orders')]);
      const seenA = collect(onA, 'orders', 'created');
      const seenB = collect(onB, 'orders', 'created');
      const seenAlsoB = collect(alsoB, 'orders', 'created');
      const sdk = a.sdk();
      for (let i = 0; i < 30; i++) await sdk.trigger('orders', 'created', { i });
      // Excluding a socket connected to the other node.
      await sdk.trigger('orders', 'created', { i: 30 }, { socket_id: await connected(alsoB) });
      await eventually(() => seenA.length === 31 && seenB.length === 31 && seenAlsoB.length === 30, 5000, 'deliveries');
      const order = Array.from({ length: 31 }, (_, i) => ({ i }));
      assert.deepEqual(seenA, order);
      assert.deepEqual(seenB, order);
      assert.deepEqual(seenAlsoB, order.slice(0, 30));
      await Promise.all([drained(onA), drained(onB), drained(alsoB)]);
      assert.equal(seenB.length, 31, 'no duplicate from the echo');
    } finally {
      await stopAll([a, b]);
    }
  });

  test('client events cross nodes and are not echoed to the sender', async () => {
    const [a, b] = await nodes(2, redisEnv(), { DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true' });
    try {
      const sender = a.client();
      const receiver = b.client();
      await Promise.all([subscribed(sender, 'private-chat'), subscribed(receiver, 'private-chat')]);
      const echoed = collect(sender, 'private-chat', 'client-typing');
      const got = nextEvent(receiver, 'private-chat', 'client-typing');
      sender.channel('private-chat').trigger('client-typing', { who: 'a' });
      assert.deepEqual(await got, { who: 'a' });
      await drained(sender);
      assert.deepEqual(echoed, []);
    } finally {
      await stopAll([a, b]);
    }
  });

  test('presence across nodes: one member per user, member_added and member_removed once, /users on any node', async () => {
    const [a, b] = await nodes(2, redisEnv());
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
      await eventually(async () => ((await (await a.sdk().get({ path: '/channels/presence-room', params: { info: 'subscription_count' } })).json()) as { subscription_count: number }).subscription_count === 2, 5000, 'one tab gone');
      await drained(watcher);
      assert.deepEqual(removed, [], 'alice still has a tab open');
      aliceA.disconnect();
      await eventually(() => removed.length === 1, 5000, 'member_removed');
      assert.deepEqual(removed, [{ id: 'alice', info: { name: 'Alice' } }]);
      assert.deepEqual(added.length, 1);
    } finally {
      await stopAll([a, b]);
    }
  });

  test('sendToUser and terminate_connections reach the user on another node', async () => {
    const [a, b] = await nodes(2, redisEnv());
    try {
      const user = b.client({ user: { id: 'carol' } });
      await connected(user);
      const signedIn = new Promise<void>((resolve) => user.bind('pusher:signin_success', () => resolve()));
      user.signin();
      await signedIn;
      const got = new Promise<unknown>((resolve) => user.user.bind('note', resolve));
      await a.sdk().sendToUser('carol', 'note', { hi: 1 });
      assert.deepEqual(await got, { hi: 1 });
      const closed = new Promise<number>((resolve) => user.connection.bind('error', (e: { data?: { code: number } }) => e.data && resolve(e.data.code)));
      await a.sdk().terminateUserConnections('carol');
      assert.equal(await closed, 4009);
    } finally {
      await stopAll([a, b]);
    }
  });

  test('channel listing and occupancy count subscribers on every node', async () => {
    const [a, b] = await nodes(2, redisEnv());
    try {
      await Promise.all([subscribed(a.client(), 'news'), subscribed(b.client(), 'news'), subscribed(b.client(), 'sports')]);
      for (const s of [a, b]) {
        const list = await s.sdk().get({ path: '/channels' });
        assert.deepEqual(await list.json(), { channels: { news: {}, sports: {} } });
        const one = await s.sdk().get({ path: '/channels/news', params: { info: 'subscription_count' } });
        assert.deepEqual(await one.json(), { occupied: true, subscription_count: 2 });
        const triggered = await s.sdk().trigger('news', 'e', {}, { info: 'subscription_count' });
        assert.deepEqual(await triggered.json(), { channels: { news: { subscription_count: 2 } } });
      }
    } finally {
      await stopAll([a, b]);
    }
  });
}

describe('a cluster on one Redis', { skip }, () => {
  let redis: RedisInstance;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });
  const env = () => ({ REDIS_URL: redis.url, DB_REDIS_KEY_PREFIX: `t${Math.random().toString(36).slice(2, 8)}` });

  sharedBehaviour(env);

  test('the connection quota counts the app on every node: 4004', async () => {
    const servers = await nodes(2, env(), { DEFAULT_APP_MAX_CONNS: '3' });
    const [a, b] = servers;
    try {
      await Promise.all([a.raw(), a.raw(), b.raw()].map(async (s) => (await s).socketId()));
      // The other node's count arrives with its next heartbeat.
      await eventually(async () => {
        const socket = await b.raw();
        const first = await socket.next(() => true);
        socket.close();
        return first.event === 'pusher:error' && first.data.code === 4004;
      }, 10000, 'the fourth connection refused with 4004');
    } finally {
      await stopAll(servers);
    }
  });

  test('a Redis restart mid-traffic: nodes reconnect, deliver again, and their presence members join again', async () => {
    const [a, b] = await nodes(2, env());
    try {
      const onA = a.client({ presence: { user_id: 'ann' } });
      const onB = b.client({ presence: { user_id: 'bob' } });
      await subscribed(onA, 'presence-live');
      await subscribed(onB, 'presence-live');
      await redis.restart();
      // Local delivery never stopped; cross-node delivery comes back once both have resubscribed.
      await eventually(async () => {
        const got = nextEvent(onB, 'presence-live', 'tick').then(() => true);
        await a.sdk().trigger('presence-live', 'tick', {});
        return Promise.race([got, new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
      }, 15000, 'delivery across nodes after the restart');
      await eventually(async () => {
        const users = (await (await b.sdk().get({ path: '/channels/presence-live/users' })).json()) as { users: { id: string }[] };
        return users.users.map((u) => u.id).sort().join() === 'ann,bob';
      }, 15000, 'members back');
    } finally {
      await stopAll([a, b]);
    }
  });

  test('with Redis down, local clients are served and REST reads answer 503 with a JSON error', async () => {
    const local = await startRedis();
    const [a] = await nodes(1, { REDIS_URL: local.url });
    try {
      const one = a.client();
      const two = a.client();
      await Promise.all([subscribed(one, 'c'), subscribed(two, 'c')]);
      await local.kill();
      const got = nextEvent(two, 'c', 'e');
      await a.sdk().trigger('c', 'e', { ok: 1 });
      assert.deepEqual(await got, { ok: 1 });
      const three = a.client();
      await subscribed(three, 'c2');
      const res = await fetch(a.url('/apps/app-id/channels'));
      assert.equal(res.status, 401, 'unsigned: refused before any read');
      const signed = await a.sdk().get({ path: '/channels' }).catch((err: { status?: number; body?: string }) => err);
      assert.equal((signed as { status: number }).status, 503);
      assert.match(JSON.parse((signed as { body: string }).body).error, /shared state cannot be read/);
    } finally {
      await a.stop();
      await local.stop();
    }
  });

  test('cluster metrics: frames published and received by app, delivery lag, Redis errors; promtool finds nothing new', { skip: missingToolSkip('promtool', 'prometheus') }, async () => {
    const [a, b] = await nodes(2, env(), { METRICS_ENABLED: '1' });
    try {
      const onB = b.client();
      await subscribed(onB, 'm');
      const got = nextEvent(onB, 'm', 'e');
      await a.sdk().trigger('m', 'e', {});
      await got;
      const fromA = parseExposition((await rawGet(a.url('/metrics'))).body);
      const fromB = parseExposition((await rawGet(b.url('/metrics'))).body);
      assert.equal(sampleValue(fromA, 'pws_cluster_messages_published_total', { app_id: 'app-id' }), 1);
      assert.equal(sampleValue(fromB, 'pws_cluster_messages_received_total', { app_id: 'app-id' }), 1);
      assert.equal(sampleValue(fromB, 'pws_cluster_delivery_lag_seconds_count'), 1);
      assert.equal(sampleValue(fromB, 'pws_redis_errors_total'), 0);
      assert.equal(sampleValue(fromB, 'pws_redis_reconnects_total'), 0);
      assert.equal(sampleValue(fromB, 'pws_cluster_nodes'), 2);
      const body = (await rawGet(b.url('/metrics'))).body.toString('utf8');
      const result = await runPromtoolCheckMetrics(body);
      // Leaving out the seed's historical names, kept on purpose (docs/metrics.md).
      const lines = result.stderr.split('\n').filter((l) => l !== '' && !/^pws_(0_|nodejs_active_)/.test(l));
      assert.deepEqual(lines, [], 'the cluster families follow the naming rules');
    } finally {
      await stopAll([a, b]);
    }
  });

  test('a node killed with SIGKILL is reaped: its members removed once, its channels vacated', async () => {
    const prefix = `k${Math.random().toString(36).slice(2, 8)}`;
    const clusterEnv = { ADAPTER_DRIVER: 'redis', ADAPTER_NODE_TIMEOUT: '1000', REDIS_URL: redis.url, DB_REDIS_KEY_PREFIX: prefix };
    const survivor = await startServer(clusterEnv);
    const doomed = await spawnNode(clusterEnv);
    try {
      const watcher = survivor.client({ presence: { user_id: 'watcher' } });
      await subscribed(watcher, 'presence-room');
      const removed = collect(watcher, 'presence-room', 'pusher:member_removed');
      // Connected to the doomed node, which runs in another process.
      const ghostOnDoomed = clientOn(doomed.port, survivor, 'ghost');
      await subscribed(ghostOnDoomed, 'presence-room');
      await subscribed(ghostOnDoomed, 'lonely');
      await eventually(async () => ((await (await survivor.sdk().get({ path: '/channels' })).json()) as { channels: object }).channels.hasOwnProperty('lonely'), 5000, 'lonely listed');
      await doomed.kill();
      ghostOnDoomed.disconnect();
      await eventually(() => removed.length === 1, 15000, 'member_removed for the dead node\'s user');
      assert.deepEqual(removed, [{ id: 'ghost', info: null }]);
      const list = (await (await survivor.sdk().get({ path: '/channels' })).json()) as { channels: object };
      assert.deepEqual(list, { channels: { 'presence-room': {} } });
      await new Promise((r) => setTimeout(r, 1500));
      await drained(watcher);
      assert.equal(removed.length, 1, 'exactly once');
    } finally {
      await survivor.stop();
      await doomed.stop().catch(() => undefined);
    }
  });
});

describe('a cluster on a three-master Redis Cluster (sharded pub/sub)', { skip }, () => {
  let cluster: RedisClusterInstance;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });
  sharedBehaviour(() => ({ DB_REDIS_CLUSTER_NODES: cluster.ports.map((p) => `127.0.0.1:${p}`).join(','), DB_REDIS_KEY_PREFIX: `c${Math.random().toString(36).slice(2, 8)}` }));
});
