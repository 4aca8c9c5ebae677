// Per-app quotas and rate limits with Pusher's codes, driven by real clients: 4004 for the
// connection quota, pusher:error 4301 for client events over the rate, and 429 with
// Retry-After and X-RateLimit-* for the REST API; on one node and shared by two nodes on Redis.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExposition, rawGet, sampleValue } from '../helpers/exposition';
import { redisSkip, startRedis } from '../helpers/redis';
import type PusherJs from 'pusher-js';
import { APP, drained, startServer, subscribed, type TestServer } from '../helpers/server';
import { createHash, createHmac } from 'node:crypto';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves when pusher-js reports a Pusher error with `code` (on connect it comes wrapped in a WebSocketError). */
function errorCode(client: PusherJs, code: number): Promise<void> {
  return new Promise((resolve) =>
    client.connection.bind('error', (e: { data?: { code?: number }; error?: { data?: { code?: number } } }) => {
      if ((e.data?.code ?? e.error?.data?.code) === code) resolve();
    }),
  );
}

/** A signed REST call, answered as is (the SDK hides the headers of a refusal). */
async function call(s: TestServer, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; headers: Headers; json: any }> {
  const text = body === undefined ? '' : JSON.stringify(body);
  const query: Record<string, string> = { auth_key: APP.key, auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: '1.0' };
  if (method === 'POST') query.body_md5 = createHash('md5').update(text).digest('hex');
  const full = `/apps/${APP.id}${path}`;
  const sorted = Object.keys(query)
    .sort()
    .map((k) => `${k}=${query[k]}`)
    .join('&');
  const signature = createHmac('sha256', APP.secret).update(`${method}\n${full}\n${sorted}`).digest('hex');
  const res = await fetch(s.url(`${full}?${sorted}&auth_signature=${signature}`), {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: method === 'POST' ? text : undefined,
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

function trigger(s: TestServer, channels: string[], data = '{}') {
  return call(s, 'POST', '/events', { name: 'e', channels, data });
}

describe('the connection quota', () => {
  test('over DEFAULT_APP_MAX_CONNS a connection gets pusher:error 4004 and close 4004, and pusher-js does not retry', async () => {
    const s = await startServer({ DEFAULT_APP_MAX_CONNS: '2', METRICS_ENABLED: '1' });
    try {
      await (await s.raw()).socketId();
      await (await s.raw()).socketId();
      const third = await s.raw();
      const error = await third.next((f) => f.event === 'pusher:error');
      assert.deepEqual(error.data, { code: 4004, message: 'The app has reached its connection quota' });
      assert.equal((await third.closed).code, 4004);
      const client = s.client();
      await errorCode(client, 4004);
      const states: string[] = [];
      client.connection.bind('state_change', (c: { current: string }) => states.push(c.current));
      await sleep(1500);
      assert.deepEqual(states.filter((st) => st === 'connecting'), [], 'pusher-js did not try again after 4004');
      const scraped = parseExposition((await rawGet(s.url('/metrics'))).body);
      assert.equal(sampleValue(scraped, 'pws_limit_refusals_total', { app_id: APP.id, reason: 'connection_quota' }), 2);
    } finally {
      await s.stop();
    }
  });
});

describe('backend events', () => {
  test('events × channels are counted; over the limit the whole request gets 429 with Retry-After and X-RateLimit-*, nothing delivered; served again after Retry-After', async () => {
    const s = await startServer({ DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC: '5', METRICS_ENABLED: '1' });
    try {
      const client = s.client();
      await Promise.all(['a', 'b', 'c'].map((c) => subscribed(client, c)));
      const seen: string[] = [];
      for (const c of ['a', 'b', 'c']) client.channel(c).bind('e', (d: { n: number }) => seen.push(`${c}${d.n}`));

      assert.equal((await trigger(s, ['a', 'b', 'c'], '{"n":1}')).status, 200);
      const refused = await trigger(s, ['a', 'b', 'c'], '{"n":2}');
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.equal(refused.headers.get('x-ratelimit-limit'), '5');
      assert.equal(refused.headers.get('x-ratelimit-remaining'), '2');
      assert.match(refused.json.error, /^Rate limit reached: at most 5 events \(× channels\) triggered per second for this app \(backend_events\)/);
      const batch = await call(s, 'POST', '/batch_events', { batch: [1, 2, 3].map((n) => ({ name: 'e', channel: 'a', data: `{"n":${10 + n}}` })) });
      assert.equal(batch.status, 429, 'a batch of 3 events does not fit the 2 left');

      // A client that honours Retry-After is served.
      await sleep(Number(refused.headers.get('retry-after')) * 1000);
      assert.equal((await trigger(s, ['a', 'b', 'c'], '{"n":3}')).status, 200);
      await drained(client);
      assert.deepEqual(seen.sort(), ['a1', 'a3', 'b1', 'b3', 'c1', 'c3']);
      const scraped = parseExposition((await rawGet(s.url('/metrics'))).body);
      assert.equal(sampleValue(scraped, 'pws_limit_refusals_total', { app_id: APP.id, reason: 'backend_events' }), 2);
    } finally {
      await s.stop();
    }
  });

  test('the pusher SDK sees the 429 as an error with its status', async () => {
    const s = await startServer({ DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC: '1' });
    try {
      await s.sdk().trigger('x', 'e', {});
      await assert.rejects(s.sdk().trigger('x', 'e', {}), (err: { status: number }) => err.status === 429);
    } finally {
      await s.stop();
    }
  });
});

describe('read requests', () => {
  test('GET channels and users count per app: 429 over the limit, served again the next second', async () => {
    const s = await startServer({ DEFAULT_APP_MAX_READ_REQ_PER_SEC: '2' });
    try {
      assert.equal((await call(s, 'GET', '/channels')).status, 200);
      assert.equal((await call(s, 'GET', '/channels/presence-x/users')).status, 200);
      const refused = await call(s, 'GET', '/channels/x');
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get('x-ratelimit-limit'), '2');
      assert.equal(refused.headers.get('x-ratelimit-remaining'), '0');
      assert.match(refused.json.error, /\(read_requests\)/);
      // Writes are not reads.
      assert.equal((await trigger(s, ['x'])).status, 200);
      await sleep(1000 * Number(refused.headers.get('retry-after')));
      assert.equal((await call(s, 'GET', '/channels/x')).status, 200);
    } finally {
      await s.stop();
    }
  });
});

describe('client events', () => {
  test('over the per-socket rate the event is dropped and the sender gets pusher:error 4301; the socket stays open', async () => {
    const s = await startServer({ DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true', DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC: '2', METRICS_ENABLED: '1' });
    try {
      const sender = s.client();
      const receiver = s.client();
      await Promise.all([subscribed(sender, 'private-chat'), subscribed(receiver, 'private-chat')]);
      const got: number[] = [];
      receiver.channel('private-chat').bind('client-n', (d: { n: number }) => got.push(d.n));
      const errors: unknown[] = [];
      sender.connection.bind('error', (e: { data?: unknown }) => errors.push(e.data));
      for (const n of [1, 2, 3]) sender.channel('private-chat').trigger('client-n', { n });
      await drained(sender);
      await drained(receiver);
      assert.deepEqual(got, [1, 2]);
      assert.deepEqual(errors, [{ code: 4301, message: 'Client event rate limit reached: this event was dropped' }]);
      assert.equal(sender.connection.state, 'connected');
      // Another socket of the app has its own bucket.
      receiver.channel('private-chat').trigger('client-n', { n: 9 });
      await sleep(1000);
      sender.channel('private-chat').trigger('client-n', { n: 4 });
      await drained(sender);
      await drained(receiver);
      assert.deepEqual(got, [1, 2, 4]);
      const scraped = parseExposition((await rawGet(s.url('/metrics'))).body);
      assert.equal(sampleValue(scraped, 'pws_limit_refusals_total', { app_id: APP.id, reason: 'client_events' }), 1);
    } finally {
      await s.stop();
    }
  });
});

describe('limits shared by two nodes on Redis (RATE_LIMITER_DRIVER=redis)', { skip: redisSkip() }, () => {
  test('the app limit holds across nodes; with Redis gone each node falls back to its own bucket without hanging', async () => {
    const redis = await startRedis();
    const env = { ADAPTER_DRIVER: 'redis', RATE_LIMITER_DRIVER: 'redis', REDIS_URL: redis.url, ADAPTER_NODE_TIMEOUT: '5000', DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC: '4' };
    const a = await startServer(env);
    const b = await startServer(env);
    try {
      assert.equal((await trigger(a, ['x', 'y'])).status, 200);
      assert.equal((await trigger(b, ['x', 'y'])).status, 200);
      const refused = await trigger(a, ['x']);
      assert.equal(refused.status, 429, 'the other node used the app\'s tokens');
      assert.equal(refused.headers.get('x-ratelimit-remaining'), '0');
      await redis.kill();
      // Fail open: node a's own, full bucket.
      assert.equal((await trigger(a, ['x', 'y', 'z', 'w'])).status, 200);
      assert.equal((await trigger(a, ['x'])).status, 429);
    } finally {
      await a.stop();
      await b.stop();
      await redis.stop();
    }
  });
});

test('RATE_LIMITER_DRIVER=redis needs the Redis adapter', async () => {
  await assert.rejects(startServer({ RATE_LIMITER_DRIVER: 'redis' }), /RATE_LIMITER_DRIVER: redis needs ADAPTER_DRIVER=redis/);
});


describe('a limit of 0', () => {
  for (const driver of ['local', 'redis'] as const) {
    test(`refuses every REST call it counts, as a client-event limit of 0 refuses every event (RATE_LIMITER_DRIVER=${driver})`, { skip: driver === 'redis' && redisSkip() }, async () => {
      const redis = driver === 'redis' ? await startRedis() : null;
      const env: Record<string, string> = redis === null ? {} : { ADAPTER_DRIVER: 'redis', RATE_LIMITER_DRIVER: 'redis', REDIS_URL: redis.url };
      const s = await startServer({ ...env, DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC: '0', DEFAULT_APP_MAX_READ_REQ_PER_SEC: '0' });
      try {
        const triggered = await trigger(s, ['x']);
        assert.equal(triggered.status, 429);
        assert.equal(triggered.headers.get('x-ratelimit-limit'), '0');
        assert.equal(triggered.headers.get('x-ratelimit-remaining'), '0');
        assert.equal((await call(s, 'GET', '/channels')).status, 429);
        await sleep(1100);
        assert.equal((await trigger(s, ['x'])).status, 429, 'no refill makes room');
      } finally {
        await s.stop();
        await redis?.stop();
      }
    });
  }
});

describe('the Redis rate limiter and Redis\'s clock', { skip: redisSkip() }, () => {
  test('a step back of Redis\'s clock neither empties the bucket nor stops its refill', async () => {
    const redis = await startRedis();
    const prefix = `r${Math.random().toString(36).slice(2, 8)}`;
    const s = await startServer({ ADAPTER_DRIVER: 'redis', RATE_LIMITER_DRIVER: 'redis', REDIS_URL: redis.url, DB_REDIS_KEY_PREFIX: prefix, DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC: '10' });
    try {
      assert.equal((await trigger(s, ['x'])).status, 200);
      // What the bucket holds after Redis's TIME stepped back 60 s (an NTP step, a failover to a
      // replica whose clock is behind): a last use 60 s ahead of Redis's clock.
      const key = `${prefix}:{${APP.id}}:limit:backend_events`;
      const at = Number((await redis.cli('HGET', key, 'at')).trim());
      await redis.cli('HSET', key, 'at', String(at + 60000));
      const after = await trigger(s, ['x']);
      assert.equal(after.status, 200, `allowed after the step, got ${JSON.stringify(after.json)}`);
      assert.ok(Number(after.headers.get('x-ratelimit-remaining') ?? 0) >= 0);
      // Empty the bucket, then it refills at its rate from Redis's (stepped) clock.
      let refused = await trigger(s, ['x', 'y', 'z', 'w', 'v', 'u', 't', 's', 'r', 'q']);
      if (refused.status === 200) refused = await trigger(s, ['x', 'y', 'z', 'w', 'v', 'u', 't', 's', 'r', 'q']);
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get('retry-after'), '1', 'a second to refill, not the 60 s of the step');
      await sleep(1100);
      assert.equal((await trigger(s, ['x'])).status, 200, 'refilled a second later');
    } finally {
      await s.stop();
      await redis.stop();
    }
  });
});
