import type { FanOut } from '../adapter/fan-out';
import type { Log } from '../log';
import type { AppConfig } from '../options';
import { ErrorCode } from '../protocol/errors';
import { socketsMustReconnect, type AppState } from './app-state';
import type { AppStore, Found, RefusedRow } from './app-store';
import type { Apps } from './apps';
import type { StoreMetrics } from './store-metrics';

/** Unknown keys and ids remembered at most: a flood of made-up keys costs a bounded map, not the database. */
export const MAX_REMEMBERED_MISSES = 10_000;

/** Lookups of distinct unknown keys or ids running at once; beyond it, a lookup is answered "try again". */
export const MAX_LOOKUPS_IN_FLIGHT = 64;

/** What a lookup of a key or id memory does not know gives: the app, none, or `unavailable` (the store did not answer). */
export type Lookup = AppState | null | 'unavailable';

/** Finds apps memory does not know yet: the WebSocket upgrade and the REST API ask it on a miss. */
export interface AppLookup {
  byKey(key: string): Promise<Lookup>;
  byId(id: string): Promise<Lookup>;
}

export interface AppSyncContext {
  apps: Apps;
  store: AppStore;
  fanOut: FanOut;
  log: Log;
  metrics: StoreMetrics | null;
  /** APP_MANAGER_CACHE_TTL: between reloads of the table, and how long a miss is remembered. */
  ttlMs: number;
}

/**
 * Keeps the apps in memory in step with an app store: every app loaded at start, the table
 * reloaded every TTL, a change announced (NOTIFY, or Redis) read at once. A known app never
 * costs a query; an unknown key or id costs one, then is remembered as unknown for the TTL.
 * An app removed closes its sockets with 4001, one disabled with 4003, one whose change needs
 * its sockets to reconnect with 4200.
 */
export class AppSync implements AppLookup {
  private readonly misses = new Map<string, number>();
  private readonly asking = new Map<string, Promise<Lookup>>();
  private timer: NodeJS.Timeout | null = null;
  private watcher: { close(): Promise<void> } | null = null;
  private answering = true;
  private refusedSeen = new Set<string>();
  private refreshing: Promise<void> | null = null;
  // Answers can arrive out of order (a reload that read its pages before a change was announced,
  // two announcements read on two connections): an answer about an app is applied only when no
  // change of that app was announced after its query began. Ids are forgotten once a later reload covers them.
  private sequence = 0;
  private readonly announced = new Map<string, number>();

  constructor(private readonly ctx: AppSyncContext) {}

  /** Loads every app, and starts watching: a store that does not answer is retried at each refresh (unknown keys meanwhile get 4200). */
  async start(): Promise<void> {
    await this.refresh();
    this.watcher = this.ctx.store.watch((id) => this.changed(id));
    this.timer = setInterval(() => void this.refresh(), this.ctx.ttlMs);
    this.timer.unref();
    this.ctx.log.info(`apps: ${this.ctx.apps.size} from ${this.ctx.store.where}`);
  }

  /** A change announced for app `id` (null: anything may have changed). */
  changed(id: string | null): void {
    this.misses.clear();
    if (id === null) {
      void this.refresh();
      return;
    }
    const asked = ++this.sequence;
    this.announced.set(id, asked);
    this.ctx.store.find('id', id).then(
      (found) => {
        this.answered();
        if (this.announced.get(id) === asked) this.apply(id, found);
      },
      (err) => this.failed(err),
    );
  }

  byKey(key: string): Promise<Lookup> {
    return this.lookup('key', key);
  }

  byId(id: string): Promise<Lookup> {
    return this.lookup('id', id);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    await this.watcher?.close();
    await this.refreshing;
    await this.ctx.store.close();
  }

