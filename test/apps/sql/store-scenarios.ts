// The app store's behaviour, the same on PostgreSQL and MariaDB: each test file runs these against
// its own real database server, with real pws-server processes, pusher-js and the `pusher` SDK.
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher';
import PusherJs from 'pusher-js';
import type { SqlInstance } from '../../helpers/databases';
import { parseExposition, sampleValue } from '../../helpers/exposition';
import { BIN, spawnNode, type PwsNode } from '../../helpers/nodes';
import { startRedis, type RedisInstance } from '../../helpers/redis';
import { RawSocket, connected, eventually, nextEvent, subscribed } from '../../helpers/server';
import { sleep } from '../../helpers/services';

export interface StoreKind {
  name: 'postgres' | 'mysql';
  skip: () => string | false;
  start: () => Promise<SqlInstance>;
  /** soketi's own CREATE TABLE for this database, as its docs give it. */
  peerSchema: string;
  /** A row for soketi's schema: id, key, secret, then its NOT NULL columns. */
  insertPeerRow: (id: string, key: string, secret: string) => string;
  /** Changes reach another node without Redis (PostgreSQL's NOTIFY); MySQL needs Redis for that. */
  announcesItself: boolean;
}

interface Creds {
  id: string;
  key: string;
  secret: string;
}

/** Runs `pws-server apps …` against the store; its stdout parsed as key=value lines. */
function appsCli(env: Record<string, string>, ...args: string[]): Promise<Record<string, string> & { stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, 'apps', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`pws-server apps ${args.join(' ')} failed: ${stderr || err.message}`));
      const out: Record<string, string> & { stdout: string } = { stdout };
      for (const line of stdout.split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
      }
      resolve(out);
    });
  });
}

function client(node: PwsNode, creds: Creds): PusherJs {
  return new PusherJs(creds.key, { cluster: 'local', wsHost: '127.0.0.1', wsPort: node.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true });
}

function sdk(node: PwsNode, creds: Creds): Pusher {
  return new Pusher({ appId: creds.id, key: creds.key, secret: creds.secret, host: '127.0.0.1', port: String(node.port), useTLS: false });
}

async function raw(node: PwsNode, key: string): Promise<RawSocket> {
  return RawSocket.connect(`ws://127.0.0.1:${node.port}/app/${key}?protocol=7&client=js&version=8.6.0`);
}

async function metrics(node: PwsNode): Promise<ReturnType<typeof parseExposition>> {
  return parseExposition(Buffer.from(await (await fetch(node.url('/metrics'))).arrayBuffer()));
}

/** A REST trigger signed with `creds`; the status code. */
async function triggerStatus(node: PwsNode, creds: Creds): Promise<number> {
  try {
    await sdk(node, creds).trigger('c', 'e', {});
    return 200;
  } catch (err) {
    return (err as { status?: number }).status ?? 0;
  }
}

