// Apps from a database (issue #21): what the SQL app store costs on the connect path. Two
// pws-servers (metrics on) hold the same app: one from its environment (APP_MANAGER_DRIVER=config),
// one from a real PostgreSQL table (APP_MANAGER_DRIVER=postgres). Round by round, taking turns,
// each gets --connections sockets that connect and subscribe to a channel, then close. Figures:
// each server's CPU per 1,000 connects + subscribes, and the statements PostgreSQL ran for
// pws-server meanwhile (from its statement log, by application name), which must be 0: a known
// app is served from memory.
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
  /** Statements pws-server sent PostgreSQL during the measured rounds (its statement log). */
  queries: number;
  /** Statements it sent at its start (the load, the LISTEN): not 0, or the log would prove nothing. */
  queriesAtStart: number;
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
  await logStatements(db);
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
    // The statements of the SQL server's start (its load of the table, its LISTEN) show the log works.
    const atStart = statementsOf(db.log());
    if (atStart === 0) throw new Error('PostgreSQL logged no statement of pws-server at its start: the statement log does not work, the count below would prove nothing');
    const logBefore = db.log().length;
    for (let r = 0; r < ROUNDS; r++) {
      // Alternating which goes first, so neither always runs on a machine the other just warmed.
      for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) ticks[k] += await round(k);
      options.log(`apps ${r + 1}/${ROUNDS}: ${connections} connects + subscribes on each server`);
    }
    await sleep(500);
    const per1000 = (t: number) => (t / CLK_TCK / ((connections * ROUNDS) / 1000)) * 1000;
    const result: AppsResult = {
      connectionsPerRound: connections,
      rounds: ROUNDS,
      configCpuMsPer1000: per1000(ticks[0]),
      sqlCpuMsPer1000: per1000(ticks[1]),
      ratio: ticks[1] / ticks[0],
      queries: statementsOf(db.log().slice(logBefore)),
      queriesAtStart: atStart,
      lookups: await lookups(servers[1].port),
    };
    return report(result);
  } finally {
    await client.stop();
    for (const server of servers) await server.stop();
    await db.stop();
  }
}

// Every statement to the server's log, each line headed by its client's application name.
function statementsOf(log: string): number {
  return log.split('\n').filter((line) => line.startsWith('[pws-server] ') && line.includes('statement:')).length;
}

async function logStatements(db: PostgresInstance): Promise<void> {
  await db.query("ALTER SYSTEM SET log_statement = 'all'");
  await db.query("ALTER SYSTEM SET log_line_prefix = '[%a] '");
  await db.query('SELECT pg_reload_conf()');
  await sleep(200);
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
    `queries: statements PostgreSQL logged for application_name 'pws-server' during the measured rounds (log_statement = all); ${result.queriesAtStart} at its start`,
  ];
  return { part: 'apps', title: 'Apps from PostgreSQL against apps from config: the connect path', table, budgets, notes, figures: result };
}
