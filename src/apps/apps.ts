import type { AppConfig } from '../options';
import { AppState } from './app-state';

/**
 * Told of every app as it comes and goes. Subsystems with per-app state (metric series, rate
 * buckets, webhook streams, cluster listeners) watch the apps instead of reading them once, so an
 * app added by the app store at run time gets the same parts as one from the config file.
 */
export interface AppsWatcher {
  added(app: AppState): void;
  /** The app is gone: its sockets were closed, and what was kept for it can go too. */
  removed?(app: AppState): void;
  /** The app's config was replaced in place (fields read at each use); `before` is the old one. */
  changed?(app: AppState, before: AppConfig): void;
}

/** Finds apps by id (REST API) and by key (WebSocket path); the set may change while running. */
export class Apps {
  private readonly byId = new Map<string, AppState>();
  private readonly byKey = new Map<string, AppState>();
  private readonly watchers: AppsWatcher[] = [];
  // Never reused: a removed app's topics and metric slots must not meet a newer app's.
  private created = 0;

  constructor(configs: AppConfig[] = []) {
    for (const config of configs) this.add(config);
  }

  findById(id: string): AppState | undefined {
    return this.byId.get(id);
  }

  findByKey(key: string): AppState | undefined {
    return this.byKey.get(key);
  }

  all(): IterableIterator<AppState> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }

  /** Calls `watcher.added` for every app now, and tells it of every change from then on. */
  watch(watcher: AppsWatcher): void {
    for (const app of this.byId.values()) watcher.added(app);
    this.watchers.push(watcher);
  }

  /** Adds an app; its id and key must be free. */
  add(config: AppConfig): AppState {
    if (this.byId.has(config.id)) throw new Error(`app id "${config.id}" is taken`);
    if (this.byKey.has(config.key)) throw new Error(`app key "${config.key}" is taken by app "${this.byKey.get(config.key)!.config.id}"`);
    const app = new AppState(config, this.created++);
    this.byId.set(config.id, app);
    this.byKey.set(config.key, app);
    for (const watcher of this.watchers) watcher.added(app);
    return app;
  }

  /**
   * Gives `app` a changed config of the same id. Returns true when its sockets must reconnect
   * (AppState.reconfigure): the caller closes them.
   */
  update(app: AppState, config: AppConfig): boolean {
    const before = app.config;
    if (config.key !== before.key) {
      const holder = this.byKey.get(config.key);
      if (holder !== undefined) throw new Error(`app key "${config.key}" is taken by app "${holder.config.id}"`);
      this.byKey.delete(before.key);
      this.byKey.set(config.key, app);
    }
    const reconnect = app.reconfigure(config);
    for (const watcher of this.watchers) watcher.changed?.(app, before);
    return reconnect;
  }

  /** Takes the app out of the lookups; the caller closed its sockets first. */
  remove(app: AppState): void {
    if (this.byId.get(app.config.id) !== app) return;
    this.byId.delete(app.config.id);
    this.byKey.delete(app.config.key);
    for (const watcher of this.watchers) watcher.removed?.(app);
  }
}
