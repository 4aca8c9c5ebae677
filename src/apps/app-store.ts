import type { AppConfig } from '../options';

/** A row that could not be read as an app: its id (null when even that is unusable) and why. */
export interface RefusedRow {
  id: string | null;
  reason: string;
}

/** What a load of every app gave: the apps, and the rows left out. */
export interface StoredApps {
  apps: AppConfig[];
  refused: RefusedRow[];
}

/** What a lookup of one app found: the app, no such row, or a row that cannot be read. */
export type Found = AppConfig | null | RefusedRow;

/**
 * Where apps live when they are not in the config file: a database table shared by every
 * node. The server keeps every app in memory (AppSync); the store is read at start, at each
 * refresh, on an announced change, and for a key or id memory does not know.
 */
export interface AppStore {
  /** Where it reads from, for log lines: `postgres://host:port/db table apps`. */
  readonly where: string;
  all(): Promise<StoredApps>;
  /**
   * The app whose key or id is exactly `value` (a database whose collation ignores case or
   * trailing spaces may return another: that is none), null when there is none, or the row
   * that cannot be read.
   */
  find(by: 'key' | 'id', value: string): Promise<Found>;
  /**
   * Calls `changed(id)` for each change announced by the database itself (PostgreSQL's
   * NOTIFY), and `changed(null)` when announcements may have been missed. Null when the
   * database announces nothing (MySQL: changes arrive through Redis, or at the next refresh).
   */
  watch(changed: (id: string | null) => void): { close(): Promise<void> } | null;
  close(): Promise<void>;
}