export function describeStore(kind: StoreKind): void {
  describe(`apps from ${kind.name}`, { skip: kind.skip(), timeout: 120_000 }, () => {
    let db: SqlInstance;
    let redis: RedisInstance | null = null;
    let env: Record<string, string>;
    const nodes: PwsNode[] = [];
    const clients: PusherJs[] = [];
    const sockets: RawSocket[] = [];

    const node = async (extra: Record<string, string> = {}) => {
      const n = await spawnNode({ ...env, METRICS_ENABLED: '1', ...extra });
      nodes.push(n);
      return n;
    };
    const pusherClient = (n: PwsNode, creds: Creds) => {
      const c = client(n, creds);
      clients.push(c);
      return c;
    };
    const rawSocket = async (n: PwsNode, key: string) => {
      const s = await raw(n, key);
      sockets.push(s);
      return s;
    };

    before(async () => {
      db = await kind.start();
      env = { APP_MANAGER_DRIVER: kind.name, APP_MANAGER_CACHE_TTL: '1', ...db.env() };
      if (!kind.announcesItself) {
        redis = await startRedis();
        env = { ...env, ADAPTER_DRIVER: 'redis', DB_REDIS_PORT: String(redis.port) };
      }
    });

    after(async () => {
      for (const c of clients) c.disconnect();
      for (const s of sockets) s.close();
      for (const n of nodes) await n.stop().catch(() => undefined);
      await redis?.stop();
      await db?.stop();
    });

    test("soketi's apps table as it is: an app in it connects, subscribes and gets the SDK's events", async () => {
      await db.query(kind.peerSchema);
      await db.query(kind.insertPeerRow('peer-id', 'peer-key', 'peer-secret'));
      const n = await node();
      const creds = { id: 'peer-id', key: 'peer-key', secret: 'peer-secret' };
      const c = pusherClient(n, creds);
      await connected(c);
      await subscribed(c, 'news');
      const got = nextEvent(c, 'news', 'update');
      await sdk(n, creds).trigger('news', 'update', { n: 1 });
      assert.deepEqual(await got, { n: 1 });
      // Loaded at start: a known app's connections and REST calls cost no query.
      const exposition = await metrics(n);
      for (const result of ['found', 'missing', 'error']) assert.equal(sampleValue(exposition, 'pws_app_store_lookups_total', { result }), 0, result);
      await n.stop();
      nodes.splice(nodes.indexOf(n), 1);
      // migrate adds our optional columns to the peer's table and leaves its rows alone.
      const migrated = await appsCli(env, 'migrate');
      assert.match(migrated.stdout, /added column enable_subscription_count/);
      assert.match(migrated.stdout, /added column enable_watchlist_events/);
      assert.match((await appsCli(env, 'list')).stdout, /^peer-id\tpeer-key\tenabled$/m);
    });

    test('an app added while running connects at once, on every node; unknown keys meanwhile cost one query each', { timeout: 20_000 }, async () => {
      const [a, b] = [await node(), await node()];
      const unknown = await rawSocket(a, 'not-yet-a-key');
      assert.equal((await unknown.closed).code, 4001);
      for (let i = 0; i < 5; i++) assert.equal((await (await rawSocket(a, 'no-such-key')).closed).code, 4001);
      const exposition = await metrics(a);
      assert.equal(sampleValue(exposition, 'pws_app_store_lookups_total', { result: 'missing' }), 2, 'each unknown key asked once');
      assert.equal(sampleValue(exposition, 'pws_app_store_cached_misses_total'), 4, 'then answered from the remembered misses');

      const added = await appsCli(env, 'add', 'enable_client_messages=1');
      const creds = { id: added.id, key: added.key, secret: added.secret };
      const started = Date.now();
      // Both nodes: the one that remembered the key as unknown must forget that at the change.
      const onA = pusherClient(a, creds);
      const onB = pusherClient(b, creds);
      await Promise.all([connected(onA), connected(onB)]);
      await subscribed(onB, 'room');
      const got = nextEvent(onB, 'room', 'hello');
      // Without Redis the two nodes are two servers: each is asked on its own.
      await sdk(b, creds).trigger('room', 'hello', { from: 'b' });
      assert.deepEqual(await got, { from: 'b' });
      assert.equal(await triggerStatus(a, creds), 200);
      assert.ok(Date.now() - started < 1000 + 500, `connected on both nodes ${Date.now() - started} ms after the add`);
    });

    test('disable closes the sockets with 4003 and refuses REST with 403; rotate-secret refuses the old signatures at once, on every node', async () => {
      const added = await appsCli(env, 'add');
      const creds = { id: added.id, key: added.key, secret: added.secret };
      // A reload would see the changes only after a minute: what arrives sooner was announced.
      const [a, b] = [await node({ APP_MANAGER_CACHE_TTL: '60' }), await node({ APP_MANAGER_CACHE_TTL: '60' })];
      assert.equal(await triggerStatus(a, creds), 200);
      assert.equal(await triggerStatus(b, creds), 200);

      const rotated = await appsCli(env, 'rotate-secret', creds.id);
      await eventually(async () => (await triggerStatus(a, creds)) === 401 && (await triggerStatus(b, creds)) === 401, 1000, 'the old secret refused on both nodes');
      const fresh = { ...creds, secret: rotated.secret };
      assert.equal(await triggerStatus(a, fresh), 200);
      assert.equal(await triggerStatus(b, fresh), 200);

      const sockets = [await rawSocket(a, creds.key), await rawSocket(b, creds.key)];
      await Promise.all(sockets.map((s) => s.socketId()));
      await appsCli(env, 'disable', creds.id);
      for (const s of sockets) assert.equal((await s.closed).code, 4003);
      assert.equal(await triggerStatus(a, fresh), 403);
      assert.equal((await (await rawSocket(b, creds.key)).closed).code, 4003);
      await appsCli(env, 'enable', creds.id);
      await eventually(async () => (await triggerStatus(b, fresh)) === 200, 1000, 'enabled again');
    });

    test("remove closes the app's sockets with 4001, answers its REST calls 404, and takes its series out of /metrics", async () => {
      const added = await appsCli(env, 'add');
      const creds = { id: added.id, key: added.key, secret: added.secret };
      const n = await node();
      const s = await rawSocket(n, creds.key);
      await s.socketId();
      assert.ok((await (await fetch(n.url('/metrics'))).text()).includes(`app_id="${creds.id}"`));
      await appsCli(env, 'remove', creds.id);
      assert.equal((await s.closed).code, 4001);
      assert.equal(await triggerStatus(n, creds), 404);
      const text = await (await fetch(n.url('/metrics'))).text();
      assert.ok(!text.includes(`app_id="${creds.id}"`), 'no series of the removed app');
    });

    test("an app's own limits from its row: a set column holds for that app, NULL takes the server-wide option", async () => {
      const strict = await appsCli(env, 'add', 'max_event_name_length=5', 'max_presence_members_per_channel=1');
      const loose = await appsCli(env, 'add');
      const n = await node();
      const send = (creds: Record<string, string>, name: string) =>
        sdk(n, { id: creds.id, key: creds.key, secret: creds.secret })
          .trigger('c', name, {})
          .then(() => 200, (err: { status?: number }) => err.status ?? 0);
      assert.equal(await send(strict, 'short'), 200);
      assert.equal(await send(strict, 'longer'), 400);
      assert.equal(await send(loose, 'longer-than-five'), 200);
    });

    test('a row made unreadable by plain SQL leaves its app as it was, with a warning; a key differing only in case is no app', async () => {
      const added = await appsCli(env, 'add');
      const creds = { id: added.id, key: added.key, secret: added.secret };
      const n = await node();
      const socket = await rawSocket(n, creds.key);
      await socket.socketId();
      await db.query(`UPDATE apps SET max_connections = -5 WHERE id = '${creds.id}'`);
      await eventually(() => /keeps its last good settings/.test(n.output()), 3000, 'the warning');
      assert.equal(await triggerStatus(n, creds), 200);
      assert.equal(socket.ws.readyState, socket.ws.OPEN);
      // MySQL's collations ignore case: the lookalike must not pass for the app, nor cost a query each time.
      for (let i = 0; i < 3; i++) assert.equal((await (await rawSocket(n, creds.key.toUpperCase())).closed).code, 4001);
      assert.equal(sampleValue(await metrics(n), 'pws_app_store_lookups_total', { result: 'missing' }), 1);
    });

    test('a row changed by plain SQL is seen within APP_MANAGER_CACHE_TTL', async () => {
      const added = await appsCli(env, 'add');
      const creds = { id: added.id, key: added.key, secret: added.secret };
      const n = await node();
      assert.equal(await triggerStatus(n, creds), 200);
      await db.query(`UPDATE apps SET enabled = 0 WHERE id = '${creds.id}'`);
      await eventually(async () => (await triggerStatus(n, creds)) === 403, 2500, 'the plain-SQL change seen');
    });

    test('the database down: known apps keep working, an unknown key is told to retry (4200), REST for an unknown app 503; one warning, one recovery line', async () => {
      const added = await appsCli(env, 'add');
      const creds = { id: added.id, key: added.key, secret: added.secret };
      const n = await node();
      const c = pusherClient(n, creds);
      await connected(c);
      await subscribed(c, 'live');
      await db.pause();
      try {
        // Traffic goes on: a new connection of the known app, and its events.
        const other = pusherClient(n, creds);
        await connected(other);
        const got = nextEvent(c, 'live', 'tick');
        await sdk(n, creds).trigger('live', 'tick', { ok: true });
        assert.deepEqual(await got, { ok: true });
        const unknown = await rawSocket(n, 'unknown-while-down');
        assert.equal((await unknown.closed).code, 4200);
        assert.equal(await triggerStatus(n, { id: 'unknown-id', key: 'k', secret: 's' }), 503);
        assert.equal(await triggerStatus(n, { id: 'unknown-id-2', key: 'k', secret: 's' }), 503);
      } finally {
        await db.resume();
      }
      await eventually(() => /answers again/.test(n.output()), 5000, 'the recovery line');
      assert.equal(n.output().match(/does not answer/g)?.length, 1, n.output());
      assert.equal(n.output().match(/answers again/g)?.length, 1, n.output());
      assert.equal((await (await rawSocket(n, 'unknown-after')).closed).code, 4001);
    });

    test('the database killed and restarted: the node takes announced changes again within a second', async () => {
      const added = await appsCli(env, 'add');
      // A reload would see the change only after a minute: what arrives sooner was announced.
      const n = await node({ APP_MANAGER_CACHE_TTL: '60' });
      const socket = await rawSocket(n, added.key);
      await socket.socketId();
      await db.kill();
      await db.restart();
      // PostgreSQL: the LISTEN connection is made again (every second); MySQL: changes come through Redis.
      await sleep(2500);
      await appsCli(env, 'disable', added.id);
      const started = Date.now();
      assert.equal((await socket.closed).code, 4003);
      assert.ok(Date.now() - started < 1000, `closed ${Date.now() - started} ms after the change`);
    });
  });
}

