// Webhook queues on Redis (ADAPTER_DRIVER=redis) outlive the node that queued them: a node
// killed with SIGKILL, or stopped with SIGTERM, while its receiver is down leaves its webhooks in
// Redis, and a survivor sends them once the node is gone; a POST that was in flight when its node
// died is sent again byte for byte, under the same X-Pusher-Webhook-Id.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher';
import PusherJs from 'pusher-js';
import { parseExposition, sampleValue } from '../helpers/exposition';
import { spawnNode, type PwsNode } from '../helpers/nodes';
import { redisSkip, startRedis, type RedisInstance } from '../helpers/redis';
import { APP, eventually, startServer, subscribed, type TestServer } from '../helpers/server';
import { WebhookReceiver } from '../helpers/webhook-receiver';

const skip = redisSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A pusher-js client on a node of another process, its private channels signed with the app's secret. */
function clientOn(node: PwsNode): PusherJs {
  const sdk = new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1' });
  return new PusherJs(APP.key, {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: node.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: (err: Error | null, data: unknown) => void) =>
        callback(null, sdk.authorizeChannel(socketId, channelName)),
    } as never,
  });
}

/** The `i` of every client event the receiver accepted, in order. */
function indices(receiver: WebhookReceiver): number[] {
  return receiver.events().filter((e) => e.name === 'client_event').map((e) => JSON.parse(e.data).i);
}

function metric(node: TestServer, name: string): number | undefined {
  return sampleValue(parseExposition(node.server.metrics!.render()), name, { app_id: APP.id });
}

describe('webhook queues on Redis', { skip }, () => {
  let redis: RedisInstance;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  /** A survivor in this process and a node in another one, both sending webhooks to `receiver`. */
  async function cluster(receiver: WebhookReceiver, extra: Record<string, string> = {}): Promise<{ survivor: TestServer; doomed: PwsNode; prefix: string }> {
    const prefix = `d${Math.random().toString(36).slice(2, 8)}`;
    const env = {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: '2000',
      REDIS_URL: redis.url,
      DB_REDIS_KEY_PREFIX: prefix,
      DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1',
      METRICS_ENABLED: '1',
      DEFAULT_APP_WEBHOOKS: JSON.stringify([{ url: receiver.url(), event_types: ['client_event'] }]),
      ...extra,
    };
    return { survivor: await startServer(env), doomed: await spawnNode(env), prefix };
  }

  /** Sends client events `from`…`from + count - 1` on a private channel of `node`, through pusher-js. */
  async function clientEvents(node: PwsNode, from: number, count: number): Promise<PusherJs> {
    const client = clientOn(node);
    await subscribed(client, 'private-orders');
    for (let i = from; i < from + count; i++) assert.equal(client.channel('private-orders').trigger('client-n', { i }), true);
    return client;
  }

  /** Entries of the node's queues in Redis (every queue of the app, all nodes). */
  async function queued(prefix: string): Promise<number> {
    const keys = (await redis.cli('--scan', '--pattern', `${prefix}:{${APP.id}}:webhooks:*`)).split('\n').filter((k) => k !== '' && !k.endsWith(':sending'));
    let n = 0;
    for (const key of keys) n += Number(await redis.cli('XLEN', key));
    return n;
  }

  test('receiver down, node SIGKILLed, receiver up: every webhook arrives exactly once, in order, from a survivor', async () => {
    const receiver = await WebhookReceiver.start();
    await receiver.close();
    const { survivor, doomed, prefix } = await cluster(receiver);
    try {
      const client = await clientEvents(doomed, 0, 5);
      await eventually(async () => (await queued(prefix)) === 5, 15000, 'five events in the Redis queue');
      await doomed.kill();
      client.disconnect();
      await receiver.open();
      await eventually(() => indices(receiver).length >= 5, 30000, 'the five events from the survivor');
      // Nothing arrives twice, even after the survivor has looked again.
      await sleep(2000);
      assert.deepEqual(indices(receiver), [0, 1, 2, 3, 4]);
      assert.equal(metric(survivor, 'pws_webhook_events_claimed_total'), 5);
      await eventually(async () => (await queued(prefix)) === 0, 5000, 'the queue removed once sent');
      for (const request of receiver.delivered()) assert.match(String(request.headers['x-pusher-webhook-id']), /^[0-9a-f-]{36}$/);
    } finally {
      await survivor.stop();
      await receiver.close();
    }
  });

  test('a POST in flight when its node died is sent again by the survivor with the same bytes and X-Pusher-Webhook-Id', async () => {
    const receiver = await WebhookReceiver.start();
    receiver.answer = () => 'hang';
    const { survivor, doomed } = await cluster(receiver, { WEBHOOKS_BATCHING_DURATION: '1000' });
    try {
      const client = await clientEvents(doomed, 0, 3);
      await eventually(() => receiver.hangingCount === 1, 15000, 'the POST of the three events, left hanging');
      // Queued after that POST left: they were never part of it.
      await sleep(200);
      for (let i = 3; i < 5; i++) client.channel('private-orders').trigger('client-n', { i });
      await sleep(500);
      await doomed.kill();
      client.disconnect();
      receiver.answer = () => 200;
      await eventually(() => indices(receiver).length >= 5, 30000, 'the events from the survivor');
      const [cut, again] = receiver.requests;
      assert.equal(again.body, cut.body, 'the same bytes: same time_ms, same events');
      assert.equal(again.headers['x-pusher-webhook-id'], cut.headers['x-pusher-webhook-id']);
      assert.equal(again.headers['x-pusher-signature'], cut.headers['x-pusher-signature']);
      assert.deepEqual(indices(receiver), [0, 1, 2, 3, 4]);
      assert.notEqual(receiver.requests[2].headers['x-pusher-webhook-id'], cut.headers['x-pusher-webhook-id']);
    } finally {
      await survivor.stop();
      await receiver.close();
    }
  });

  test('SIGTERM hands the queue over instead of a last attempt: a survivor sends it once the receiver is back', async () => {
    const receiver = await WebhookReceiver.start();
    await receiver.close();
    const { survivor, doomed, prefix } = await cluster(receiver);
    try {
      const client = await clientEvents(doomed, 0, 4);
      await eventually(async () => (await queued(prefix)) === 4, 15000, 'four events in the Redis queue');
      client.disconnect();
      const exit = await doomed.stop();
      assert.equal(exit.code, 0, doomed.output());
      assert.doesNotMatch(doomed.output(), /gave up/);
      await receiver.open();
      await eventually(() => indices(receiver).length >= 4, 30000, 'the four events from the survivor');
      await sleep(1000);
      assert.deepEqual(indices(receiver), [0, 1, 2, 3]);
      assert.equal(metric(survivor, 'pws_webhook_events_claimed_total'), 4);
    } finally {
      await survivor.stop();
      await receiver.close();
    }
  });
});
