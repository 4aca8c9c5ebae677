// Self-test of the SQL server helpers: a real PostgreSQL and a real MariaDB on free loopback ports,
// driven with `pg` and `mysql2`: queries, password logins, pause/resume, kill, restart on the same
// port with the data kept, and a clean stop (no process left, temp dir removed).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { mariadbSkip, postgresSkip, startMariadb, startPostgres, type SqlInstance } from './databases';

const pgSkip = postgresSkip();
const mySkip = mariadbSkip();

/** Resolves with the outcome of `promise`, or 'pending' if it has not settled within `ms`. */
async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<'pending' | 'resolved' | 'rejected'> {
  let timer: NodeJS.Timeout;
  const pending = new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), ms)));
  return Promise.race([promise.then(() => 'resolved' as const, () => 'rejected' as const), pending]).finally(() => clearTimeout(timer));
}

/** True when 127.0.0.1:port refuses a TCP connection. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(true));
  });
}

function assertGone(db: SqlInstance, pids: number[]): void {
  for (const pid of pids) assert.equal(fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')), false, `pid ${pid} still running`);
  assert.equal(fs.existsSync(db.dir), false, `${db.dir} not removed`);
}

/** The shared checks: pause makes a query hang, resume lets it finish; kill refuses; restart keeps data; stop cleans up. */
async function lifecycleChecks(db: SqlInstance, select: string): Promise<void> {
  // Paused: a query neither succeeds nor is refused within a second; resumed, it completes.
  await db.pause();
  const during = db.query(select);
  during.catch(() => undefined);
  assert.equal(await settledWithin(during, 1000), 'pending');
  await db.resume();
  assert.equal(await settledWithin(during, 10000), 'resolved');

  // Killed: every process gone, the port refuses; restart() on the same port keeps the data.
  const before = db.pids();
  assert.ok(before.length >= 1);
  await db.kill();
  assert.equal(db.running(), false);
  assert.deepEqual(db.pids(), []);
  assert.equal(await refused(db.port), true);
  await db.restart();
  assert.equal(db.running(), true);
  assert.deepEqual(await db.query(select), [{ v: 'kept' }]);

  // A clean restart too.
  await db.restart();
  assert.deepEqual(await db.query(select), [{ v: 'kept' }]);

  const pids = db.pids();
  await db.stop();
  await db.stop(); // idempotent
  assertGone(db, pids);
  assert.equal(await refused(db.port), true);
}

test('startPostgres: password login with pg, env(), pause/resume, kill, restart with data kept, clean stop', { skip: pgSkip, timeout: 120_000 }, async (t) => {
  const t0 = Date.now();
  const db = await startPostgres();
  t.diagnostic(`postgres ${db.version} started in ${Date.now() - t0} ms on port ${db.port}`);
  t.after(() => db.stop());
  assert.deepEqual(db.env(), {
    DB_POSTGRES_HOST: '127.0.0.1',
    DB_POSTGRES_PORT: String(db.port),
    DB_POSTGRES_USERNAME: 'pws',
    DB_POSTGRES_PASSWORD: 'pws-test',
    DB_POSTGRES_DATABASE: 'pws',
  });
  assert.ok(db.pids().length > 1, 'the postmaster and its children');

  assert.deepEqual(await db.query('SELECT $1::int + 1 AS n', [41]), [{ n: 42 }]);
  const [who] = await db.query('SELECT current_user AS u, current_database() AS d, rolsuper FROM pg_roles WHERE rolname = current_user');
  assert.deepEqual(who, { u: 'pws', d: 'pws', rolsuper: true });
  await db.query('CREATE TABLE t (v text)');
  await db.query("INSERT INTO t VALUES ('kept')");

  // A wrong password is refused over TCP (real authentication).
  const bad = new pg.Client({ ...clientConfig(db), password: 'wrong', connectionTimeoutMillis: 5000 });
  bad.on('error', () => undefined);
  await assert.rejects(bad.connect(), /password authentication failed/);
  // The app's own client with env() settings.
  const good = new pg.Client({ ...clientConfig(db), connectionTimeoutMillis: 5000 });
  await good.connect();
  assert.equal((await good.query('SELECT count(*)::int AS c FROM t')).rows[0].c, 1);
  await good.end();

  const t1 = Date.now();
  await lifecycleChecks(db, 'SELECT v FROM t');
  t.diagnostic(`postgres lifecycle (pause, kill, 2 restarts, stop) in ${Date.now() - t1} ms`);
});

function clientConfig(db: SqlInstance) {
  return { host: db.host, port: db.port, user: db.user, password: db.password, database: db.database };
}

test('startMariadb: password login with mysql2, env(), pause/resume, kill, restart with data kept, clean stop', { skip: mySkip, timeout: 120_000 }, async (t) => {
  const t0 = Date.now();
  const db = await startMariadb();
  t.diagnostic(`mariadb started in ${Date.now() - t0} ms on port ${db.port}`);
  t.after(() => db.stop());
  assert.deepEqual(db.env(), {
    DB_MYSQL_HOST: '127.0.0.1',
    DB_MYSQL_PORT: String(db.port),
    DB_MYSQL_USERNAME: 'pws',
    DB_MYSQL_PASSWORD: 'pws-test',
    DB_MYSQL_DATABASE: 'pws',
  });

  assert.deepEqual(await db.query('SELECT ? + 1 AS n', [41]), [{ n: 42 }]);
  const [who] = await db.query("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AS u, DATABASE() AS d, VERSION() LIKE '%MariaDB%' AS maria");
  assert.deepEqual(who, { u: 'pws', d: 'pws', maria: 1 });
  await db.query('CREATE TABLE t (v VARCHAR(10))');
  await db.query("INSERT INTO t VALUES ('kept')");

  await assert.rejects(mysql.createConnection({ ...clientConfig(db), password: 'wrong', connectTimeout: 5000 }), /Access denied/);
  const good = await mysql.createConnection({ ...clientConfig(db), connectTimeout: 5000 });
  const [rows] = await good.query('SELECT COUNT(*) AS c FROM t');
  assert.deepEqual(rows, [{ c: 1 }]);
  await good.end();

  const t1 = Date.now();
  await lifecycleChecks(db, 'SELECT v FROM t');
  t.diagnostic(`mariadb lifecycle (pause, kill, 2 restarts, stop) in ${Date.now() - t1} ms`);
});

test('two PostgreSQL and two MariaDB servers at once: separate ports, data and temp dirs', { skip: pgSkip || mySkip, timeout: 120_000 }, async (t) => {
  const t0 = Date.now();
  const dbs: SqlInstance[] = await Promise.all([startPostgres(), startPostgres(), startMariadb(), startMariadb()]);
  t.diagnostic(`four servers started in ${Date.now() - t0} ms`);
  t.after(() => Promise.all(dbs.map((d) => d.stop())));
  assert.equal(new Set(dbs.map((d) => d.port)).size, 4);
  assert.equal(new Set(dbs.map((d) => d.dir)).size, 4);
  for (const [i, d] of dbs.entries()) {
    await d.query('CREATE TABLE mark (i INT)');
    await d.query(`INSERT INTO mark VALUES (${i})`);
  }
  for (const [i, d] of dbs.entries()) assert.deepEqual(await d.query('SELECT i FROM mark'), [{ i }]);
  const pids = dbs.flatMap((d) => d.pids());
  const t1 = Date.now();
  await Promise.all(dbs.map((d) => d.stop()));
  t.diagnostic(`four servers stopped in ${Date.now() - t1} ms`);
  for (const d of dbs) assertGone(d, []);
  for (const pid of pids) assert.equal(fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')), false);
});
