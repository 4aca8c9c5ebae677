// Deployments that share one Redis never see each other's frames, whatever separates them: the
// key prefix or the database number (sharded pub/sub ignores the database, so the channel
// names carry it).
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { drained, eventually, nextEvent, startServer, subscribed } from '../../helpers/server';
import { spawnNode } from '../../helpers/nodes';
import { redisSkip, startRedis, type RedisInstance } from '../../helpers/redis';

describe('two deployments on one Redis', { skip: redisSkip() }, () => {
  let redis: RedisInstance;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  test('separated by the database number only: no frame crosses; the same database named two ways is one deployment', async () => {
    const cluster = { ADAPTER_DRIVER: 'redis', ADAPTER_NODE_TIMEOUT: '4000', DB_REDIS_KEY_PREFIX: 'pws' };
    // Database 1 given by DB_REDIS_DB on one node and by the URL on the other; database 0 beside them.
    const one = await startServer({ ...cluster, DB_REDIS_HOST: '127.0.0.1', DB_REDIS_PORT: String(redis.port), DB_REDIS_DB: '1' });
    const oneToo = await startServer({ ...cluster, REDIS_URL: `${redis.url}/1` });
    const zero = await startServer({ ...cluster, REDIS_URL: redis.url });
    try {
      const onOne = oneToo.client();
      const onZero = zero.client();
      await Promise.all([subscribed(onOne, 'news'), subscribed(onZero, 'news')]);
      const leaked: unknown[] = [];
      onZero.channel('news').bind('e', (data: unknown) => leaked.push(data));
      const got = nextEvent(onOne, 'news', 'e');
      await one.sdk().trigger('news', 'e', { from: 'db1' });
      assert.deepEqual(await got, { from: 'db1' }, 'delivered within database 1');
      // Database 0's own event, published after: by then database 1's frame would have arrived.
      const own = nextEvent(onZero, 'news', 'mine');
      await zero.sdk().trigger('news', 'mine', {});
      await own;
      await new Promise((r) => setTimeout(r, 300));
      await drained(onZero);
      assert.deepEqual(leaked, [], 'database 0 received nothing of database 1');
    } finally {
      for (const s of [one, oneToo, zero]) await s.stop();
    }
  });
});

describe('the eviction policy', { skip: redisSkip() }, () => {
  for (const policy of ['volatile-lru', 'allkeys-lru', 'noeviction']) {
    test(`maxmemory-policy ${policy}: ${policy === 'noeviction' ? 'no warning' : 'one warning line at start-up'}`, async () => {
      const redis = await startRedis({ args: ['--maxmemory-policy', policy] });
      const node = await spawnNode({ ADAPTER_DRIVER: 'redis', REDIS_URL: redis.url });
      try {
        await eventually(() => /cluster: node .* on Redis/.test(node.output()), 10000, 'start-up done');
        const warnings = node.output().split('\n').filter((line) => /maxmemory-policy/.test(line));
        if (policy === 'noeviction') assert.deepEqual(warnings, []);
        else {
          assert.equal(warnings.length, 1, node.output());
          assert.match(warnings[0], new RegExp(`warn .*maxmemory-policy is ${policy}.*noeviction`));
        }
      } finally {
        await node.stop();
        await redis.stop();
      }
    });
  }
});
