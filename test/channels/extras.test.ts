// Pusher features stock pusher-js understands: live subscription counts (with the >100
// throttle ending on the true value) and cache channels of every kind (replay, pusher:cache_miss,
// the deduplicated cache_miss webhook, info=cache), on one node and shared by two on Redis.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type PusherJs from 'pusher-js';
import { THROTTLE_ABOVE, THROTTLE_MS } from '../../src/channels/subscription-counts';
import { parseExposition, rawGet, sampleValue } from '../helpers/exposition';
import { redisSkip, startRedis } from '../helpers/redis';
import { APP, drained, eventually, startServer, subscribed, type TestServer } from '../helpers/server';
import { WebhookReceiver } from '../helpers/webhook-receiver';

const COUNTS = { DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT: 'true' };

/** Every subscription_count a pusher-js client saw on a channel, and its channel.subscriptionCount. */
function counts(client: PusherJs, channel: string): number[] {
  const seen: number[] = [];
  client.channel(channel).bind('pusher:subscription_count', (d: { subscription_count: number }) => seen.push(d.subscription_count));
  return seen;
}

async function info(s: TestServer, channel: string, attrs: string): Promise<any> {
  return (await s.sdk().get({ path: `/channels/${channel}`, params: { info: attrs } })).json();
}

describe('live subscription counts', () => {
  test('every subscribe and unsubscribe sends the count to the channel; pusher-js sets channel.subscriptionCount', async () => {
    const s = await startServer(COUNTS);
    try {
      const first = s.client();
      await subscribed(first, 'news');
      const seen = counts(first, 'news');
      const second = s.client();
      await subscribed(second, 'news');
      const third = s.client();
      await subscribed(third, 'news');
      await drained(first);
      assert.deepEqual(seen, [2, 3]);
      assert.equal((first.channel('news') as unknown as { subscriptionCount: number }).subscriptionCount, 3);
      second.unsubscribe('news');
      await eventually(() => seen.length === 3);
      third.disconnect();
      await eventually(() => seen.length === 4);
      assert.deepEqual(seen, [2, 3, 2, 1]);
      assert.deepEqual(await info(s, 'news', 'subscription_count'), { occupied: true, subscription_count: 1 });
    } finally {
      await s.stop();
    }
  });

  test('the new subscriber gets the count after its subscription_succeeded; presence channels and apps without the option get none', async () => {
    const s = await startServer(COUNTS);
    const off = await startServer({});
    try {
      const raw = await s.raw();
      await raw.socketId();
      raw.send({ event: 'pusher:subscribe', data: { channel: 'solo' } });
      const frame = await raw.next((f) => f.event === 'pusher_internal:subscription_count');
      assert.deepEqual(frame, { event: 'pusher_internal:subscription_count', channel: 'solo', data: { subscription_count: 1 } });
      const events = raw.frames.map((f) => f.event);
      assert.ok(events.indexOf('pusher_internal:subscription_succeeded') < events.indexOf('pusher_internal:subscription_count'));

      const p = await s.raw();
      await p.socketId();
      const auth = s.sdk().authorizeChannel(await p.socketId(), 'presence-room', { user_id: 'u' });
      await p.request({ event: 'pusher:subscribe', data: { channel: 'presence-room', ...auth } }, (f) => f.event === 'pusher_internal:subscription_succeeded');
      const plain = await off.raw();
      await plain.request({ event: 'pusher:subscribe', data: { channel: 'x' } }, (f) => f.event === 'pusher_internal:subscription_succeeded');
      await p.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
      await plain.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
      assert.equal(p.frames.filter((f) => f.event === 'pusher_internal:subscription_count').length, 0);
      assert.equal(plain.frames.filter((f) => f.event === 'pusher_internal:subscription_count').length, 0);
    } finally {
      await s.stop();
      await off.stop();
    }
  });

  test(`above ${THROTTLE_ABOVE} subscribers at most one count per ${THROTTLE_MS / 1000} s while it changes, ending on the true value`, async () => {
    const s = await startServer({ ...COUNTS, METRICS_ENABLED: '1' });
    try {
      const watcher = await s.raw();
      await watcher.socketId();
      await watcher.request({ event: 'pusher:subscribe', data: { channel: 'big' } }, (f) => f.event === 'pusher_internal:subscription_succeeded');
      const others = await Promise.all(Array.from({ length: THROTTLE_ABOVE + 9 }, () => s.raw()));
      await Promise.all(others.map((o) => o.socketId()));
      const start = Date.now();
      for (const o of others) o.send({ event: 'pusher:subscribe', data: { channel: 'big' } });
      await Promise.all(others.map((o) => o.next((f) => f.event === 'pusher_internal:subscription_succeeded')));
      for (const o of others.slice(0, 4)) o.close();
      const finalCount = 1 + others.length - 4;
      await watcher.next((f) => f.event === 'pusher_internal:subscription_count' && f.data.subscription_count === finalCount, 0, THROTTLE_MS * 3);
      const sent = watcher.frames.filter((f) => f.event === 'pusher_internal:subscription_count').map((f) => f.data.subscription_count);
      // Every count up to 101 (the first above the threshold), then one per window, the last true.
      const upTo = sent.indexOf(THROTTLE_ABOVE + 1);
      assert.deepEqual(sent.slice(0, upTo + 1), Array.from({ length: THROTTLE_ABOVE + 1 }, (_, i) => i + 1));
      const throttled = sent.slice(upTo + 1);
      assert.ok(throttled.length <= Math.ceil((Date.now() - start) / THROTTLE_MS) + 1, `too many counts above ${THROTTLE_ABOVE}: ${throttled}`);
      assert.equal(sent.at(-1), finalCount);
      assert.deepEqual(await info(s, 'big', 'subscription_count'), { occupied: true, subscription_count: finalCount });
      const scraped = parseExposition((await rawGet(s.url('/metrics'))).body);
      assert.equal(sampleValue(scraped, 'pws_subscription_count_frames_total', { app_id: APP.id }), sent.length);
    } finally {
      await s.stop();
    }
  });

  test('the subscription_count webhook carries the announced counts, signed', async () => {
    const receiver = await WebhookReceiver.start();
    const s = await startServer({ ...COUNTS, WEBHOOKS_BATCHING: 'false', DEFAULT_APP_WEBHOOKS: JSON.stringify([{ url: receiver.url(), event_types: ['subscription_count'] }]) });
    try {
      const a = s.client();
      const b = s.client();
      await subscribed(a, 'c');
      await subscribed(b, 'c');
      const events = await receiver.waitForEvents(2);
      assert.deepEqual(events, [
        { name: 'subscription_count', channel: 'c', subscription_count: 1 },
        { name: 'subscription_count', channel: 'c', subscription_count: 2 },
      ]);
      const request = receiver.delivered()[0];
      assert.ok(s.sdk().webhook({ headers: request.headers as Record<string, string>, rawBody: request.body }).isValid());
    } finally {
      await s.stop();
      await receiver.close();
    }
  });
});

