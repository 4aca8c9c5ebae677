import type { Pool } from 'mysql2/promise';
import type { Options } from '../../options';
import { QUERY_TIMEOUT_MS, bounded, splitTable, type Row, type SqlDb } from './sql-db';

/** MySQL or MariaDB through `mysql2`, loaded only when APP_MANAGER_DRIVER=mysql. */
export class MysqlDb implements SqlDb {
  readonly dialect = 'mysql';
  readonly where: string;
  private readonly pool: Pool;

  constructor(options: Options) {
    const mysql = require('mysql2/promise') as typeof import('mysql2/promise');
    this.where = `mysql://${options.mysqlHost}:${options.mysqlPort}/${options.mysqlDatabase}`;
    this.pool = mysql.createPool({
      host: options.mysqlHost,
      port: options.mysqlPort,
      user: options.mysqlUsername,
      password: options.mysqlPassword,
      database: options.mysqlDatabase,
      ssl: options.mysqlSsl === 'off' ? undefined : { rejectUnauthorized: options.mysqlSsl === 'verify' },
      connectTimeout: QUERY_TIMEOUT_MS,
      connectionLimit: 4,
      // A query waiting for a connection longer than its bound is given up; never let them pile up.
      queueLimit: 64,
      // JSON columns arrive parsed; tinyint(1) as numbers, which the columns' parser takes.
      supportBigNumbers: true,
      charset: 'utf8mb4',
    });
  }

  quote(identifier: string): string {
    return identifier
      .split('.')
      .map((part) => `\`${part}\``)
      .join('.');
  }

  async query(sql: string, params: unknown[] = []): Promise<Row[]> {
    const [rows] = await bounded(this.pool.query({ sql, values: params, timeout: QUERY_TIMEOUT_MS }), this.where);
    return Array.isArray(rows) ? (rows as Row[]) : [];
  }

  async execute(sql: string, params: unknown[] = []): Promise<number> {
    const [result] = await bounded(this.pool.query({ sql, values: params, timeout: QUERY_TIMEOUT_MS }), this.where);
    return (result as { affectedRows?: number }).affectedRows ?? 0;
  }

  async columns(table: string): Promise<Set<string>> {
    const { schema, name } = splitTable(table);
    const rows = await this.query('SELECT column_name AS c FROM information_schema.columns WHERE table_name = ? AND table_schema = COALESCE(?, DATABASE())', [name, schema]);
    return new Set(rows.map((r) => String(r.c).toLowerCase()));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
