// A rolling restart, as docs/scaling.md describes a deploy: nodes stopped one at a time with
// SIGTERM and started again, while a backend publishes 50 events a second. Every subscriber
// whose connection survives gets every event published after it subscribed, in order.
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher';
import PusherJs from 'pusher-js';
import { APP, eventually, subscribed } from '../../helpers/server';
import { redisSkip, startRedis, type RedisInstance } from '../../helpers/redis';
import { spawnNode, spawnNodes, type PwsNode } from '../../helpers/nodes';
import { sleep } from '../../helpers/services';

const skip = redisSkip();

function clientOn(node: PwsNode): PusherJs {
  return new PusherJs(APP.key, { cluster: 'local', wsHost: '127.0.0.1', wsPort: node.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true });
}

/** A subscriber of `channel` on `node`, with the sequence numbers of the events it got. */
async function subscriber(node: PwsNode, channel: string): Promise<{ client: PusherJs; seen: number[] }> {
  const client = clientOn(node);
  const seen: number[] = [];
  await subscribed(client, channel);
  client.channel(channel).bind('tick', (d: { i: number }) => seen.push(d.i));
  return { client, seen };
}

/** True when `seen` is a run of consecutive numbers. */
function consecutive(seen: number[]): boolean {
  return seen.every((n, i) => i === 0 || n === seen[i - 1] + 1);
}

describe('a rolling restart', { skip }, () => {
  let redis: RedisInstance;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  test('nodes stopped with SIGTERM one at a time while 50 events/s are published: surviving subscribers get every event, in order', async () => {
    const env = {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: '2000',
      REDIS_URL: redis.url,
      DB_REDIS_KEY_PREFIX: `r${Math.random().toString(36).slice(2, 8)}`,
      SHUTDOWN_GRACE_PERIOD: '500',
    };
    const nodes = await spawnNodes(3, env);
    const [publisherNode, b, c] = nodes;
    const clients: PusherJs[] = [];
    const sdk = new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(publisherNode.port), useTLS: false });
    let published = 0;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        await sdk.trigger('ticks', 'tick', { i: published });
        published++;
        await sleep(20);
      }
    })();
    try {
      const onPublisher = await subscriber(publisherNode, 'ticks');
      const onC = await subscriber(c, 'ticks');
      clients.push(onPublisher.client, onC.client);
      await eventually(() => onC.seen.length > 10, 10000, 'events reaching c');

      // Restart b while c's subscriber listens; then c while the new b's subscriber listens.
      await b.stop();
      const b2 = await spawnNode(b.env);
      nodes.push(b2);
      const onB2 = await subscriber(b2, 'ticks');
      clients.push(onB2.client);
      await eventually(() => onB2.seen.length > 10, 10000, 'events reaching the new b');
      await c.stop();
      // Its client reconnects to the node started next on c's port: a new subscription, with a gap.
      const cSeen = onC.seen.slice();
      const c2 = await spawnNode(c.env);
      nodes.push(c2);
      await eventually(() => onB2.seen.length > 20, 10000, 'events after the second restart');

      publishing = false;
      await publisher;
      const last = published - 1;
      await eventually(() => onPublisher.seen.at(-1) === last && onB2.seen.at(-1) === last, 10000, 'the last event everywhere');
      assert.ok(consecutive(onPublisher.seen), `the publishing node's subscriber: ${onPublisher.seen}`);
      assert.ok(consecutive(onB2.seen), `the new b's subscriber: ${onB2.seen}`);
      assert.ok(consecutive(cSeen), `c's subscriber until c stopped: ${cSeen}`);
      assert.ok(onB2.seen[0] < last - 20, 'the new b\'s subscriber lived through c\'s restart');
    } finally {
      publishing = false;
      await publisher.catch(() => undefined);
      for (const client of clients) client.disconnect();
      for (const node of nodes) await node.stop().catch(() => undefined);
    }
  });
});
