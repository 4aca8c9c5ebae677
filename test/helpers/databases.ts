// Real SQL servers for tests: PostgreSQL (Debian package `postgresql`) and MariaDB (Debian package
// `mariadb-server`), both installed by scripts/test-setup.sh. Each instance gets a fresh data
// directory in a temp dir and listens on a free 127.0.0.1 port (plus a unix socket inside its temp
// dir), without flushing to disk (fsync=off; innodb_flush_log_at_trx_commit=2), so it starts in
// about a second; a killed server still keeps its committed data (a crashed machine would not).
// Each has a password-authenticated superuser `pws` (password `pws-test`) and a database `pws`.
// Processes never outlive the test process: stop() shuts them down, and exit hooks kill any still
// running (every process of an instance, found by its working directory: the data dir) and remove
// the temp dirs.
//
// As root, PostgreSQL (which refuses to run as root) runs as the `postgres` OS user, with the temp
// dir chowned to it; MariaDB runs with --user=root. Otherwise both run as the current user.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { findTool, freePort, isCI, missingToolSkip, mkTemp, requireTool, rmTemp, sleep, tail, track } from './services';

export { isCI };

const USER = 'pws';
const PASSWORD = 'pws-test';
const DATABASE = 'pws';
const HOST = '127.0.0.1';

/** What both instance kinds offer. */
export interface SqlInstance {
  host: '127.0.0.1';
  port: number;
  /** A superuser (PostgreSQL) / a user with ALL PRIVILEGES ON *.* WITH GRANT OPTION (MariaDB). */
  user: string;
  password: string;
  /** A database that exists and is empty at start. */
  database: string;
  /** Temp dir: data/ (the data directory), the unix socket, service.log. Removed by stop(). */
  dir: string;
  /** PostgreSQL: DB_POSTGRES_HOST/PORT/USERNAME/PASSWORD/DATABASE; MariaDB: the same with DB_MYSQL_. */
  env(): Record<string, string>;
  /**
   * Runs one statement over a fresh connection (pg / mysql2 placeholders: $1 / ?) and resolves with
   * its rows (MariaDB: mysql2's result, the ResultSetHeader for statements without rows).
   * Connecting and the statement are bounded in time (5 s / 10 s), so it rejects while paused.
   */
  query<T = any>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Shuts the server down (SIGCONT first if paused), waits until every process is gone, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /**
   * Sends `signal` (default SIGKILL) to every process of the server. For SIGKILL, SIGTERM, SIGINT and
   * SIGQUIT, resolves once they have all exited (the port then refuses connections; restart() brings
   * it back); for other signals, at once. Mind PostgreSQL's meanings: SIGTERM is a smart shutdown
   * (waits for clients to disconnect; rejects after 30 s), SIGINT a fast one, SIGQUIT an immediate one.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP to every process: connections and queries hang (not refused) until resume(). */
  pause(): Promise<void>;
  /** SIGCONT to every process. */
  resume(): Promise<void>;
  /** Shuts the server down if running, then starts it again on the same port and data dir (data kept). */
  restart(): Promise<void>;
  /** True while the server process runs (paused counts as running). */
  running(): boolean;
  /** Pids of the server's processes now (PostgreSQL: the postmaster and its children; MariaDB: one). */
  pids(): number[];
  /** The server's log so far (all runs). */
  log(): string;
}

export interface PostgresInstance extends SqlInstance {
  /** postgres://pws:pws-test@127.0.0.1:PORT/pws */
  url: string;
  /** PostgreSQL's major version, e.g. 15. */
  version: number;
}

export interface MariadbInstance extends SqlInstance {
  /** mysql://pws:pws-test@127.0.0.1:PORT/pws */
  url: string;
  /** The unix socket of the server (root can log in there without a password). */
  socket: string;
}

// ------------------------------------------------------------------------ processes

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** uid and gid of an OS user from /etc/passwd; null when there is none. */
function osUser(name: string): { uid: number; gid: number } | null {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    /* no /etc/passwd */
  }
  return null;
}

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Pids of the live processes whose working directory is `dataDir`: PostgreSQL's postmaster and
 * every child of it (they chdir to the data dir, and stay there after the postmaster is killed and
 * they are reparented), mariadbd. Synchronous, so the exit hook can use it.
 */
