// On a Redis Cluster a node opens a pub/sub connection to a master when it first subscribes a
// channel of that shard, and closes it when it unsubscribes the last one. Those are new
// connections, not reconnections: they must not resubscribe, rewrite or postpone the reaping of
// a dead node (which a quiet cluster, whose nodes often hold no channel on some shard, would
// then never reap).
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type PusherJs from 'pusher-js';
import { APP, startServer, subscribed, eventually, drained, nextEvent, type TestServer } from '../../helpers/server';
import { redisSkip, startRedis, startRedisCluster, type RedisClusterInstance } from '../../helpers/redis';
import { presenceClient, spawnNode } from '../../helpers/nodes';
import { masterOf } from '../../helpers/cluster-slots';
import { parseExposition, rawGet, sampleValue } from '../../helpers/exposition';

/** A pusher-js client on a node in another process, its presence authorized by `signer`'s SDK as `userId`. */
function clientOn(port: number, signer: TestServer, userId: string): PusherJs {
  return presenceClient(port, signer.sdk(), userId);
}

describe('a cluster on a three-master Redis Cluster: reconnections', { skip: redisSkip() }, () => {
  let cluster: RedisClusterInstance;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('a dead node is reaped while the survivor subscribes and unsubscribes a channel on another shard every half second; no reconnection counted', async () => {
    const prefix = `r${Math.random().toString(36).slice(2, 8)}`;
    const env = {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: '2000',
      DB_REDIS_CLUSTER_NODES: cluster.ports.map((p) => `127.0.0.1:${p}`).join(','),
      DB_REDIS_KEY_PREFIX: prefix,
    };
    // A channel whose shard holds none of the survivor's other channels: each subscribe opens a
    // pub/sub connection to that master, each unsubscribe closes it.
    const roomMaster = await masterOf(cluster, `${prefix}:ch:${APP.id}:presence-room`);
    let churn = '';
    for (let i = 0; churn === ''; i++) if ((await masterOf(cluster, `${prefix}:ch:${APP.id}:churn-${i}`)) !== roomMaster) churn = `churn-${i}`;

    const survivor = await startServer({ ...env, METRICS_ENABLED: '1' });
    const doomed = await spawnNode(env);
    let churning = true;
    try {
      const watcher = survivor.client({ presence: { user_id: 'watcher' } });
      await subscribed(watcher, 'presence-room');
      const removed: unknown[] = [];
      watcher.channel('presence-room').bind('pusher:member_removed', (m: unknown) => removed.push(m));
      const ghost = clientOn(doomed.port, survivor, 'ghost');
      await subscribed(ghost, 'presence-room');
      await eventually(async () => Object.keys(((await (await survivor.sdk().get({ path: '/channels/presence-room/users' })).json()) as { users: unknown[] }).users).length === 2, 5000, 'ghost listed');

      const churner = survivor.client();
      const churned = (async () => {
        while (churning) {
          await subscribed(churner, churn);
          await drained(churner);
          churner.unsubscribe(churn);
          await drained(churner);
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      await new Promise((r) => setTimeout(r, 1500));
      await doomed.kill();
      ghost.disconnect();
      // Node timeout 2 s, then the next beat (every 500 ms): well within 10 s.
      await eventually(() => removed.length === 1, 10000, 'member_removed for the dead node\'s user');
      assert.deepEqual(removed, [{ id: 'ghost', info: null }]);
      churning = false;
      await churned;
      const scraped = parseExposition((await rawGet(survivor.url('/metrics'))).body);
      assert.equal(sampleValue(scraped, 'pws_redis_reconnects_total'), 0, 'new pub/sub connections are no reconnections');
    } finally {
      churning = false;
      await survivor.stop();
      await doomed.stop().catch(() => undefined);
    }
  });
});

describe('one Redis killed and restarted empty: reconnections', { skip: redisSkip() }, () => {
  test('each node counts one reconnection per connection (commands, subscriber), none while Redis is healthy, and is whole again', async () => {
    const redis = await startRedis();
    const env = { ADAPTER_DRIVER: 'redis', ADAPTER_NODE_TIMEOUT: '4000', REDIS_URL: redis.url, METRICS_ENABLED: '1' };
    const nodes = [await startServer(env), await startServer(env)];
    const reconnects = async (node: TestServer) => sampleValue(parseExposition((await rawGet(node.url('/metrics'))).body), 'pws_redis_reconnects_total');
    try {
      const [onA, onB] = [nodes[0].client({ presence: { user_id: 'ann' } }), nodes[1].client({ presence: { user_id: 'bob' } })];
      await subscribed(onA, 'presence-live');
      await subscribed(onB, 'presence-live');
      // Idle long enough for the pings and the socket timeout to have had their say.
      await new Promise((r) => setTimeout(r, 5000));
      assert.deepEqual(await Promise.all(nodes.map(reconnects)), [0, 0], 'a healthy Redis: no reconnection');
      await redis.restart();
      await eventually(async () => {
        const got = nextEvent(onB, 'presence-live', 'tick').then(() => true);
        await nodes[0].sdk().trigger('presence-live', 'tick', {});
        return Promise.race([got, new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
      }, 15000, 'delivery across nodes after the restart');
      await eventually(async () => {
        const users = (await (await nodes[1].sdk().get({ path: '/channels/presence-live/users' })).json()) as { users: { id: string }[] };
        return users.users.map((u) => u.id).sort().join() === 'ann,bob';
      }, 15000, 'members rewritten');
      assert.deepEqual(await Promise.all(nodes.map(reconnects)), [2, 2]);
    } finally {
      for (const node of nodes) await node.stop();
      await redis.stop();
    }
  });
});
