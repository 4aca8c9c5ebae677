import type { AppConfig } from '../options';

/** What a load of every app gave: the apps, and why some rows were left out. */
export interface StoredApps {
  apps: AppConfig[];
  /** One line per row that could not be read as an app (named by its id). */
  refused: string[];
}

/**
 * Where apps live when they are not in the config file: a database table shared by every
 * node. The server keeps every app in memory (AppSync); the store is read at start, at each
 * refresh, on an announced change, and for a key or id memory does not know.
 */
export interface AppStore {
  /** Where it reads from, for log lines: `postgres://host:port/db table apps`. */
  readonly where: string;
  all(): Promise<StoredApps>;
  /** The app with this key or id, or null when there is none (or its row cannot be read). */
  find(by: 'key' | 'id', value: string): Promise<AppConfig | null>;
  /**
   * Calls `changed(id)` for each change announced by the database itself (PostgreSQL's
   * NOTIFY), and `changed(null)` when announcements may have been missed. Null when the
   * database announces nothing (MySQL: changes arrive through Redis, or at the next refresh).
   */
  watch(changed: (id: string | null) => void): { close(): Promise<void> } | null;
  close(): Promise<void>;
}
