// Watchlist events across nodes on one real Redis: a user is online while it is signed in on some
// socket of some node. Initial states and changes cross nodes; a second tab on another node changes
// nothing; a node killed with SIGKILL is reaped and its users go offline exactly once; a node that
// was only slow, and every node after Redis restarts empty, close their connections and their
// users sign in again.
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import PusherJs from 'pusher-js';
import { APP, connected, drained, eventually, startServer, type TestServer } from '../helpers/server';
import { redisSkip, startRedis, type RedisInstance } from '../helpers/redis';
import { spawnNode } from '../helpers/nodes';

const skip = redisSkip();

interface WatchlistEvent {
  name: string;
  user_ids: string[];
}

const online = (...ids: string[]): WatchlistEvent => ({ name: 'online', user_ids: ids });
const offline = (...ids: string[]): WatchlistEvent => ({ name: 'offline', user_ids: ids });

/** A pusher-js client on the node at `port`, signed in as `user` with a signature from `signer`'s SDK, with the watchlist events it got. */
async function signedIn(port: number, signer: TestServer, user: { id: string; watchlist?: string[] }): Promise<{ client: PusherJs; events: WatchlistEvent[] }> {
  const sdk = signer.sdk();
  const client = new PusherJs(signer.options.apps[0].key, {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    userAuthentication: {
      customHandler: ({ socketId }: { socketId: string }, callback: (err: Error | null, data: unknown) => void) => callback(null, sdk.authenticateUser(socketId, user)),
    } as never,
  });
  const events: WatchlistEvent[] = [];
  client.user.watchlist.bind('online', (e: WatchlistEvent) => events.push(e));
  client.user.watchlist.bind('offline', (e: WatchlistEvent) => events.push(e));
  await connected(client);
  client.signin();
  await eventually(() => client.user.user_data !== null, 10000, `sign-in of ${user.id}`);
  return { client, events };
}

