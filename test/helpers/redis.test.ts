// Self-test of the Redis and pws-server node helpers: a real redis-server (standalone and a
// three-master cluster) driven with the `redis` package, and pws-server child processes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createClient, createCluster } from 'redis';
import { redisSkip, startRedis, startRedisCluster } from './redis';
import { spawnNode } from './nodes';

const skip = redisSkip();

/** Rejects if `promise` has not settled within `ms` (a liveness guard, not a speed assertion). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A client that gives up at once when the server is unreachable (no reconnect loop). */
function oneShotClient(url: string) {
  const client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 5000 } });
  client.on('error', () => {
    /* reported through the rejected command or connect() */
  });
  return client;
}

test('startRedis: SET/GET through the redis package, cli(), restart() empties it on the same port, kill() makes it unreachable', { skip, timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`);

  const client = oneShotClient(redis.url);
  await client.connect();
  try {
    assert.equal(await client.set('greeting', 'hello'), 'OK');
    assert.equal(await client.get('greeting'), 'hello');
  } finally {
    client.destroy();
  }
  assert.equal(await redis.cli('GET', 'greeting'), 'hello\n');
  assert.equal((await redis.cli('CONFIG', 'GET', 'save')).trim(), 'save');
  assert.equal((await redis.cli('CONFIG', 'GET', 'appendonly')).trim(), 'appendonly\nno');

  await redis.restart();
  assert.equal((await redis.cli('PING')).trim(), 'PONG');
  assert.equal((await redis.cli('DBSIZE')).trim(), '0');
  const again = oneShotClient(redis.url);
  await again.connect();
  try {
    assert.equal(await again.get('greeting'), null);
    await again.set('greeting', 'second run');
  } finally {
    again.destroy();
  }

  await redis.kill();
  await assert.rejects(redis.cli('PING'), /redis-cli/);
  const refused = oneShotClient(redis.url);
  await assert.rejects(refused.connect());
  refused.destroy();

  // restart() after kill() brings it back, empty, on the same port.
  await redis.restart();
  assert.equal((await redis.cli('GET', 'greeting')).trim(), '');
  assert.equal((await redis.cli('DBSIZE')).trim(), '0');

  await redis.stop();
  await assert.rejects(redis.cli('PING'), /redis-cli/);
  await redis.stop(); // idempotent
});

test('startRedisCluster: three masters, SET/GET on keys of every shard, SPUBLISH/SSUBSCRIBE delivers', { skip, timeout: 120_000 }, async (t) => {
  const cluster = await startRedisCluster();
  t.after(() => cluster.stop());
  assert.equal(cluster.ports.length, 3);
  assert.equal(new Set(cluster.ports).size, 3);
  for (const p of cluster.ports) {
    assert.ok(p + 10000 <= 65535, `bus port of ${p}`);
    assert.match(await cluster.cli(p, 'CLUSTER', 'INFO'), /cluster_state:ok/);
  }
  assert.deepEqual(cluster.rootNodes, cluster.ports.map((p) => ({ url: `redis://127.0.0.1:${p}` })));

  const client = createCluster({ rootNodes: cluster.rootNodes });
  client.on('error', () => {
    /* reported through the rejected command */
  });
  await client.connect();
  const subscriber = createCluster({ rootNodes: [cluster.rootNodes[1]] });
  subscriber.on('error', () => {
    /* reported through the rejected command */
  });
  await subscriber.connect();
  t.after(() => {
    client.destroy();
    subscriber.destroy();
  });

  // 30 keys: the slot assignment of --cluster create is fixed, so every master gets some.
  const keys = Array.from({ length: 30 }, (_, i) => `key:${i}`);
  for (const k of keys) assert.equal(await client.set(k, `value of ${k}`), 'OK');
  for (const k of keys) assert.equal(await client.get(k), `value of ${k}`);
  const sizes = await Promise.all(cluster.ports.map(async (p) => Number((await cluster.cli(p, 'DBSIZE')).trim())));
  assert.equal(sizes.reduce((a, b) => a + b, 0), keys.length);
  for (const [i, n] of sizes.entries()) assert.ok(n > 0, `master ${cluster.ports[i]} holds no key: ${sizes}`);
  // Without -c, a node answers MOVED for a key it does not own.
  const moved = await Promise.all(cluster.ports.map((p) => cluster.cli(p, 'GET', 'key:0')));
  assert.equal(moved.filter((out) => /MOVED/.test(out)).length, 2, moved.join(''));

  // Sharded pub/sub on two channels (in different slots).
  const channels = ['pws:app-1:presence-room', 'pws:app-1:private-other'];
  const slots = await Promise.all(channels.map(async (c) => (await cluster.cli(cluster.ports[0], 'CLUSTER', 'KEYSLOT', c)).trim()));
  assert.notEqual(slots[0], slots[1]);
  for (const channel of channels) {
    const got = new Promise<string>((resolve) => {
      void subscriber.sSubscribe(channel, (message, ch) => {
        if (ch === channel) resolve(message);
      });
    });
    // SSUBSCRIBE is acknowledged before sPublish resolves only if we wait for it: poll the receiver count.
    let receivers = 0;
    const deadline = Date.now() + 20_000;
    while (receivers === 0 && Date.now() < deadline) {
      receivers = await client.sPublish(channel, `probe for ${channel}`);
      if (receivers === 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(receivers, 1, `SSUBSCRIBE ${channel} never took effect`);
    assert.equal(await within(got, 20_000, `a message on ${channel}`), `probe for ${channel}`);
    await subscriber.sUnsubscribe(channel);
  }

  await cluster.stop();
  for (const p of cluster.ports) await assert.rejects(cluster.cli(p, 'PING'), /redis-cli/);
});

test('spawnNode: the default server answers GET / with 200 OK, and stop() exits 0', { timeout: 60_000 }, async (t) => {
  const node = await spawnNode({});
  t.after(() => node.kill());
  assert.equal(node.env.HOST, '127.0.0.1');
  assert.equal(node.env.PORT, String(node.port));
  assert.equal(node.env.SHUTDOWN_GRACE_PERIOD, '0');
  const res = await fetch(node.url('/'));
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'OK');
  assert.match(node.output(), new RegExp(`listening on http/ws://127\\.0\\.0\\.1:${node.port}`));

  const exit = await node.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.deepEqual(await node.exited, exit);
  await assert.rejects(fetch(node.url('/')));
  assert.deepEqual(await node.stop(), exit); // idempotent
});

test('spawnNode: kill() ends a node with SIGKILL; a node that cannot start rejects with its output', { timeout: 60_000 }, async (t) => {
  const node = await spawnNode({ SHUTDOWN_GRACE_PERIOD: '5000' });
  t.after(() => node.kill());
  assert.equal(node.env.SHUTDOWN_GRACE_PERIOD, '5000');
  assert.deepEqual(await node.kill(), { code: null, signal: 'SIGKILL' });

  // A bad option: the node exits with a one-line error, which the rejection carries.
  await assert.rejects(spawnNode({ SHUTDOWN_GRACE_PERIOD: 'soon' }), /exited \(code 1, signal null\)[\s\S]*SHUTDOWN_GRACE_PERIOD/);

  // Nodes started together get distinct ports; spawnNode(node.env) starts a stopped one again on its port.
  const [a, b] = await Promise.all([spawnNode({}), spawnNode({})]);
  t.after(() => Promise.all([a.kill(), b.kill()]));
  assert.notEqual(a.port, b.port);
  assert.deepEqual(await a.stop(), { code: 0, signal: null });
  const again = await spawnNode(a.env);
  t.after(() => again.kill());
  assert.equal(again.port, a.port);
  assert.equal((await fetch(again.url('/'))).status, 200);
  assert.deepEqual(await again.stop(), { code: 0, signal: null });
  assert.deepEqual(await b.stop(), { code: 0, signal: null });
});