function pidsIn(dataDir: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readlinkSync(`/proc/${e}/cwd`) === dataDir && alive(Number(e))) out.push(Number(e));
    } catch {
      /* gone, or not ours to inspect */
    }
  }
  return out;
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves once `child` has exited and no process is left in `dataDir`; false after timeoutMs. */
async function waitGone(child: ChildProcess | undefined, dataDir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((!child || exited(child)) && pidsIn(dataDir).length === 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
}

/** Every process of the server (the spawned one first), deduplicated. */
function serverPids(child: ChildProcess | undefined, dataDir: string): number[] {
  const pids = new Set<number>();
  if (child && !exited(child) && child.pid) pids.add(child.pid);
  for (const p of pidsIn(dataDir)) pids.add(p);
  return [...pids];
}

/** `signal` to the server; escalates to SIGKILL after graceMs; resolves once every process is gone. */
async function shutdown(child: ChildProcess | undefined, dataDir: string, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  const pids = serverPids(child, dataDir);
  if (pids.length === 0) return;
  signalAll(pids, 'SIGCONT'); // a paused server cannot shut down
  if (child && !exited(child)) signalAll([child.pid!], signal);
  else signalAll(pids, signal);
  if (await waitGone(child, dataDir, graceMs)) return;
  signalAll(serverPids(child, dataDir), 'SIGKILL');
  if (!(await waitGone(child, dataDir, 10000))) {
    throw new Error(`processes ${serverPids(child, dataDir).join(', ')} in ${dataDir} survived SIGKILL`);
  }
}

// Instances not stopped yet: the exit hooks kill their processes and remove their temp dirs.
const liveInstances = new Map<string, () => ChildProcess | undefined>(); // dataDir -> current child
let hooksInstalled = false;

function killEverythingNow(): void {
  for (const [dataDir, current] of liveInstances) {
    const pids = serverPids(current(), dataDir);
    signalAll(pids, 'SIGKILL');
    signalAll(pids, 'SIGCONT');
    rmTemp(path.dirname(dataDir));
  }
  liveInstances.clear();
}

function registerInstance(dataDir: string, current: () => ChildProcess | undefined): void {
  liveInstances.set(dataDir, current);
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killEverythingNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killEverythingNow();
      // Same rule as ./services: re-raise only when no other handler is left to do it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

interface Ids {
  uid: number;
  gid: number;
}

/** Spawns the server with output appended to `logFile`; tracked by ./services for cleanup. */
function spawnServer(bin: string, args: string[], cwd: string, logFile: string, ids?: Ids): ChildProcess {
  const fd = fs.openSync(logFile, 'a');
  try {
    const child = spawn(bin, args, { cwd, stdio: ['ignore', fd, fd], env: process.env, ...(ids ?? {}) });
    track(child);
    child.on('error', (e) => fs.appendFileSync(logFile, `\n[spawn error] ${e.message}\n`));
    return child;
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs a setup command (initdb, mariadb-install-db) to completion, with its output in logFile. */
function runSetup(bin: string, args: string[], cwd: string, logFile: string, ids?: Ids, timeoutMs = 60000): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' }, ...(ids ?? {}) },
      (err, stdout, stderr) => {
        fs.appendFileSync(logFile, `$ ${bin} ${args.join(' ')}\n${stdout}${stderr}\n`);
        if (err) reject(new Error(`${path.basename(bin)} failed: ${err.message}\n${stdout}${stderr}`));
        else resolve();
      },
    );
    track(child);
    child.ref(); // we await this one
  });
}

function isBindError(text: string): boolean {
  return /already in use|could not bind|bind on tcp|can't start server/i.test(text);
}

/**
 * Polls `probe` until it resolves; fails early (with the log) when the server exits. The error of a
 * server that exited because its port was taken says "already in use" (startup retries on that).
 */