describe('watchlist events in a cluster on one Redis', { skip }, () => {
  let redis: RedisInstance;
  const opened: PusherJs[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  function clusterEnv(): Record<string, string> {
    return {
      ADAPTER_DRIVER: 'redis',
      ADAPTER_NODE_TIMEOUT: '1000',
      REDIS_URL: redis.url,
      DB_REDIS_KEY_PREFIX: `w${Math.random().toString(36).slice(2, 8)}`,
      DEFAULT_APP_ENABLE_WATCHLIST_EVENTS: 'true',
    };
  }

  async function client(port: number, signer: TestServer, user: { id: string; watchlist?: string[] }) {
    const c = await signedIn(port, signer, user);
    opened.push(c.client);
    return c;
  }

  /**
   * On how many nodes Redis has the user signed in. A sign-in is confirmed before its node has
   * recorded it in Redis, so a step that depends on the record waits for it.
   */
  async function nodesOf(env: Record<string, string>, userId: string): Promise<number> {
    return Number((await redis.cli('HGET', `${env.DB_REDIS_KEY_PREFIX}:{${APP.id}}:online`, userId)).trim() || 0);
  }

  async function stop(...servers: TestServer[]): Promise<void> {
    for (const c of opened.splice(0)) c.disconnect();
    for (const s of servers) await s.stop();
  }

  test('initial states and changes cross nodes; a second tab on another node changes nothing; the last tab closing sends offline', async () => {
    const env = clusterEnv();
    const a = await startServer(env);
    const b = await startServer(env);
    try {
      const bobOnB = await client(b.port, b, { id: 'bob' });
      await eventually(async () => (await nodesOf(env, 'bob')) === 1, 10000, 'bob recorded');
      const ann = await client(a.port, a, { id: 'ann', watchlist: ['bob', 'zed'] });
      await eventually(() => ann.events.length === 2, 10000, 'the initial state');
      assert.deepEqual(ann.events.splice(0), [online('bob'), offline('zed')], 'bob, signed in on the other node, is online');

      // zed, signed in and out on node b after each step there, marks where bob's change would have come.
      const bobOnA = await client(a.port, a, { id: 'bob' });
      await eventually(async () => (await nodesOf(env, 'bob')) === 2, 10000, 'bob recorded on both nodes');
      bobOnB.client.disconnect();
      await eventually(async () => (await nodesOf(env, 'bob')) === 1, 10000, 'bob recorded on node a only');
      const zed = await client(b.port, b, { id: 'zed' });
      await eventually(() => ann.events.length === 1, 10000, 'zed online');
      assert.deepEqual(ann.events.splice(0), [online('zed')], 'bob stays online: a tab on node a took over from the one on node b');

      zed.client.disconnect();
      await eventually(() => ann.events.length === 1, 10000, 'zed offline');
      assert.deepEqual(ann.events.splice(0), [offline('zed')]);
      bobOnA.client.disconnect();
      await eventually(() => ann.events.length === 1, 10000, 'bob offline');
      assert.deepEqual(ann.events.splice(0), [offline('bob')]);

      // A watcher on node b learns of a user who signs in on node a.
      const amy = await client(b.port, b, { id: 'amy', watchlist: ['cat'] });
      await eventually(() => amy.events.length === 1, 10000, 'amy\'s initial state');
      await client(a.port, a, { id: 'cat' });
      await eventually(() => amy.events.length === 2, 10000, 'cat online');
      assert.deepEqual(amy.events, [offline('cat'), online('cat')]);
      await Promise.all([drained(ann.client), drained(amy.client)]);
      assert.deepEqual(ann.events, []);
    } finally {
      await stop(a, b);
    }
  });

  test('a node killed with SIGKILL is reaped: its users go offline once, for watchers on the survivors', async () => {
    const env = clusterEnv();
    const survivor = await startServer(env);
    const doomed = await spawnNode(env);
    try {
      const ann = await client(survivor.port, survivor, { id: 'ann', watchlist: ['ghost', 'bob'] });
      await eventually(() => ann.events.length === 1, 10000, 'the initial state');
      assert.deepEqual(ann.events.splice(0), [offline('ghost', 'bob')]);
      const ghost = await client(doomed.port, survivor, { id: 'ghost' });
      await eventually(() => ann.events.length === 1, 10000, 'ghost online');
      // bob has a tab on each node: the survivor's keeps him online.
      await client(doomed.port, survivor, { id: 'bob' });
      await eventually(() => ann.events.length === 2, 10000, 'bob online');
      await client(survivor.port, survivor, { id: 'bob' });
      await eventually(async () => (await nodesOf(env, 'bob')) === 2, 10000, 'bob recorded on both nodes');
      assert.deepEqual(ann.events.splice(0), [online('ghost'), online('bob')]);

      await doomed.kill();
      ghost.client.disconnect();
      await eventually(() => ann.events.length === 1, 15000, 'ghost offline once the dead node is reaped');
      assert.deepEqual(ann.events, [offline('ghost')]);
      await new Promise((r) => setTimeout(r, 1500));
      await drained(ann.client);
      assert.deepEqual(ann.events, [offline('ghost')], 'exactly once, and bob still online');
    } finally {
      await stop(survivor);
      await doomed.stop().catch(() => undefined);
    }
  });

  test('a node that was only slow is reaped, then fences: its users go offline, then online again as they sign in again', async () => {
    const env = clusterEnv();
    const survivor = await startServer(env);
    const slow = await spawnNode(env);
    try {
      const ann = await client(survivor.port, survivor, { id: 'ann', watchlist: ['sleepy'] });
      await client(slow.port, survivor, { id: 'sleepy' });
      await eventually(() => ann.events.some((e) => e.name === 'online'), 10000, 'sleepy online');
      process.kill(slow.pid, 'SIGSTOP');
      try {
        await eventually(() => ann.events.length === 3, 15000, 'sleepy offline once the stopped node is reaped');
      } finally {
        process.kill(slow.pid, 'SIGCONT');
      }
      await eventually(() => ann.events.length === 4, 15000, 'sleepy online again once it signed in again');
      assert.deepEqual(ann.events, [offline('sleepy'), online('sleepy'), offline('sleepy'), online('sleepy')]);
      assert.equal(await nodesOf(env, 'sleepy'), 1);
    } finally {
      await stop(survivor);
      await slow.stop().catch(() => undefined);
    }
  });

  test('after Redis restarts empty, each node fences and its signed-in users are online again', async () => {
    const local = await startRedis();
    const env = { ...clusterEnv(), REDIS_URL: local.url };
    const a = await startServer(env);
    const b = await startServer(env);
    try {
      await client(a.port, a, { id: 'bob' });
      await local.restart();
      // A new watcher on the other node sees bob online once node a fenced and bob signed in again.
      await eventually(
        async () => {
          const amy = await signedIn(b.port, b, { id: 'amy', watchlist: ['bob'] });
          await eventually(() => amy.events.length > 0, 10000, 'amy\'s initial state');
          amy.client.disconnect();
          return amy.events[0].name === 'online';
        },
        20000,
        'bob online again in Redis',
      );
    } finally {
      await stop(a, b);
      await local.stop();
    }
  });
});
