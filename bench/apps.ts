// Apps from a database (issue #21): what the SQL app store costs on the connect path. Two
// pws-servers (metrics on) hold the same app: one from its environment (APP_MANAGER_DRIVER=config),
// one from a real PostgreSQL table (APP_MANAGER_DRIVER=postgres). Round by round, taking turns,
// each gets --connections sockets that connect and subscribe to a channel, then close. Figures:
// each server's CPU per 1,000 connects + subscribes, and the queries the database ran meanwhile
// (its committed transactions, less the ones of reading them), which must be 0: a known app is
// served from memory.
import { execFileSync } from 'node:child_process';
import { get } from 'node:http';
import { startPostgres, type PostgresInstance } from '../test/helpers/databases';
import { APP } from './fanout';
import { CLK_TCK, cpuTicks, pwsServerSpec, sleep, startClient, startServer, type ServerProcess } from './proc';
import type { BenchOptions, Budget, PartResult } from './run';

const LIMIT = 1.05;
const ROUNDS = 6;
const WARM_UP = 3;
const CHANNEL = 'bench-apps';
// PostgreSQL publishes its counters at most once a second: wait that long before each read.
const STATS_DELAY_MS = 1200;

const ENV = {
  DEFAULT_APP_ID: APP.id,
  DEFAULT_APP_KEY: APP.key,
  DEFAULT_APP_SECRET: APP.secret,
  METRICS_ENABLED: 'true',
  ACTIVITY_TIMEOUT: '3600',
  SHUTDOWN_GRACE_PERIOD: '200',
};

/** Everything the part measured, as saved to JSON. */
export interface AppsResult {
  connectionsPerRound: number;
  rounds: number;
  configCpuMsPer1000: number;
  sqlCpuMsPer1000: number;
  ratio: number;
  /** Transactions PostgreSQL committed during the measured rounds, less those of reading the count. */
  queries: number;
  /** pws_app_store_lookups_total of the SQL server at the end (every result). */
  lookups: number;
}

export async function run(options: BenchOptions): Promise<PartResult<AppsResult>> {
  const connections = Math.min(options.connections, 2000);
  const db = await startPostgres();
  const dbEnv = { ...db.env(), APP_MANAGER_DRIVER: 'postgres', APP_MANAGER_CACHE_TTL: '3600' };
  const cli = (...args: string[]) => execFileSync(process.execPath, [options.pwsBin, 'apps', ...args], { env: { PATH: process.env.PATH ?? '', ...dbEnv } });
  cli('migrate');
  cli('add', `id=${APP.id}`, `key=${APP.key}`, `secret=${APP.secret}`);
  const fds = connections + 1024;
  const servers: ServerProcess[] = [];
  const client = startClient(fds);
  try {
    servers.push(await startServer({ ...pwsServerSpec('pws-server, apps from config', ENV, undefined, options.pwsBin), fds }));
    servers.push(await startServer({ ...pwsServerSpec('pws-server, apps from PostgreSQL', { ...ENV, ...dbEnv }, undefined, options.pwsBin), fds }));
    const ticks = [0, 0];
    const round = async (k: number): Promise<number> => {
      const server = servers[k];
      const before = cpuTicks(server.pid);
      await client.open(`ws://127.0.0.1:${server.port}/app/${APP.key}?protocol=7&client=bench&version=1`, connections, CHANNEL);
      const spent = cpuTicks(server.pid) - before;
      await client.close();
      return spent;
    };
    for (let r = 0; r < WARM_UP; r++) for (const k of [0, 1]) await round(k);
    const committedBefore = await committed(db);
    for (let r = 0; r < ROUNDS; r++) {
      // Alternating which goes first, so neither always runs on a machine the other just warmed.
      for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) ticks[k] += await round(k);
      options.log(`apps ${r + 1}/${ROUNDS}: ${connections} connects + subscribes on each server`);
    }
    const committedAfter = await committed(db);
    const readCost = (await committed(db)) - committedAfter;
    const per1000 = (t: number) => (t / CLK_TCK / ((connections * ROUNDS) / 1000)) * 1000;
    const result: AppsResult = {
      connectionsPerRound: connections,
      rounds: ROUNDS,
      configCpuMsPer1000: per1000(ticks[0]),
      sqlCpuMsPer1000: per1000(ticks[1]),
      ratio: ticks[1] / ticks[0],
      queries: committedAfter - committedBefore - readCost,
      lookups: await lookups(servers[1].port),
    };
    return report(result);
  } finally {
    await client.stop();
    for (const server of servers) await server.stop();
    await db.stop();
  }
}

// Transactions committed in the bench database (each query of the app store is one).
async function committed(db: PostgresInstance): Promise<number> {
  await sleep(STATS_DELAY_MS);
  const rows = await db.query<{ n: string }>('SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()');
  return Number(rows[0].n);
}

function lookups(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    get(`http://127.0.0.1:${port}/metrics`, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => {
        let total = 0;
        for (const match of body.matchAll(/^pws_app_store_lookups_total\{[^}]*\} (\d+)$/gm)) total += Number(match[1]);
        resolve(total);
      });
    }).on('error', reject);
  });
}

function report(result: AppsResult): PartResult<AppsResult> {
  const table = [
    ['server', 'CPU ms / 1,000 connects + subscribes', 'vs config'],
    ['apps from config', result.configCpuMsPer1000.toFixed(1), '1.000x'],
    ['apps from PostgreSQL', result.sqlCpuMsPer1000.toFixed(1), `${result.ratio.toFixed(3)}x`],
  ];
  const budgets: Budget[] = [
    { what: 'connect + subscribe CPU, SQL store vs config', value: result.ratio, limit: LIMIT, unit: 'x', pass: result.ratio <= LIMIT },
    { what: 'database queries during the measured connects', value: result.queries, limit: 0, unit: 'queries', pass: result.queries <= 0 },
    { what: 'app store lookups (found, missing, error)', value: result.lookups, limit: 0, unit: 'lookups', pass: result.lookups === 0 },
  ];
  const notes = [
    `${result.rounds} rounds of ${result.connectionsPerRound} sockets per server, each connecting and subscribing to ${CHANNEL}, then closing; ${WARM_UP} warm-up rounds first`,
    'queries: PostgreSQL committed transactions (pg_stat_database.xact_commit) over the measured rounds, less those of reading the counter',
  ];
  return { part: 'apps', title: 'Apps from PostgreSQL against apps from config: the connect path', table, budgets, notes, figures: result };
}