/** soketi's MySQL schema (its docs' CREATE TABLE). */
export const SOKETI_MYSQL_SCHEMA = `CREATE TABLE IF NOT EXISTS \`apps\` (
  \`id\` varchar(255) NOT NULL,
  \`key\` varchar(255) NOT NULL,
  \`secret\` varchar(255) NOT NULL,
  \`max_connections\` integer(10) NOT NULL,
  \`enable_client_messages\` tinyint(1) NOT NULL,
  \`enabled\` tinyint(1) NOT NULL,
  \`max_backend_events_per_sec\` integer(10) NOT NULL,
  \`max_client_events_per_sec\` integer(10) NOT NULL,
  \`max_read_req_per_sec\` integer(10) NOT NULL,
  \`webhooks\` json,
  \`max_presence_members_per_channel\` tinyint(1) NULL,
  \`max_presence_member_size_in_kb\` tinyint(1) NULL,
  \`max_channel_name_length\` tinyint(1) NULL,
  \`max_event_channels_at_once\` tinyint(1) NULL,
  \`max_event_name_length\` tinyint(1) NULL,
  \`max_event_payload_in_kb\` tinyint(1) NULL,
  \`max_event_batch_size\` tinyint(1) NULL,
  \`enable_user_authentication\` tinyint(1) NOT NULL,
  PRIMARY KEY (\`id\`)
)`;