/** A subscription's auth, signed as a backend would (the SDK insists on an encryption key for encrypted channels). */
function signed(socketId: string, channel: string): { auth: string; channel_data?: string } {
  const channelData = channel.startsWith('presence-') ? JSON.stringify({ user_id: socketId }) : undefined;
  const text = channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
  const auth = `${APP.key}:${createHmac('sha256', APP.secret).update(text).digest('hex')}`;
  return channelData === undefined ? { auth } : { auth, channel_data: channelData };
}

const CACHE_KINDS = ['cache-prices', 'private-cache-prices', 'private-encrypted-cache-prices', 'presence-cache-prices'];

describe('cache channels', () => {
  for (const channel of CACHE_KINDS) {
    test(`${channel}: a miss says pusher:cache_miss; after a REST event each new subscriber gets it right after subscription_succeeded`, async () => {
      const s = await startServer({ METRICS_ENABLED: '1' });
      try {
        const raw = await s.raw();
        const id = await raw.socketId();
        const subscribe = async (r: typeof raw, socketId: string) => {
          const auth = channel.startsWith('cache-') ? {} : signed(socketId, channel);
          const from = r.frames.length;
          r.send({ event: 'pusher:subscribe', data: { channel, ...auth } });
          await r.next((f) => f.event === 'pusher_internal:subscription_succeeded', from);
          return from;
        };
        const from = await subscribe(raw, id);
        assert.deepEqual(await raw.next((f) => f.event === 'pusher:cache_miss', from), { event: 'pusher:cache_miss', channel });
        // The SDK encrypts for private-encrypted-; the server keeps the ciphertext as is.
        const data = channel.includes('encrypted') ? JSON.stringify({ nonce: 'bm9uY2U=', ciphertext: 'Y2lwaGVy' }) : JSON.stringify({ usd: 42 });
        await s.sdk().post({ path: '/events', body: { name: 'price', channel, data } as never });
        const late = await s.raw();
        const lateId = await late.socketId();
        const lateFrom = await subscribe(late, lateId);
        const after = late.frames.slice(lateFrom);
        const confirmed = after.findIndex((f) => f.event === 'pusher_internal:subscription_succeeded');
        await late.next((f) => f.event === 'price', lateFrom);
        assert.equal(late.frames.slice(lateFrom)[confirmed + 1].event, 'price', 'the cached event comes right after the confirmation');
        assert.deepEqual(late.frames.slice(lateFrom)[confirmed + 1], { event: 'price', channel, data });
        const cached = await info(s, channel, 'cache');
        assert.equal(cached.cache.data, data);
        assert.ok(cached.cache.ttl > 1790 && cached.cache.ttl <= 1800, `ttl ${cached.cache.ttl}`);
        const scraped = parseExposition((await rawGet(s.url('/metrics'))).body);
        assert.equal(sampleValue(scraped, 'pws_cache_hits_total', { app_id: APP.id }), 1);
        assert.equal(sampleValue(scraped, 'pws_cache_misses_total', { app_id: APP.id }), 1);
      } finally {
        await s.stop();
      }
    });
  }

  test('client events are never cached; info=cache is null when empty and 400 on a channel that is not a cache channel', async () => {
    const s = await startServer({ DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true' });
    try {
      const a = s.client();
      await subscribed(a, 'private-cache-chat');
      a.channel('private-cache-chat').trigger('client-typing', {});
      await drained(a);
      assert.deepEqual(await info(s, 'private-cache-chat', 'cache'), { occupied: true, cache: null });
      await assert.rejects(s.sdk().get({ path: '/channels/news', params: { info: 'cache' } }), (err: { status: number; body: string }) => {
        assert.equal(err.status, 400);
        assert.match(JSON.parse(err.body).error, /cache is only available for cache channels/);
        return true;
      });
    } finally {
      await s.stop();
    }
  });

  test('pusher-js: channel.bind("pusher:cache_miss") fires on a miss; the cache_miss webhook fires once for a burst of misses, verified by the SDK', async () => {
    const receiver = await WebhookReceiver.start();
    const s = await startServer({ WEBHOOKS_BATCHING: 'false', DEFAULT_APP_WEBHOOKS: JSON.stringify([{ url: receiver.url(), event_types: ['cache_miss'] }]) });
    try {
      const clients = [s.client(), s.client(), s.client()];
      const missed = clients.map((c) => new Promise<void>((resolve) => c.subscribe('cache-empty').bind('pusher:cache_miss', () => resolve())));
      await Promise.all(missed);
      const events = await receiver.waitForEvents(1);
      for (const c of clients) await drained(c);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(receiver.events(), [{ name: 'cache_miss', channel: 'cache-empty' }]);
      assert.equal(events.length, 1);
      const request = receiver.delivered()[0];
      assert.ok(s.sdk().webhook({ headers: request.headers as Record<string, string>, rawBody: request.body }).isValid());
    } finally {
      await s.stop();
      await receiver.close();
    }
  });
});

describe('on two nodes sharing one Redis', { skip: redisSkip() }, () => {
  test('counts are cluster-wide and the cache is shared', async () => {
    const redis = await startRedis();
    const env = { ...COUNTS, ADAPTER_DRIVER: 'redis', REDIS_URL: redis.url, ADAPTER_NODE_TIMEOUT: '5000' };
    const a = await startServer(env);
    const b = await startServer(env);
    try {
      const onA = a.client();
      await subscribed(onA, 'shared');
      const seen = counts(onA, 'shared');
      const onB = b.client();
      await subscribed(onB, 'shared');
      await eventually(() => seen.at(-1) === 2, 5000, 'the count from the other node');
      await a.sdk().trigger('cache-board', 'score', { home: 1 });
      const late = b.client();
      const got = new Promise((resolve) => late.subscribe('cache-board').bind('score', resolve));
      assert.deepEqual(await got, { home: 1 });
      assert.equal((await info(b, 'cache-board', 'cache')).cache.data, JSON.stringify({ home: 1 }));
    } finally {
      await a.stop();
      await b.stop();
      await redis.stop();
    }
  });
});
