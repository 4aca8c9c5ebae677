// The cluster's membership under faults, asserted on what users see: every pusher-js client's
// presence list, the REST listings and the webhooks received. A node paused past the node timeout
// and resumed, a node killed, Redis down past it and restarted empty while a user leaves, Redis
// frozen past it, Redis loading an older snapshot, and a heartbeat run longer than the timeout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher';
import type PusherJs from 'pusher-js';
import { APP, drained, eventually, startServer, subscribed } from '../../helpers/server';
import { redisSkip, startRedis, type RedisInstance } from '../../helpers/redis';
import { presenceClient, spawnNode } from '../../helpers/nodes';
import { parseExposition, rawGet, sampleValue } from '../../helpers/exposition';
import { WebhookReceiver } from '../../helpers/webhook-receiver';
import { HOLD_BACK_MS } from '../../../src/webhooks/hold-back';

const skip = redisSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The backend SDK, calling the node at `port`. */
function sdkOn(port: number): Pusher {
  return new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(port), useTLS: false });
}

/** A pusher-js client of user `userId` on the node at `port` (which may run in another process). */
function clientOn(port: number, userId: string): PusherJs {
  return presenceClient(port, sdkOn(port), userId);
}

/** The user ids a pusher-js client shows as members of `channel` (null until it is subscribed). */
function shown(client: PusherJs, channel: string): string | null {
  const ch = client.channel(channel) as unknown as { subscribed: boolean; members: { members: Record<string, unknown> } } | undefined;
  return ch?.subscribed ? Object.keys(ch.members.members).sort().join() : null;
}

async function listed(port: number, channel: string): Promise<string> {
  const body = (await (await sdkOn(port).get({ path: `/channels/${channel}/users` })).json()) as { users: { id: string }[] };
  return body.users.map((u) => u.id).sort().join();
}

