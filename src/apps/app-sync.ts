import type { FanOut } from '../adapter/fan-out';
import type { Log } from '../log';
import type { AppConfig } from '../options';
import { ErrorCode } from '../protocol/errors';
import type { AppState } from './app-state';
import type { AppStore } from './app-store';
import type { Apps } from './apps';
import type { StoreMetrics } from './store-metrics';

/** Unknown keys and ids remembered at most: a flood of made-up keys costs a bounded map, not the database. */
export const MAX_REMEMBERED_MISSES = 10_000;

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
    this.ctx.store.find('id', id).then(
      (config) => {
        this.answered();
        this.apply(id, config);
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
    for (const line of stored.refused) {
      seen.add(line);
      if (!this.refusedSeen.has(line)) log.warn(`apps: left out a row of ${store.where}: ${line}`);
    }
    this.refusedSeen = seen;
    const ids = new Set(stored.apps.map((app) => app.id));
    for (const app of [...apps.all()]) if (!ids.has(app.config.id)) this.apply(app.config.id, null);
    for (const config of stored.apps) this.apply(config.id, config);
  }

  private lookup(by: 'key' | 'id', value: string): Promise<Lookup> {
    const name = `${by}\n${value}`;
    const until = this.misses.get(name);
    if (until !== undefined && until > performance.now()) {
      this.ctx.metrics?.cachedMisses.add(0, 1);
      return Promise.resolve(null);
    }
    let asked = this.asking.get(name);
    if (asked === undefined) {
      asked = this.ask(by, value, name).finally(() => this.asking.delete(name));
      this.asking.set(name, asked);
    }
    return asked;
  }

  private async ask(by: 'key' | 'id', value: string, name: string): Promise<Lookup> {
    const { store, apps, metrics } = this.ctx;
    let config: AppConfig | null;
    try {
      config = await store.find(by, value);
    } catch (err) {
      metrics?.lookup('error');
      this.failed(err);
      return 'unavailable';
    }
    this.answered();
    metrics?.lookup(config === null ? 'missing' : 'found');
    if (config === null) {
      this.misses.delete(name);
      if (this.misses.size >= MAX_REMEMBERED_MISSES) this.misses.delete(this.misses.keys().next().value!);
      this.misses.set(name, performance.now() + this.ctx.ttlMs);
      return null;
    }
    this.apply(config.id, config);
    return (by === 'key' ? apps.findByKey(value) : apps.findById(value)) ?? null;
  }

  // Makes memory hold `config` for app `id` (null: the app is gone).
  private apply(id: string, config: AppConfig | null): void {
    const { apps, log } = this.ctx;
    const app = apps.findById(id);
    try {
      if (config === null) {
        if (app === undefined) return;
        this.closeSockets(app, ErrorCode.unknownApp, 'App was removed');
        apps.remove(app);
        log.info(`apps: ${id} removed`);
      } else if (app === undefined) {
        apps.add(config);
        log.info(`apps: ${id} added`);
      } else if (!sameConfig(app.config, config)) {
        const wasEnabled = app.config.enabled;
        if (apps.update(app, config)) this.closeSockets(app, ErrorCode.reconnect, 'App settings changed, please reconnect');
        else if (wasEnabled && !config.enabled) this.closeSockets(app, ErrorCode.appDisabled, 'App is disabled');
        log.info(`apps: ${id} changed`);
      }
    } catch (err) {
      // Another app holds the key: the row waits until the table is consistent again.
      log.warn(`apps: ${id} not taken from ${this.ctx.store.where}: ${(err as Error).message}`);
    }
    this.ctx.metrics?.apps.set(0, apps.size);
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

function sameConfig(a: AppConfig, b: AppConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