  /** Reloads the whole table and applies every difference. */
  refresh(): Promise<void> {
    this.refreshing ??= this.reload().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async reload(): Promise<void> {
    const { store, apps, metrics, log } = this.ctx;
    const began = this.sequence;
    let stored;
    try {
      stored = await store.all();
    } catch (err) {
      metrics?.refreshes.add(1, 1);
      this.failed(err);
      return;
    }
    metrics?.refreshes.add(0, 1);
    this.answered();
    const seen = new Set<string>();
    for (const row of stored.refused) {
      seen.add(row.reason);
      if (!this.refusedSeen.has(row.reason)) log.warn(`apps: left out a row of ${store.where}: ${row.reason}${row.id !== null && apps.findById(row.id) ? ' (the app keeps its last good settings)' : ''}`);
    }
    this.refusedSeen = seen;
    const current = (id: string) => (this.announced.get(id) ?? 0) <= began;
    const present = new Set([...stored.apps.map((app) => app.id), ...stored.refused.flatMap((row) => (row.id === null ? [] : [row.id]))]);
    for (const app of [...apps.all()]) if (!present.has(app.config.id) && current(app.config.id)) this.apply(app.config.id, null);
    for (const config of stored.apps) if (current(config.id)) this.apply(config.id, config);
    for (const [id, announced] of this.announced) if (announced <= began) this.announced.delete(id);
  }

  private lookup(by: 'key' | 'id', value: string): Promise<Lookup> {
    const name = `${by}\n${value}`;
    const until = this.misses.get(name);
    if (until !== undefined && until > performance.now()) {
      this.ctx.metrics?.cachedMisses.add(0, 1);
      return Promise.resolve(null);
    }
    // No key or id the table could hold: PostgreSQL refuses NUL, and none is worth a query.
    if (value === '' || value.length > 255 || /[\u0000-\u001f]/.test(value)) return Promise.resolve(null);
    let asked = this.asking.get(name);
    if (asked === undefined) {
      // A flood of distinct unknown keys waits on nothing: past this many queries at once, try again.
      if (this.asking.size >= MAX_LOOKUPS_IN_FLIGHT) return Promise.resolve('unavailable');
      asked = this.ask(by, value, name).finally(() => this.asking.delete(name));
      this.asking.set(name, asked);
    }
    return asked;
  }

  private async ask(by: 'key' | 'id', value: string, name: string): Promise<Lookup> {
    const { store, apps, metrics } = this.ctx;
    const began = this.sequence;
    let found;
    try {
      found = await store.find(by, value);
    } catch (err) {
      metrics?.lookup('error');
      this.failed(err);
      return 'unavailable';
    }
    this.answered();
    if (found === null || !isApp(found)) {
      metrics?.lookup('missing');
      this.misses.delete(name);
      if (this.misses.size >= MAX_REMEMBERED_MISSES) this.misses.delete(this.misses.keys().next().value!);
      this.misses.set(name, performance.now() + this.ctx.ttlMs);
      return null;
    }
    metrics?.lookup('found');
    if ((this.announced.get(found.id) ?? 0) <= began) this.apply(found.id, found);
    return (by === 'key' ? apps.findByKey(value) : apps.findById(value)) ?? null;
  }

  // Makes memory hold what the store has for app `id`: its config, null when the app is gone, or
  // a row that cannot be read, which leaves the app as it was.
  private apply(id: string, found: Found): void {
    const { apps, log } = this.ctx;
    const app = apps.findById(id);
    try {
      if (found !== null && !isApp(found)) {
        if (app !== undefined) log.warn(`apps: ${id} keeps its last good settings: its row in ${this.ctx.store.where} cannot be read (${found.reason})`);
        return;
      }
      if (found === null) {
        if (app === undefined) return;
        this.closeSockets(app, ErrorCode.unknownApp, 'App was removed');
        apps.remove(app);
        log.info(`apps: ${id} removed`);
      } else if (app === undefined) {
        apps.add(found);
        log.info(`apps: ${id} added`);
      } else if (!sameConfig(app.config, found)) {
        // Closed first, while the per-socket structures they are in are still the old ones.
        if (socketsMustReconnect(app.config, found)) this.closeSockets(app, ErrorCode.reconnect, 'App settings changed, please reconnect');
        else if (app.config.enabled && !found.enabled) this.closeSockets(app, ErrorCode.appDisabled, 'App is disabled');
        apps.update(app, found);
        log.info(`apps: ${id} changed`);
      }
    } catch (err) {
      // Another app holds the key: the row waits until the table is consistent again.
      log.warn(`apps: ${id} not taken from ${this.ctx.store.where}: ${(err as Error).message}`);
    } finally {
      this.ctx.metrics?.apps.set(0, apps.size);
    }
  }

  private closeSockets(app: AppState, code: number, message: string): void {
    app.sockets.forEach((ws) => this.ctx.fanOut.close(ws, code, message));
  }

  private failed(err: unknown): void {
    if (!this.answering) return;
    this.answering = false;
    this.ctx.log.warn(`apps: ${this.ctx.store.where} does not answer (${(err as Error)?.message ?? err}); known apps keep working, unknown keys are asked to retry`);
  }

  private answered(): void {
    if (this.answering) return;
    this.answering = true;
    this.ctx.log.info(`apps: ${this.ctx.store.where} answers again`);
  }
}

function isApp(found: AppConfig | RefusedRow): found is AppConfig {
  return 'key' in found;
}

function sameConfig(a: AppConfig, b: AppConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
