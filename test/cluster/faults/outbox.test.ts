// No silent loss of a frame for other nodes while Redis is away: the frames wait in order in the
// node's outbox and go out when Redis is back, before any newer one; a REST trigger the outbox
// cannot take is refused with 503 before it delivers anything, anywhere.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import type PusherJs from 'pusher-js';
import { APP, drained, eventually, startServer, subscribed, type TestServer } from '../../helpers/server';
import { redisSkip, startRedis, startRedisSentinel, type RedisInstance, type RedisSentinelInstance } from '../../helpers/redis';

const skip = redisSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Signs a request the way Pusher documents it. */
function signedPath(method: string, path: string, body: string): string {
  const query: Record<string, string> = { auth_key: APP.key, auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: '1.0' };
  query.body_md5 = createHash('md5').update(body).digest('hex');
  const sorted = Object.keys(query)
    .sort()
    .map((k) => `${k}=${query[k]}`)
    .join('&');
  const auth_signature = createHmac('sha256', APP.secret).update(`${method}\n${path}\n${sorted}`).digest('hex');
  return `${path}?${new URLSearchParams({ ...query, auth_signature })}`;
}

/** POST /apps/app-id/events with event `n`, data {i}; the answer's status, Retry-After and JSON body. */
async function trigger(node: TestServer, channel: string, i: number): Promise<{ status: number; retryAfter: string | null; body: any }> {
  const body = JSON.stringify({ name: 'n', channel, data: JSON.stringify({ i }) });
  const path = `/apps/${APP.id}/events`;
  const res = await fetch(node.url(signedPath('POST', path, body)), { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
}

/**
 * Triggers event `n` with data {i} on `channel` of `node` 50 times a second for `ms`, running
 * `during` (not awaited) once 1 s has passed; resolves with the `i` of the triggers answered 200.
 */
async function publishFor(node: TestServer, channel: string, ms: number, during: () => Promise<unknown>): Promise<number[]> {
  const acknowledged: number[] = [];
  const start = Date.now();
  let disruption: Promise<unknown> | null = null;
  for (let i = 0; Date.now() - start < ms; i++) {
    const due = start + i * 20;
    if (due > Date.now()) await sleep(due - Date.now());
    if (disruption === null && Date.now() - start >= 1000) disruption = during();
    if ((await trigger(node, channel, i)).status === 200) acknowledged.push(i);
  }
  await disruption;
  return acknowledged;
}

/**
 * Every acknowledged event reached `seen`, in order of their first arrival. Frames in flight as the
 * connection broke or the master changed are sent again, so some may repeat.
 */
async function allInOrder(client: PusherJs, seen: number[], acknowledged: number[]): Promise<void> {
  await eventually(() => new Set(seen).size >= acknowledged.length, 30000, `every acknowledged event on the other node`).catch((err: Error) => {
    const missing = acknowledged.filter((i) => !seen.includes(i));
    throw new Error(`${err.message}: ${missing.length} of ${acknowledged.length} missing: ${missing.join(' ')}`);
  });
  await drained(client);
  const firsts = seen.filter((i, k) => seen.indexOf(i) === k);
  assert.deepEqual(firsts, acknowledged, 'every acknowledged event, in order');
}

/** The `i` of every event `n` a client gets on `channel`. */
function collect(client: PusherJs, channel: string): number[] {
  const seen: number[] = [];
  client.channel(channel).bind('n', (data: { i: number }) => seen.push(data.i));
  return seen;
}

describe('the outbox for other nodes while Redis is away', { skip }, () => {
  let redis: RedisInstance;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  async function twoNodes(extra: Record<string, string> = {}): Promise<TestServer[]> {
    const env = { ADAPTER_DRIVER: 'redis', ADAPTER_NODE_TIMEOUT: '4000', REDIS_URL: redis.url, DB_REDIS_KEY_PREFIX: `o${Math.random().toString(36).slice(2, 8)}`, ...extra };
    return [await startServer(env), await startServer(env)];
  }

  test('Redis killed for 2 s and restarted while node A publishes 50 events/s: a subscriber on node B gets every event A acknowledged, in order', async () => {
    const [a, b] = await twoNodes({ METRICS_ENABLED: '1' });
    try {
      const onB = b.client();
      await subscribed(onB, 'orders');
      const seen = collect(onB, 'orders');
      const acknowledged = await publishFor(a, 'orders', 7000, async () => {
        await redis.kill();
        await sleep(2000);
        await redis.restart();
      });
      await allInOrder(onB, seen, acknowledged);
      assert.ok(acknowledged.length > 300, 'the node kept answering 200 while Redis was away');
    } finally {
      for (const node of [a, b]) await node.stop();
    }
  });

  test('a full outbox: a trigger answers 503 with Retry-After and a JSON error, and delivers nothing on any node', async () => {
    const [a, b] = await twoNodes({ ADAPTER_OUTBOX_MAX_FRAMES: '3' });
    try {
      const onA = a.client();
      const onB = b.client();
      await Promise.all([subscribed(onA, 'orders'), subscribed(onB, 'orders')]);
      const seenA = collect(onA, 'orders');
      const seenB = collect(onB, 'orders');
      await redis.kill();
      const acknowledged: number[] = [];
      let refused: Awaited<ReturnType<typeof trigger>> | null = null;
      let i = 0;
      for (; i < 50 && refused === null; i++) {
        const answer = await trigger(a, 'orders', i);
        if (answer.status === 200) acknowledged.push(i);
        else refused = answer;
        await sleep(20);
      }
      assert.ok(refused !== null, 'a trigger was refused');
      assert.equal(refused.status, 503);
      assert.ok(Number(refused.retryAfter) >= 1, `Retry-After: ${refused.retryAfter}`);
      assert.match(refused.body.error, /^Redis is unreachable and the frames waiting for the other nodes fill this node's outbox; nothing was delivered, retry after \d+ s$/);
      const refusedIndex = i - 1;
      await drained(onA);
      assert.deepEqual(seenA, acknowledged, 'node A delivered the acknowledged events only');

      await redis.restart();
      await eventually(() => seenB.length >= acknowledged.length, 30000, 'the acknowledged events on node B');
      await drained(onB);
      await drained(onA);
      assert.deepEqual(seenB, acknowledged);
      assert.ok(!seenA.includes(refusedIndex) && !seenB.includes(refusedIndex), 'the refused event reached nobody');
    } finally {
      for (const node of [a, b]) await node.stop();
      await redis.restart();
    }
  });
});

describe('the outbox through a Sentinel failover', { skip }, () => {
  let sentinel: RedisSentinelInstance;
  before(async () => {
    sentinel = await startRedisSentinel({ replicas: 1 });
  });
  after(async () => {
    await sentinel?.stop();
  });

  test('a failover while node A publishes 50 events/s: a subscriber on node B gets every event A acknowledged, in order', async () => {
    const env = {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: '4000',
      DB_REDIS_SENTINELS: sentinel.sentinels,
      DB_REDIS_SENTINEL_NAME: sentinel.name,
      DB_REDIS_KEY_PREFIX: `o${Math.random().toString(36).slice(2, 8)}`,
    };
    const a = await startServer(env);
    const b = await startServer(env).catch(async (err) => {
      await a.stop();
      throw err;
    });
    try {
      const onB = b.client();
      await subscribed(onB, 'orders');
      const seen = collect(onB, 'orders');
      let promoted = 0;
      const acknowledged = await publishFor(a, 'orders', 8000, async () => (promoted = await sentinel.failover()));
      assert.equal(promoted, sentinel.replicas[0].port);
      await allInOrder(onB, seen, acknowledged);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