async function waitReady(
  name: string,
  child: ChildProcess,
  logFile: string,
  logFrom: number,
  probe: () => Promise<void>,
  timeoutMs = 30000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (exited(child)) {
      const log = logSince(logFile, logFrom);
      throw new Error(`${name} exited (code ${child.exitCode}, signal ${child.signalCode}) before accepting connections:\n${log}`);
    }
    try {
      await probe();
      if (!exited(child)) return;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${name} did not accept connections within ${timeoutMs} ms (${last}):\n${tail(logFile)}`);
}

function logSize(logFile: string): number {
  try {
    return fs.statSync(logFile).size;
  } catch {
    return 0;
  }
}

/** The log written since byte `from` (the current run), at most 4000 characters of its end. */
function logSince(logFile: string, from: number): string {
  try {
    const s = fs.readFileSync(logFile).subarray(from).toString('utf8');
    return s.length > 4000 ? '…' + s.slice(-4000) : s;
  } catch {
    return '';
  }
}

/**
 * The server lifecycle shared by both kinds: launch(port) starts a run and waits until it accepts
 * connections (throwing, with the process gone, when it does not). Starts on a free port (retried on
 * another when the port was taken meanwhile); restart() reuses the port.
 */
async function lifecycle(opts: {
  name: string;
  dir: string;
  dataDir: string;
  logFile: string;
  /** Signal for a clean shutdown (PostgreSQL: SIGINT, fast shutdown; MariaDB: SIGTERM). */
  stopSignal: NodeJS.Signals;
  launch: (port: number) => Promise<ChildProcess>;
}) {
  const { name, dir, dataDir, logFile, stopSignal, launch } = opts;
  let current: ChildProcess | undefined;
  registerInstance(dataDir, () => current);

  const launchOrKill = async (port: number): Promise<ChildProcess> => {
    try {
      return await launch(port);
    } catch (e) {
      await shutdown(undefined, dataDir, 'SIGKILL', 0);
      throw e;
    }
  };

  let port = 0;
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3 && !current; attempt++) {
    port = await freePort();
    try {
      current = await launchOrKill(port);
    } catch (e) {
      lastErr = e;
      if (!isBindError(String((e as Error).message))) break;
    }
  }
  if (!current) {
    liveInstances.delete(dataDir);
    rmTemp(dir);
    throw lastErr;
  }

  let stopped = false;
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const pids = serverPids(current, dataDir);
    signalAll(pids, signal);
    if (['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGQUIT'].includes(signal)) {
      if (signal !== 'SIGKILL') signalAll(pids, 'SIGCONT');
      if (!(await waitGone(current, dataDir, signal === 'SIGKILL' ? 10000 : 30000))) {
        throw new Error(`${name}: processes ${serverPids(current, dataDir).join(', ')} still running after ${signal}`);
      }
    }
  };
  return {
    port,
    dir,
    log: () => tail(logFile, 20000),
    running: () => !!current && !exited(current),
    pids: () => serverPids(current, dataDir),
    kill,
    pause: () => kill('SIGSTOP'),
    resume: () => kill('SIGCONT'),
    async restart() {
      if (stopped) throw new Error(`${name}: restart() after stop()`);
      await shutdown(current, dataDir, stopSignal, 15000);
      current = undefined;
      // The port is ours: retry briefly in case the old socket is not released yet.
      let err: unknown;
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          current = await launchOrKill(port);
          return;
        } catch (e) {
          err = e;
          if (!isBindError(String((e as Error).message))) break;
          await sleep(250);
        }
      }
      throw err;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await shutdown(current, dataDir, stopSignal, 15000);
      } finally {
        current = undefined;
        liveInstances.delete(dataDir);
        rmTemp(dir);
      }
    },
  };
}

// ------------------------------------------------------------------------ PostgreSQL

const PG_INSTALL_HINT = 'install the Debian package postgresql (apt-get install postgresql), or run npm test as root';

/**
 * The directory holding initdb and postgres: PATH (or /usr/bin, /usr/sbin, /usr/local/bin) when
 * both are there, else the newest /usr/lib/postgresql/<major>/bin (Debian keeps them off PATH).
 */
export function postgresBinDir(): string | null {
  const initdb = findTool('initdb');
  if (initdb && findTool(path.join(path.dirname(initdb), 'postgres'))) return path.dirname(initdb);
  let majors: string[] = [];
  try {
    majors = fs.readdirSync('/usr/lib/postgresql').filter((d) => /^\d+$/.test(d));
  } catch {
    /* not installed */
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const m of majors) {
    const dir = `/usr/lib/postgresql/${m}/bin`;
    if (findTool(path.join(dir, 'initdb')) && findTool(path.join(dir, 'postgres'))) return dir;
  }
  return null;
}

function postgresMissing(): string | null {
  if (!postgresBinDir()) return `initdb and postgres not found (on PATH or in /usr/lib/postgresql/<version>/bin): ${PG_INSTALL_HINT}`;
  if (isRoot() && !osUser('postgres')) return `running as root, but there is no \`postgres\` OS user to run PostgreSQL as: ${PG_INSTALL_HINT}`;
  return null;
}

/**
 * For node:test's `skip` option: false when PostgreSQL's server binaries are installed; otherwise a
 * skip message saying how to install them. Under CI=true a missing server throws (a failure).
 */
export function postgresSkip(): string | false {
  const msg = postgresMissing();
  if (!msg) return false;
  if (isCI()) throw new Error(`${msg} [CI=true: a missing service is a failure, not a skip]`);
  return msg;
}

/** Starts a PostgreSQL server (initdb into a temp dir, then postgres on a free 127.0.0.1 port). */
export async function startPostgres(): Promise<PostgresInstance> {
  const missing = postgresMissing();
  if (missing) throw new Error(missing);
  const binDir = postgresBinDir()!;
  const version = Number(/\/postgresql\/(\d+)\//.exec(binDir + '/')?.[1] ?? 0) || (await postgresVersion(binDir));
  const ids = isRoot() ? osUser('postgres')! : undefined;

  const dir = fs.realpathSync(mkTemp('pws-postgres-')); // real: compared with /proc/<pid>/cwd
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'service.log');
  try {
    if (ids) fs.chownSync(dir, ids.uid, ids.gid);
    const pwFile = path.join(dir, 'password');
    fs.writeFileSync(pwFile, PASSWORD + '\n', { mode: 0o600 });
    if (ids) fs.chownSync(pwFile, ids.uid, ids.gid);
    // The superuser is `pws` with a password; over TCP only password (scram-sha-256) logins.
    await runSetup(
      path.join(binDir, 'initdb'),
      ['-D', dataDir, '-U', USER, `--pwfile=${pwFile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-locale', '--no-sync'],
      dir,
      logFile,
      ids,
    );
    fs.rmSync(pwFile);
    fs.appendFileSync(
      path.join(dataDir, 'postgresql.conf'),
      [
        '',
        '# pws-server tests (test/helpers/databases.ts)',
        `listen_addresses = '${HOST}'`,
        `unix_socket_directories = '${dir}'`,
        // Not durable against a machine crash, but a killed server (kill(), fault tests) loses no
        // committed transaction: keep synchronous_commit on (off would drop the last ones).
        'fsync = off',
        'full_page_writes = off',
        'shared_buffers = 32MB',
        'max_connections = 100',
        'logging_collector = off',
        "log_destination = 'stderr'",
        '',
      ].join('\n'),
    );
  } catch (e) {
    rmTemp(dir);
    throw e;
  }

  const connect = (port: number, database: string) => ({
    host: HOST,
    port,
    user: USER,
    password: PASSWORD,
    database,
    connectionTimeoutMillis: 5000,
    query_timeout: 10000,
  });
  const pgQuery = async (port: number, database: string, sql: string, params?: unknown[]): Promise<any[]> => {
    const client = new pg.Client(connect(port, database));
    client.on('error', () => {
      /* reported through the rejected query or connect() */
    });
    try {
      await client.connect();
      const r = await client.query(sql, params as any[]);
      return r.rows;
    } finally {
      // end() waits for the server, which may be paused or gone: do not wait long, and never leave
      // the socket open (a half-closed one would keep the test process alive while the server is paused).
      await Promise.race([client.end().catch(() => undefined), sleep(1000)]);
      (client as any).connection?.stream?.destroy?.();
    }
  };

  let created = false;
  const postgresBin = path.join(binDir, 'postgres');
  const life = await lifecycle({
    name: 'postgres',
    dir,
    dataDir,
    logFile,
    stopSignal: 'SIGINT',
    launch: async (port) => {
      const from = logSize(logFile);
      const child = spawnServer(postgresBin, ['-D', dataDir, '-p', String(port)], dir, logFile, ids);
      await waitReady('postgres', child, logFile, from, async () => {
        await pgQuery(port, 'postgres', 'SELECT 1');
      });
      if (!created) {
        await pgQuery(port, 'postgres', `CREATE DATABASE ${DATABASE}`);
        created = true;
      }
      return child;
    },
  });

  const port = life.port;
  return {
    ...life,
    host: HOST,
    user: USER,
    password: PASSWORD,
    database: DATABASE,
    version,
    url: `postgres://${USER}:${PASSWORD}@${HOST}:${port}/${DATABASE}`,
    env: () => ({
      DB_POSTGRES_HOST: HOST,
      DB_POSTGRES_PORT: String(port),
      DB_POSTGRES_USERNAME: USER,
      DB_POSTGRES_PASSWORD: PASSWORD,
      DB_POSTGRES_DATABASE: DATABASE,
    }),
    query: (sql: string, params?: unknown[]) => pgQuery(port, DATABASE, sql, params),
  };
}

function postgresVersion(binDir: string): Promise<number> {
  return new Promise((resolve) => {
    execFile(path.join(binDir, 'postgres'), ['--version'], (err, stdout) => {
      resolve(err ? 0 : Number(/(\d+)(\.\d+)?/.exec(stdout)?.[1] ?? 0));
    });
  });
}

// ------------------------------------------------------------------------ MariaDB

/**
 * For node:test's `skip` option: false when mariadbd and mariadb-install-db are installed; otherwise
 * a skip message saying how to install them. Under CI=true a missing tool throws (a failure).
 */
export function mariadbSkip(): string | false {
  return missingToolSkip('mariadbd', 'mariadb-server') || missingToolSkip('mariadb-install-db', 'mariadb-server');
}

/** Server options for both mariadb-install-db and mariadbd: small, fast, not durable. */
function mariadbOptions(dir: string, dataDir: string): string[] {
  return [
    `--datadir=${dataDir}`,
    `--tmpdir=${dir}`,
    '--skip-name-resolve',
    '--skip-log-bin',
    '--innodb-buffer-pool-size=32M',
    '--innodb-log-file-size=8M',
    // 2: the log is written (not flushed) at each commit, so a killed server (kill(), fault tests)
    // loses no committed transaction; 0 would lose up to the last second of them.
    '--innodb-flush-log-at-trx-commit=2',
    '--innodb-doublewrite=0',
    ...(isRoot() ? ['--user=root'] : []),
  ];
}

/** Starts a MariaDB server (mariadb-install-db into a temp dir, then mariadbd on a free 127.0.0.1 port). */
export async function startMariadb(): Promise<MariadbInstance> {
  const mariadbd = requireTool('mariadbd', 'mariadb-server');
  const installDb = requireTool('mariadb-install-db', 'mariadb-server');

  const dir = fs.realpathSync(mkTemp('pws-mariadb-')); // real: compared with /proc/<pid>/cwd
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'service.log');
  const socket = path.join(dir, 'mysqld.sock');
  try {
    // root@localhost without a password (not unix_socket auth, which would tie it to the OS user).
    await runSetup(
      installDb,
      ['--no-defaults', '--auth-root-authentication-method=normal', '--skip-test-db', ...mariadbOptions(dir, dataDir)],
      dir,
      logFile,
    );
  } catch (e) {
    rmTemp(dir);
    throw e;
  }

  const myQuery = async (config: mysql.ConnectionOptions, sql: string, params?: unknown[]): Promise<any> => {
    const conn = await mysql.createConnection({ connectTimeout: 5000, ...config });
    conn.on('error', () => {
      /* reported through the rejected query */
    });
    try {
      const [rows] = await conn.query({ sql, timeout: 10000 }, params);
      return rows;
    } finally {
      // mysql2's destroy() only half-closes the socket and waits for the server's FIN: a paused
      // server would keep it (and the test process) alive. Destroy the socket itself too.
      conn.destroy();
      (conn as any).connection?.stream?.destroy?.();
    }
  };
  const asPws = (port: number, database: string): mysql.ConnectionOptions => ({ host: HOST, port, user: USER, password: PASSWORD, database });

  let created = false;
  const life = await lifecycle({
    name: 'mariadbd',
    dir,
    dataDir,
    logFile,
    stopSignal: 'SIGTERM',
    launch: async (port) => {
      const from = logSize(logFile);
      const child = spawnServer(
        mariadbd,
        // --no-defaults must come first: no /etc/mysql config.
        ['--no-defaults', ...mariadbOptions(dir, dataDir), `--port=${port}`, `--bind-address=${HOST}`, `--socket=${socket}`, `--pid-file=${path.join(dir, 'mysqld.pid')}`],
        dir,
        logFile,
      );
      if (!created) {
        await waitReady('mariadbd', child, logFile, from, async () => {
          await myQuery({ socketPath: socket, user: 'root' }, 'SELECT 1');
        });
        for (const sql of [
          `CREATE USER '${USER}'@'%' IDENTIFIED BY '${PASSWORD}'`,
          `GRANT ALL PRIVILEGES ON *.* TO '${USER}'@'%' WITH GRANT OPTION`,
          `CREATE DATABASE \`${DATABASE}\``,
        ]) {
          await myQuery({ socketPath: socket, user: 'root' }, sql);
        }
        created = true;
      }
      await waitReady('mariadbd', child, logFile, from, async () => {
        await myQuery(asPws(port, DATABASE), 'SELECT 1');
      });
      return child;
    },
  });

  const port = life.port;
  return {
    ...life,
    host: HOST,
    user: USER,
    password: PASSWORD,
    database: DATABASE,
    socket,
    url: `mysql://${USER}:${PASSWORD}@${HOST}:${port}/${DATABASE}`,
    env: () => ({
      DB_MYSQL_HOST: HOST,
      DB_MYSQL_PORT: String(port),
      DB_MYSQL_USERNAME: USER,
      DB_MYSQL_PASSWORD: PASSWORD,
      DB_MYSQL_DATABASE: DATABASE,
    }),
    query: (sql: string, params?: unknown[]) => myQuery(asPws(port, DATABASE), sql, params),
  };
}