/** soketi's PostgreSQL schema (its docs' CREATE TABLE). */
export const SOKETI_POSTGRES_SCHEMA = `CREATE TABLE IF NOT EXISTS apps (
  id varchar(255) PRIMARY KEY,
  "key" varchar(255) NOT NULL,
  secret varchar(255) NOT NULL,
  max_connections integer NOT NULL,
  enable_client_messages smallint NOT NULL,
  enabled smallint NOT NULL,
  max_backend_events_per_sec integer NOT NULL,
  max_client_events_per_sec integer NOT NULL,
  max_read_req_per_sec integer NOT NULL,
  webhooks json,
  max_presence_members_per_channel integer DEFAULT NULL,
  max_presence_member_size_in_kb integer DEFAULT NULL,
  max_channel_name_length integer DEFAULT NULL,
  max_event_channels_at_once integer DEFAULT NULL,
  max_event_name_length integer DEFAULT NULL,
  max_event_payload_in_kb integer DEFAULT NULL,
  max_event_batch_size integer DEFAULT NULL,
  enable_user_authentication smallint NOT NULL
)`;

/** A row of soketi's schema, as its docs insert one. */
export function peerRow(quote: string): (id: string, key: string, secret: string) => string {
  return (id, key, secret) =>
    `INSERT INTO apps (id, ${quote}key${quote}, secret, max_connections, enable_client_messages, enabled, max_backend_events_per_sec, max_client_events_per_sec, max_read_req_per_sec, webhooks, enable_user_authentication) VALUES ('${id}', '${key}', '${secret}', 200, 1, 1, -1, -1, -1, '[]', 0)`;
}
