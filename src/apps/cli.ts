import { randomBytes } from 'node:crypto';
import { Log } from '../log';
import type { AppConfig, Options } from '../options';
import { OptionsError } from '../protocol/errors';
import { COLUMNS, columnNamed, parseColumn } from './sql/columns';
import type { SqlAppStore } from './sql/sql-store';

export const APPS_USAGE = `Usage: pws-server apps <command> [--config file.json]

Manages the apps of the store APP_MANAGER_DRIVER names (postgres or mysql, with the DB_* options).
A change reaches every running node within a second (docs/apps.md).

Commands:
  migrate                      Create the apps table, or add the columns it lacks.
  list                         Print every app: id, key, enabled.
  add [column=value…]          Add an app; id, key and secret are made up unless given. Prints them.
  set <id> column=value…       Change columns of an app, e.g. max_connections=500 enable_client_messages=1.
  rotate-secret <id>           Give the app a new secret (signatures with the old one are refused at once). Prints it.
  disable <id> | enable <id>   Refuse (4003, REST 403) or accept the app's connections again.
  remove <id>                  Delete the app: its sockets are closed with 4001.

Columns: ${COLUMNS.map((c) => c.name).join(', ')}.`;

/** Runs `pws-server apps …`; the exit code. Output goes to `print`, one line per call. */
export async function appsCommand(args: string[], options: Options, print: (line: string) => void): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined) throw new OptionsError('apps: missing command (see pws-server apps --help)');
  if (options.appManagerDriver === 'config') {
    if (command !== 'list') throw new OptionsError('apps: APP_MANAGER_DRIVER is config: the apps come from the config file (or DEFAULT_APP_*); edit it, or set APP_MANAGER_DRIVER=postgres or mysql');
    for (const app of options.apps) print(`${app.id}\t${app.key}\t${app.enabled ? 'enabled' : 'disabled'}`);
    return 0;
  }
  const store = (require('./sql/sql-store') as typeof import('./sql/sql-store')).SqlAppStore.open(options);
  try {
    const changed = await run(store, command, rest, options, print);
    if (changed !== null) await announce(store, changed, options);
    return 0;
  } finally {
    await store.close();
  }
}

// Runs one command; the id of the app it changed, or null.
async function run(store: SqlAppStore, command: string, args: string[], options: Options, print: (line: string) => void): Promise<string | null> {
  switch (command) {
    case 'migrate':
      for (const line of await store.migrate()) print(line);
      return null;
    case 'list': {
      const { apps, refused } = await store.all();
      for (const app of apps) print(`${app.id}\t${app.key}\t${app.enabled ? 'enabled' : 'disabled'}`);
      for (const row of refused) print(`# left out: ${row.reason}`);
      return null;
    }
    case 'add': {
      const values = assignments(args);
      const app: AppConfig = { ...options.appDefaults, id: randomToken(8), key: randomToken(20), secret: randomToken(20) };
      for (const column of COLUMNS) if (Object.hasOwn(values, column.name)) (app as unknown as Record<string, unknown>)[column.field] = values[column.name];
      await store.insert(app, Object.keys(values));
      print(`id=${app.id}\nkey=${app.key}\nsecret=${app.secret}`);
      return app.id;
    }
    case 'set':
      return change(store, args[0], assignments(args.slice(1)));
    case 'rotate-secret': {
      const secret = randomToken(20);
      const id = await change(store, args[0], { secret });
      print(`secret=${secret}`);
      return id;
    }
    case 'disable':
    case 'enable':
      return change(store, args[0], { enabled: command === 'enable' });
    case 'remove': {
      const id = required(args[0]);
      if (!(await store.remove(id))) throw new OptionsError(`apps: no app with id "${id}"`);
      return id;
    }
    default:
      throw new OptionsError(`apps: unknown command "${command}" (see pws-server apps --help)`);
  }
}

async function change(store: SqlAppStore, rawId: string | undefined, values: Record<string, unknown>): Promise<string> {
  const id = required(rawId);
  if (Object.keys(values).length === 0) throw new OptionsError('apps: nothing to set: give column=value');
  if (Object.hasOwn(values, 'id')) throw new OptionsError('apps: the id cannot change (remove the app and add another)');
  if (!(await store.update(id, values))) throw new OptionsError(`apps: no app with id "${id}"`);
  return id;
}

function required(id: string | undefined): string {
  if (id === undefined || id === '' || id.includes('=')) throw new OptionsError('apps: give the app id');
  return id;
}

// `column=value` arguments, each checked as the server would read it.
function assignments(args: string[]): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const column = eq > 0 ? columnNamed(arg.slice(0, eq)) : undefined;
    if (column === undefined) throw new OptionsError(`apps: expected column=value, got ${JSON.stringify(arg)} (columns: ${COLUMNS.map((c) => c.name).join(', ')})`);
    values[column.name] = parseColumn(arg.slice(eq + 1), column, `apps: ${column.name}`);
  }
  return values;
}

// PostgreSQL tells its listeners itself; through Redis too when the cluster runs on it (the way for MySQL).
async function announce(store: SqlAppStore, id: string, options: Options): Promise<void> {
  await store.announce(id);
  if (options.adapterDriver !== 'redis') return;
  const { connectRedis, databaseOf } = require('../cluster/redis-link') as typeof import('../cluster/redis-link');
  const { Keys } = require('../cluster/keys') as typeof import('../cluster/keys');
  const link = connectRedis(options, new Log(false), { reconnected: () => undefined, error: () => undefined });
  try {
    if (!(await link.connected(2000))) throw new Error('Redis does not answer: the nodes see the change at their next refresh (APP_MANAGER_CACHE_TTL)');
    await link.publish(new Keys(options.redisKeyPrefix, databaseOf(options)).appChanges(), id);
  } finally {
    await link.close();
  }
}

function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}
