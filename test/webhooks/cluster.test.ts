// Webhooks of two nodes on one real Redis: occupancy and presence webhooks go out once for the
// cluster (the node that gets the cluster-wide edge sends them), client events once (by the
// node that received them), and a user coming back through the other node within the
// hold-back gets no channel_vacated / member_removed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HOLD_BACK_MS } from '../../src/webhooks/hold-back';
import { eventually, startServer, subscribed, type TestServer } from '../helpers/server';
import { redisSkip, startRedis, type RedisInstance } from '../helpers/redis';
import { WebhookReceiver } from '../helpers/webhook-receiver';

const skip = redisSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('webhooks of a cluster on one Redis', { skip }, () => {
  let redis: RedisInstance;
  let receiver: WebhookReceiver;
  before(async () => {
    redis = await startRedis();
    receiver = await WebhookReceiver.start();
  });
  after(async () => {
    await receiver?.close();
    await redis?.stop();
  });

  async function twoNodes(): Promise<TestServer[]> {
    const env = {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: '1000',
      REDIS_URL: redis.url,
      DB_REDIS_KEY_PREFIX: `w${Math.random().toString(36).slice(2, 8)}`,
      DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1',
      DEFAULT_APP_WEBHOOKS: JSON.stringify([{ url: receiver.url(), event_types: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event'] }]),
    };
    return [await startServer(env), await startServer(env)];
  }

  /**
   * Once a channel_occupied of a fresh channel subscribed on each node is in, each node's
   * stream has delivered everything queued before it (a stream keeps its order).
   */
  async function drainBoth(nodes: TestServer[], tag: string): Promise<void> {
    for (const [i, node] of nodes.entries()) await subscribed(node.client(), `marker-${tag}-${i}`);
    await eventually(() => nodes.every((_, i) => receiver.events().some((e) => e.channel === `marker-${tag}-${i}`)), 15000, `markers ${tag}`);
  }

  /** The accepted events of `channel`, as [name, the client event's data or the user_id]. */
  function seen(channel: string): [string, string | undefined][] {
    return receiver.events().filter((e) => e.channel === channel).map((e) => [e.name, e.name === 'client_event' ? e.data : e.user_id]);
  }

  test('one channel_occupied, one member_added per user, one client_event per event, one channel_vacated', async () => {
    receiver.requests.length = 0;
    const nodes = await twoNodes();
    const [a, b] = nodes;
    try {
      const onA = a.client({ presence: { user_id: 'u1' } });
      const onB = b.client({ presence: { user_id: 'u2' } });
      const secondTab = b.client({ presence: { user_id: 'u1' } });
      await subscribed(onA, 'presence-room');
      await subscribed(onB, 'presence-room');
      await subscribed(secondTab, 'presence-room');
      onA.channel('presence-room').trigger('client-n', 'from a');
      onB.channel('presence-room').trigger('client-n', 'from b');
      await drainBoth(nodes, 'joined');
      const joined = seen('presence-room');
      assert.equal(joined.filter(([name]) => name === 'channel_occupied').length, 1);
      assert.deepEqual(joined.filter(([name]) => name === 'member_added').map(([, user]) => user).sort(), ['u1', 'u2']);
      assert.deepEqual(joined.filter(([name]) => name === 'client_event').map(([, data]) => data).sort(), ['from a', 'from b']);
      assert.equal(joined.length, 5);

      for (const client of [onA, onB, secondTab]) client.disconnect();
      await eventually(() => seen('presence-room').length === 8, 15000, 'two member_removed and one channel_vacated');
      // Any second release would have been queued before these markers (the hold-back timers run in this process).
      await sleep(HOLD_BACK_MS + 1000);
      await drainBoth(nodes, 'left');
      const left = seen('presence-room').slice(5);
      assert.deepEqual(left.filter(([name]) => name === 'member_removed').map(([, user]) => user).sort(), ['u1', 'u2']);
      assert.deepEqual(left.filter(([name]) => name === 'channel_vacated').length, 1);
      assert.equal(seen('presence-room').length, 8);
    } finally {
      for (const node of nodes) await node.stop();
    }
  });

  test('a user leaving one node and coming back through the other within the hold-back: no channel_vacated, no member_removed', async () => {
    receiver.requests.length = 0;
    const nodes = await twoNodes();
    const [a, b] = nodes;
    const occupied = async () => ((await (await a.sdk().get({ path: '/channels/presence-lobby' })).json()) as { occupied: boolean }).occupied;
    try {
      const first = a.client({ presence: { user_id: 'u1' } });
      await subscribed(first, 'presence-lobby');
      await drainBoth(nodes, 'joined');
      first.disconnect();
      await eventually(async () => !(await occupied()), 5000, 'the lobby vacated');
      await subscribed(b.client({ presence: { user_id: 'u1' } }), 'presence-lobby');
      await sleep(HOLD_BACK_MS + 1000);
      await drainBoth(nodes, 'back');
      // Node b could not know of node a's hold-back, so its channel_occupied and member_added
      // repeat the first ones; node a checked the cluster before releasing and dropped its pair.
      assert.deepEqual(seen('presence-lobby'), [
        ['channel_occupied', undefined],
        ['member_added', 'u1'],
        ['channel_occupied', undefined],
        ['member_added', 'u1'],
      ]);
    } finally {
      for (const node of nodes) await node.stop();
    }
  });
});