/** Waits until `/users` is `expected` and every client shows exactly that list. */
async function agree(port: number, clients: PusherJs[], channel: string, expected: string[], timeoutMs: number): Promise<void> {
  const want = [...expected].sort().join();
  let last = '';
  await eventually(
    async () => {
      const users = await listed(port, channel).catch((err) => `error ${err?.status}`);
      const views = clients.map((c) => shown(c, channel));
      last = `/users ${users}; clients ${JSON.stringify(views)}`;
      return users === want && views.every((v) => v === want);
    },
    timeoutMs,
    `every client and /users to agree on ${want} (last: ${last})`,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}; last seen ${last}`);
  });
}

/** The member webhooks of `channel`, per user, in arrival order. */
function memberHooks(receiver: WebhookReceiver, channel: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of receiver.events()) {
    if (e.channel !== channel || (e.name !== 'member_added' && e.name !== 'member_removed')) continue;
    if (!out.has(e.user_id)) out.set(e.user_id, []);
    out.get(e.user_id)!.push(e.name);
  }
  return out;
}

/** Each user's last member webhook says what /users says. */
function assertHooksEndAt(receiver: WebhookReceiver, channel: string, present: string[], gone: string[]): void {
  const hooks = memberHooks(receiver, channel);
  for (const user of present) assert.equal(hooks.get(user)?.at(-1), 'member_added', `${user} present: ${JSON.stringify(hooks.get(user))}`);
  for (const user of gone) assert.equal(hooks.get(user)?.at(-1), 'member_removed', `${user} gone: ${JSON.stringify(hooks.get(user))}`);
}

async function redisPid(redis: RedisInstance): Promise<number> {
  return Number(/process_id:(\d+)/.exec(await redis.cli('INFO', 'server'))![1]);
}

describe('membership of a cluster under faults', { skip }, () => {
  let redis: RedisInstance;
  let receiver: WebhookReceiver;
  const opened: PusherJs[] = [];
  before(async () => {
    redis = await startRedis();
    receiver = await WebhookReceiver.start();
  });
  after(async () => {
    await receiver?.close();
    await redis?.stop();
  });

  function clusterEnv(timeoutMs: number, url = redis.url): Record<string, string> {
    return {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: String(timeoutMs),
      REDIS_URL: url,
      DB_REDIS_KEY_PREFIX: `m${Math.random().toString(36).slice(2, 8)}`,
      DEFAULT_APP_WEBHOOKS: JSON.stringify([{ url: receiver.url(), event_types: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed'] }]),
    };
  }

  function open(client: PusherJs): PusherJs {
    opened.push(client);
    return client;
  }

  function closeClients(): void {
    for (const c of opened.splice(0)) c.disconnect();
  }

  test('a node paused past the node timeout and resumed: its clients rejoin, and every client and /users agree', async () => {
    receiver.requests.length = 0;
    const env = clusterEnv(1000);
    const survivor = await startServer(env);
    const slow = await spawnNode({ ...env, METRICS_ENABLED: '1' });
    try {
      const watcher = open(survivor.client({ presence: { user_id: 'watcher' } }));
      const sleepy = open(clientOn(slow.port, 'sleepy'));
      const sleepy2 = open(clientOn(slow.port, 'sleepy2'));
      for (const c of [watcher, sleepy, sleepy2]) await subscribed(c, 'presence-room');
      const clients = [watcher, sleepy, sleepy2];
      await agree(survivor.port, clients, 'presence-room', ['watcher', 'sleepy', 'sleepy2'], 10000);

      process.kill(slow.pid, 'SIGSTOP');
      try {
        // The survivor reaps the paused node: its users are gone for everybody.
        await eventually(() => shown(watcher, 'presence-room') === 'watcher', 15000, 'the paused node reaped');
      } finally {
        process.kill(slow.pid, 'SIGCONT');
      }
      await agree(survivor.port, clients, 'presence-room', ['watcher', 'sleepy', 'sleepy2'], 20000);
      // Settled: no late edge undoes it.
      await sleep(2500);
      await Promise.all(clients.map((c) => drained(c)));
      await agree(survivor.port, clients, 'presence-room', ['watcher', 'sleepy', 'sleepy2'], 1000);
      await eventually(() => memberHooks(receiver, 'presence-room').get('sleepy')?.at(-1) === 'member_added', HOLD_BACK_MS + 15000, 'webhooks settled');
      assertHooksEndAt(receiver, 'presence-room', ['watcher', 'sleepy', 'sleepy2'], []);
      assert.equal(sampleValue(parseExposition((await rawGet(slow.url('/metrics'))).body), 'pws_cluster_fences_total'), 1);
      assert.match(slow.output(), /found its heartbeat key gone; .* closes its connections \(4200/);
    } finally {
      closeClients();
      await survivor.stop();
      await slow.stop().catch(() => undefined);
    }
  });

  test('a node killed with SIGKILL: its users removed once on every client, in /users and by webhook', async () => {
    receiver.requests.length = 0;
    const env = clusterEnv(1000);
    const survivor = await startServer(env);
    const doomed = await spawnNode(env);
    try {
      const watcher = open(survivor.client({ presence: { user_id: 'watcher' } }));
      await subscribed(watcher, 'presence-dead');
      const removed: unknown[] = [];
      watcher.channel('presence-dead').bind('pusher:member_removed', (m: unknown) => removed.push(m));
      const ghost = open(clientOn(doomed.port, 'ghost'));
      await subscribed(ghost, 'presence-dead');
      await agree(survivor.port, [watcher, ghost], 'presence-dead', ['watcher', 'ghost'], 10000);
      // Webhooks queued on a node that is killed are lost: let it send its member_added first.
      await eventually(() => memberHooks(receiver, 'presence-dead').get('ghost')?.length === 1, 15000, 'member_added webhook');
      await doomed.kill();
      await agree(survivor.port, [watcher], 'presence-dead', ['watcher'], 15000);
      await eventually(() => memberHooks(receiver, 'presence-dead').get('ghost')?.at(-1) === 'member_removed', HOLD_BACK_MS + 15000, 'member_removed webhook');
      await sleep(1500);
      await drained(watcher);
      assert.deepEqual(removed, [{ id: 'ghost', info: null }]);
      assert.deepEqual(memberHooks(receiver, 'presence-dead').get('ghost'), ['member_added', 'member_removed']);
    } finally {
      closeClients();
      await survivor.stop();
      await doomed.stop().catch(() => undefined);
    }
  });

  test('Redis down past the node timeout, restarted empty, a user leaving meanwhile: every client and /users agree afterwards', async () => {
    receiver.requests.length = 0;
    const local = await startRedis();
    const env = clusterEnv(1000, local.url);
    const a = await startServer(env);
    const b = await startServer(env);
    try {
      const watcher = open(a.client({ presence: { user_id: 'watcher' } }));
      const ann = open(b.client({ presence: { user_id: 'ann' } }));
      const bob = open(b.client({ presence: { user_id: 'bob' } }));
      for (const c of [watcher, ann, bob]) await subscribed(c, 'presence-live');
      await agree(a.port, [watcher, ann, bob], 'presence-live', ['watcher', 'ann', 'bob'], 10000);
      await local.kill();
      // Node b decides bob's leave alone: node a never hears of it.
      bob.disconnect();
      // Down for longer than the node timeout: every heartbeat key is gone when Redis is back.
      await sleep(2500);
      await local.restart();
      await agree(a.port, [watcher, ann], 'presence-live', ['watcher', 'ann'], 30000);
      await sleep(2500);
      await agree(b.port, [watcher, ann], 'presence-live', ['watcher', 'ann'], 1000);
      await eventually(() => memberHooks(receiver, 'presence-live').get('ann')?.at(-1) === 'member_added', HOLD_BACK_MS + 15000, 'webhooks settled');
      assertHooksEndAt(receiver, 'presence-live', ['watcher', 'ann'], ['bob']);
    } finally {
      closeClients();
      await a.stop();
      await b.stop();
      await local.stop();
    }
  });

  test('Redis frozen past the node timeout: afterwards every client and /users agree', async () => {
    receiver.requests.length = 0;
    const env = clusterEnv(1000);
    const a = await spawnNode(env);
    const b = await spawnNode(env);
    try {
      const clients = ['u1', 'u2', 'u3', 'u4'].map((user, i) => open(clientOn(i % 2 === 0 ? a.port : b.port, user)));
      for (const c of clients) await subscribed(c, 'presence-frozen');
      const everyone = ['u1', 'u2', 'u3', 'u4'];
      await agree(a.port, clients, 'presence-frozen', everyone, 10000);
      const pid = await redisPid(redis);
      for (let round = 0; round < 3; round++) {
        process.kill(pid, 'SIGSTOP');
        await sleep(2500);
        process.kill(pid, 'SIGCONT');
        await agree(a.port, clients, 'presence-frozen', everyone, 30000);
      }
      await sleep(2500);
      await agree(a.port, clients, 'presence-frozen', everyone, 1000);
    } finally {
      closeClients();
      await a.stop().catch(() => undefined);
      await b.stop().catch(() => undefined);
    }
  });

  test('Redis stalled longer than a call\'s bound but shorter than the node timeout: no node fences, no client reconnects', async () => {
    receiver.requests.length = 0;
    const env = clusterEnv(8000);
    const a = await spawnNode(env);
    const b = await spawnNode(env);
    try {
      const clients = ['s1', 's2'].map((user, i) => open(clientOn(i === 0 ? a.port : b.port, user)));
      for (const c of clients) await subscribed(c, 'presence-stall');
      await agree(a.port, clients, 'presence-stall', ['s1', 's2'], 10000);
      const ids = clients.map((c) => c.connection.socket_id);
      const pid = await redisPid(redis);
      // Renewals sent during the stall give up after 2 s, and Redis runs them when it resumes.
      process.kill(pid, 'SIGSTOP');
      await sleep(3500);
      process.kill(pid, 'SIGCONT');
      await sleep(6000);
      for (const node of [a, b]) assert.doesNotMatch(node.output(), /closes its connections/, node.output());
      assert.deepEqual(clients.map((c) => c.connection.socket_id), ids, 'the same connections');
      await agree(a.port, clients, 'presence-stall', ['s1', 's2'], 10000);
    } finally {
      closeClients();
      await a.stop().catch(() => undefined);
      await b.stop().catch(() => undefined);
    }
  });

  test('a reaped node brought back by Redis loading an older snapshot: its users removed again for clients, not for webhooks', async () => {
    receiver.requests.length = 0;
    const local = await startRedis({ args: ['--enable-debug-command', 'yes'] });
    const env = clusterEnv(1000, local.url);
    const survivor = await startServer(env);
    const doomed = await spawnNode(env);
    try {
      const watcher = open(survivor.client({ presence: { user_id: 'watcher' } }));
      await subscribed(watcher, 'presence-again');
      const ghost = open(clientOn(doomed.port, 'ghost'));
      await subscribed(ghost, 'presence-again');
      await agree(survivor.port, [watcher, ghost], 'presence-again', ['watcher', 'ghost'], 10000);
      await eventually(() => memberHooks(receiver, 'presence-again').get('ghost')?.length === 1, 15000, 'member_added webhook');
      await local.cli('SAVE');
      await doomed.kill();
      await agree(survivor.port, [watcher], 'presence-again', ['watcher'], 15000);
      await eventually(() => memberHooks(receiver, 'presence-again').get('ghost')?.at(-1) === 'member_removed', HOLD_BACK_MS + 15000, 'member_removed webhook');
      // Redis goes back to the snapshot: the dead node and its entries are back.
      assert.match(await local.cli('DEBUG', 'RELOAD', 'NOSAVE'), /OK/);
      await agree(survivor.port, [watcher], 'presence-again', ['watcher'], 20000);
      await sleep(HOLD_BACK_MS + 2000);
      await agree(survivor.port, [watcher], 'presence-again', ['watcher'], 1000);
      assert.deepEqual(memberHooks(receiver, 'presence-again').get('ghost'), ['member_added', 'member_removed']);
    } finally {
      closeClients();
      await survivor.stop();
      await doomed.stop().catch(() => undefined);
      await local.stop();
    }
  });

  test('a heartbeat run longer than the node timeout does not get a live node reaped', async () => {
    receiver.requests.length = 0;
    const env = clusterEnv(1000);
    // Many live peers make every run long: each one's key is checked in turn.
    await redis.cli(
      'EVAL',
      "for i = 1, 30000 do redis.call('SET', ARGV[1] .. ':node:peer' .. i, '1', 'PX', 600000) redis.call('SADD', ARGV[1] .. ':nodes', 'peer' .. i) end return 1",
      '0',
      env.DB_REDIS_KEY_PREFIX,
    );
    const a = await startServer(env);
    const b = await spawnNode(env);
    try {
      const watcher = open(a.client({ presence: { user_id: 'watcher' } }));
      const other = open(clientOn(b.port, 'other'));
      await subscribed(watcher, 'presence-busy');
      await subscribed(other, 'presence-busy');
      const removed: unknown[] = [];
      watcher.channel('presence-busy').bind('pusher:member_removed', (m: unknown) => removed.push(m));
      await agree(a.port, [watcher, other], 'presence-busy', ['watcher', 'other'], 10000);
      await sleep(8000);
      await drained(watcher);
      assert.deepEqual(removed, [], 'nobody was reaped');
      await agree(a.port, [watcher, other], 'presence-busy', ['watcher', 'other'], 1000);
    } finally {
      closeClients();
      await a.stop();
      await b.stop().catch(() => undefined);
    }
  });
});
