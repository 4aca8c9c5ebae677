// A node rewrites its entries in Redis after a reconnection (and after a command whose answer
// it missed). With more than 500 of them the rewrite takes several scripts; leaves during it must
// neither be undone nor lose their webhooks. Asserted on GET /channels and the webhooks received.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, startServer } from '../../helpers/server';
import { redisSkip, startRedis, type RedisInstance } from '../../helpers/redis';
import { WebhookReceiver } from '../../helpers/webhook-receiver';
import { HOLD_BACK_MS } from '../../../src/webhooks/hold-back';

const skip = redisSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rewriting a node\'s entries', { skip }, () => {
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

  test('a rewrite of more than 500 entries with leaves during it: /channels, /users and webhooks exact afterwards', async () => {
    receiver.requests.length = 0;
    const env = {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: '4000',
      PRESENCE_MAX_MEMBERS: '1000',
      REDIS_URL: redis.url,
      DB_REDIS_KEY_PREFIX: `r${Math.random().toString(36).slice(2, 8)}`,
      DEFAULT_APP_WEBHOOKS: JSON.stringify([{ url: receiver.url(), event_types: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed'] }]),
    };
    const node = await startServer(env);
    try {
      const socket = await node.raw();
      await socket.socketId();
      const names = Array.from({ length: 1500 }, (_, i) => `ch-${String(i).padStart(4, '0')}`);
      for (const channel of names) socket.send({ event: 'pusher:subscribe', data: { channel } });
      await socket.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === names.at(-1), 0, 30000);
      // Members come last in the node's entries: a presence channel subscribed after the others.
      const users = Array.from({ length: 120 }, (_, i) => `u${String(i).padStart(3, '0')}`);
      const members = await Promise.all(
        users.map(async (user_id) => {
          const member = await node.raw();
          const auth = node.sdk().authorizeChannel(await member.socketId(), 'presence-big', { user_id });
          await member.request({ event: 'pusher:subscribe', data: { channel: 'presence-big', ...auth } }, (f) => f.event === 'pusher_internal:subscription_succeeded');
          return member;
        }),
      );
      await eventually(() => receiver.events().filter((e) => e.name === 'channel_occupied').length === names.length + 1, 20000, 'every channel_occupied');
      await eventually(() => receiver.events().filter((e) => e.name === 'member_added').length === users.length, 20000, 'every member_added');

      // Cut the node's command connection: it reconnects and rewrites its 1500 entries. Redis is
      // kept busy meanwhile, so the leaves arrive between the rewrite's scripts.
      const staying = names.slice(0, 500);
      const leaving = names.slice(500);
      await redis.cli('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      const busy = (async () => {
        for (let i = 0; i < 8; i++) {
          await redis.cli('EVAL', "local s = redis.call('TIME') local t = s[1] * 1000000 + s[2] repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - t > 100000 return 1", '0');
          await sleep(30);
        }
      })();
      for (const [i, channel] of leaving.entries()) {
        socket.send({ event: 'pusher:unsubscribe', data: { channel } });
        if (i % 16 === 0 && members.length > users.length / 2) members.pop()!.close();
        await sleep(1);
      }
      await busy;
      const present = users.slice(0, members.length);
      const gone = users.slice(members.length);

      let extra: string[] = [];
      await eventually(
        async () => {
          const list = (await (await node.sdk().get({ path: '/channels' })).json()) as { channels: Record<string, unknown> };
          extra = Object.keys(list.channels).filter((name) => !staying.includes(name) && name !== 'presence-big');
          return Object.keys(list.channels).sort().join() === [...staying, 'presence-big'].join();
        },
        20000,
        '/channels to list exactly the channels still subscribed',
      ).catch((err) => {
        throw new Error(`${(err as Error).message}; also listed: ${extra.length} (${extra.slice(0, 5).join()}…)`);
      });
      await eventually(
        async () => {
          const body = (await (await node.sdk().get({ path: '/channels/presence-big/users' })).json()) as { users: { id: string }[] };
          return body.users.map((u) => u.id).sort().join() === present.join();
        },
        20000,
        '/users to list exactly the members still there',
      );
      await eventually(() => receiver.events().filter((e) => e.name === 'channel_vacated').length >= leaving.length, HOLD_BACK_MS + 20000, 'channel_vacated webhooks');
      await eventually(() => receiver.events().filter((e) => e.name === 'member_removed').length >= gone.length, HOLD_BACK_MS + 20000, 'member_removed webhooks');
      await sleep(HOLD_BACK_MS + 1000);
      const vacated = receiver.events().filter((e) => e.name === 'channel_vacated').map((e) => e.channel).sort();
      assert.deepEqual(vacated, leaving, 'one channel_vacated per channel left, none for the others');
      assert.equal(receiver.events().filter((e) => e.name === 'channel_occupied').length, names.length + 1, 'no channel_occupied again');
      const removed = receiver.events().filter((e) => e.name === 'member_removed').map((e) => e.user_id).sort();
      assert.deepEqual(removed, gone, 'one member_removed per member gone, none for the others');
      assert.equal(receiver.events().filter((e) => e.name === 'member_added').length, users.length, 'no member_added again');
      socket.close();
      for (const member of members) member.close();
    } finally {
      await node.stop();
    }
  });
});
