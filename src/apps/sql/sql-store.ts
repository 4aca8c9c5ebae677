import type { AppStore, Found, StoredApps } from '../app-store';
import { minimumOf, type AppConfig, type Options } from '../../options';
import { columnNamed, columnValue, rowToApp, COLUMNS } from './columns';
import { MysqlDb } from './mysql';
import { PostgresDb } from './postgres';
import type { SqlDb } from './sql-db';

// Rows read per query when loading every app: large tables load in pages.
const PAGE = 1000;

/** The apps table of a PostgreSQL or MySQL/MariaDB database (soketi's schema, plus optional columns of ours). */
export class SqlAppStore implements AppStore {
  readonly where: string;
  private readonly table: string;

  constructor(
    readonly db: SqlDb,
    table: string,
    /** DEFAULT_APP_* and the server-wide limits: what a missing column or a NULL means. */
    private readonly defaults: AppConfig,
  ) {
    this.table = db.quote(table);
    this.where = `${db.where} table ${table}`;
  }

  /** The store APP_MANAGER_DRIVER names; its database client is loaded only now. */
  static open(options: Options): SqlAppStore {
    const defaults = options.appDefaults;
    if (options.appManagerDriver === 'postgres') return new SqlAppStore(new PostgresDb(options), options.postgresTable, defaults);
    if (options.appManagerDriver === 'mysql') return new SqlAppStore(new MysqlDb(options), options.mysqlTable, defaults);
    throw new Error(`no SQL app store for APP_MANAGER_DRIVER=${options.appManagerDriver}`);
  }

  async all(): Promise<StoredApps> {
    const out: StoredApps = { apps: [], refused: [] };
    const keys = new Set<string>();
    let after: string | null = null;
    for (;;) {
      const rows = await this.db.query(`SELECT * FROM ${this.table}${after === null ? '' : ` WHERE ${this.db.quote('id')} > ?`} ORDER BY ${this.db.quote('id')} LIMIT ${PAGE}`, after === null ? [] : [after]);
      for (const row of rows) {
        const lower = lowerCased(row);
        try {
          const app = rowToApp(lower, this.defaults);
          if (keys.has(app.key)) throw new Error(`app ${JSON.stringify(app.id)}: key ${JSON.stringify(app.key)} is another app's too`);
          keys.add(app.key);
          out.apps.push(app);
        } catch (err) {
          out.refused.push({ id: typeof lower.id === 'string' ? lower.id : null, reason: (err as Error).message });
        }
      }
      if (rows.length < PAGE) return out;
      after = String(rows[rows.length - 1].id);
    }
  }

  async find(by: 'key' | 'id', value: string): Promise<Found> {
    const rows = (await this.db.query(`SELECT * FROM ${this.table} WHERE ${this.db.quote(by)} = ? LIMIT 2`, [value])).map(lowerCased).filter((row) => row[by] === value);
    if (rows.length === 0) return null;
    const id = typeof rows[0].id === 'string' ? rows[0].id : null;
    // Two rows with one key: neither is trusted, as all() leaves the second out.
    if (rows.length > 1) return { id, reason: `key ${JSON.stringify(value)} is on two rows` };
    try {
      return rowToApp(rows[0], this.defaults);
    } catch (err) {
      return { id, reason: (err as Error).message };
    }
  }

  watch(changed: (id: string | null) => void): { close(): Promise<void> } | null {
    return this.db instanceof PostgresDb ? this.db.listen(changed) : null;
  }

  /** Tells the nodes that app `id` changed, where the database can (PostgreSQL's NOTIFY). */
  async announce(id: string): Promise<void> {
    if (this.db instanceof PostgresDb) await this.db.notify(id);
  }

  /** Creates the table (soketi's columns and ours), or adds our columns to a table that lacks them. */
  async migrate(): Promise<string[]> {
    const have = await this.db.columns(this.tableName());
    if (have.size === 0) {
      await this.db.execute(createTable(this.db, this.table));
      return [`created ${this.where}`];
    }
    const done: string[] = [];
    for (const column of COLUMNS) {
      if (have.has(column.name)) continue;
      await this.db.execute(`ALTER TABLE ${this.table} ADD COLUMN ${columnDdl(this.db, column.name)}`);
      done.push(`added column ${column.name} to ${this.where}`);
    }
    return done.length > 0 ? done : [`${this.where} is up to date`];
  }

  /**
   * Inserts an app: soketi's required columns, and of the others only those in `given` (the
   * rest stay NULL, the server's defaults, which a soketi table's tinyint(1) limits could not hold).
   */
  async insert(app: AppConfig, given: readonly string[]): Promise<void> {
    const have = await this.db.columns(this.tableName());
    const columns = COLUMNS.filter((c) => have.has(c.name) && (given.includes(c.name) || (c.peer && minimumOf(c.field) !== 1)));
    const names = columns.map((c) => this.db.quote(c.name)).join(', ');
    await this.db.execute(`INSERT INTO ${this.table} (${names}) VALUES (${columns.map(() => '?').join(', ')})`, columns.map((c) => columnValue(c, app[c.field])));
  }

  /** Sets columns of app `id`; false when there is no such app. */
  async update(id: string, values: Record<string, unknown>): Promise<boolean> {
    const have = await this.db.columns(this.tableName());
    const names = Object.keys(values);
    for (const name of names) if (!have.has(name)) throw new Error(`${this.where} has no column ${name} (run "pws-server apps migrate")`);
    const sets = names.map((name) => `${this.db.quote(name)} = ?`).join(', ');
    const params = names.map((name) => columnValue(columnNamed(name)!, values[name]));
    return (await this.db.execute(`UPDATE ${this.table} SET ${sets} WHERE ${this.db.quote('id')} = ?`, [...params, id])) > 0;
  }

  async remove(id: string): Promise<boolean> {
    return (await this.db.execute(`DELETE FROM ${this.table} WHERE ${this.db.quote('id')} = ?`, [id])) > 0;
  }

  close(): Promise<void> {
    return this.db.close();
  }

  private tableName(): string {
    return this.table.replace(/["`]/g, '');
  }
}

// Some drivers keep a column's case as created (MySQL on some systems): the mapping is by lower-case name.
function lowerCased(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(row)) out[name.toLowerCase()] = value;
  return out;
}

// soketi's DDL, with its limits as plain nullable integers, and our optional columns.
function createTable(db: SqlDb, table: string): string {
  return `CREATE TABLE ${table} (${COLUMNS.map((c) => columnDdl(db, c.name)).join(', ')}, PRIMARY KEY (${db.quote('id')}), UNIQUE (${db.quote('key')}))`;
}

function columnDdl(db: SqlDb, name: string): string {
  const column = columnNamed(name)!;
  const quoted = db.quote(name);
  const flag = db.dialect === 'mysql' ? 'tinyint(1)' : 'smallint';
  switch (column.kind) {
    case 'string':
      return `${quoted} varchar(255) NOT NULL`;
    case 'webhooks':
      return `${quoted} json`;
    case 'bool':
      return column.peer ? `${quoted} ${flag} NOT NULL DEFAULT ${name === 'enabled' ? 1 : 0}` : `${quoted} ${flag} NULL`;
    case 'int':
      return ['max_connections', 'max_backend_events_per_sec', 'max_client_events_per_sec', 'max_read_req_per_sec'].includes(name)
        ? `${quoted} integer NOT NULL DEFAULT -1`
        : `${quoted} integer NULL`;
  }
}
