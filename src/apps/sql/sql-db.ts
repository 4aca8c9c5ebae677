/** Every query to the app store gives up after this long: a database that hangs must not hold a connect or a REST call. */
export const QUERY_TIMEOUT_MS = 2000;

/** A row as the driver returns it, by column name. */
export type Row = Record<string, unknown>;

/**
 * The little the app store needs of a SQL database. SQL is written once with `?` placeholders
 * and `quote()`d identifiers; each driver turns it into its own dialect.
 */
export interface SqlDb {
  /** `postgres` or `mysql`: the DDL of `apps migrate` differs. */
  readonly dialect: 'postgres' | 'mysql';
  /** Where it connects, for messages: `postgres://host:port/database`. */
  readonly where: string;
  /** An identifier (a table, schema.table, or column name) quoted for this database. */
  quote(identifier: string): string;
  /** Runs one statement, bounded by QUERY_TIMEOUT_MS; rows for a SELECT, [] otherwise. */
  query(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Runs one statement; the number of rows it changed. */
  execute(sql: string, params?: unknown[]): Promise<number>;
  /** The table's column names, lower case; empty when there is no such table. */
  columns(table: string): Promise<Set<string>>;
  close(): Promise<void>;
}

/** Rejects with `what timed out` when `promise` takes longer than QUERY_TIMEOUT_MS. */
export function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${QUERY_TIMEOUT_MS} ms`)), QUERY_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Splits `schema.table` for information_schema lookups; the schema is null when not given. */
export function splitTable(table: string): { schema: string | null; name: string } {
  const dot = table.indexOf('.');
  return dot < 0 ? { schema: null, name: table } : { schema: table.slice(0, dot), name: table.slice(dot + 1) };
}
