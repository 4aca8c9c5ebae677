import type { Client, Pool, PoolConfig } from 'pg';
import type { Options, SqlSsl } from '../../options';
import { QUERY_TIMEOUT_MS, bounded, splitTable, type Row, type SqlDb } from './sql-db';

type Pg = typeof import('pg');

/** The channel `pws-server apps` notifies after each change, with the app's id as payload. */
export const CHANGES_CHANNEL = 'pws_apps';

/** PostgreSQL through `pg`, loaded only when APP_MANAGER_DRIVER=postgres. */
export class PostgresDb implements SqlDb {
  readonly dialect = 'postgres';
  readonly where: string;
  private readonly pg: Pg;
  private readonly pool: Pool;
  private readonly config: PoolConfig;

  constructor(options: Options) {
    this.pg = require('pg') as Pg;
    this.where = `postgres://${options.postgresHost}:${options.postgresPort}/${options.postgresDatabase}`;
    this.config = {
      host: options.postgresHost,
      port: options.postgresPort,
      user: options.postgresUsername,
      password: options.postgresPassword,
      database: options.postgresDatabase,
      ssl: sslOf(options.postgresSsl),
      connectionTimeoutMillis: QUERY_TIMEOUT_MS,
      statement_timeout: QUERY_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      application_name: 'pws-server',
    };
    this.pool = new this.pg.Pool({ ...this.config, max: 4, idleTimeoutMillis: 30_000 });
    // An idle client that loses its connection emits here; the next query opens another.
    this.pool.on('error', () => undefined);
  }

  quote(identifier: string): string {
    return identifier
      .split('.')
      .map((part) => `"${part}"`)
      .join('.');
  }

  async query(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await bounded(this.pool.query(numbered(sql), params), this.where)).rows as Row[];
  }

  async execute(sql: string, params: unknown[] = []): Promise<number> {
    return (await bounded(this.pool.query(numbered(sql), params), this.where)).rowCount ?? 0;
  }

  async columns(table: string): Promise<Set<string>> {
    const { schema, name } = splitTable(table);
    const rows = await this.query('SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = COALESCE(?, current_schema())', [name, schema]);
    return new Set(rows.map((r) => String(r.column_name).toLowerCase()));
  }

  /** Tells every node listening that app `id` changed. */
  async notify(id: string): Promise<void> {
    await this.query('SELECT pg_notify(?, ?)', [CHANGES_CHANNEL, id]);
  }

  /**
   * A connection of its own that LISTENs for changes: `changed(id)` for each notification, and
   * `changed(null)` whenever it was lost and made again, as notifications may have been missed.
   * Reconnects every second until close().
   */
  listen(changed: (id: string | null) => void): ChangeListener {
    return new ChangeListener(this.pg, this.config, changed);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** The LISTEN connection of PostgresDb.listen(). */
export class ChangeListener {
  private client: Client | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private lost = false;

  constructor(
    private readonly pg: Pg,
    private readonly config: PoolConfig,
    private readonly changed: (id: string | null) => void,
  ) {
    void this.open();
  }

  private async open(): Promise<void> {
    const client = new this.pg.Client(this.config);
    client.on('notification', (message) => this.changed(message.payload ?? null));
    client.on('error', () => this.retry(client));
    client.on('end', () => this.retry(client));
    this.client = client;
    try {
      await bounded(client.connect(), 'LISTEN connection');
      await bounded(client.query(`LISTEN ${CHANGES_CHANNEL}`), 'LISTEN');
      if (this.closed) return void client.end().catch(() => undefined);
      if (this.lost) this.changed(null);
      this.lost = false;
    } catch {
      this.retry(client);
    }
  }

  private retry(client: Client): void {
    if (this.client !== client || this.closed) return;
    this.client = null;
    this.lost = true;
    client.end().catch(() => undefined);
    this.timer = setTimeout(() => void this.open(), 1000);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }
}

function sslOf(mode: SqlSsl): PoolConfig['ssl'] {
  if (mode === 'off') return false;
  return { rejectUnauthorized: mode === 'verify' };
}

// `?` → `$1`, `$2`…: the SQL of the app store is written once for both databases.
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}
