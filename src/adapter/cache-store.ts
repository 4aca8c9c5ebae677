import type { AppState } from '../apps/app-state';

/** How long a cache channel keeps its last event (Pusher: 30 minutes). */
export const CACHE_TTL_MS = 30 * 60 * 1000;
/** Misses of one empty channel within this window are one burst: one cache_miss webhook. */
export const MISS_BURST_MS = 60 * 1000;

/** A cache channel's last event: the frame as subscribers got it, and the seconds it has left. */
export interface Cached {
  frame: string;
  ttlSeconds: number;
}

/**
 * The last event of each cache channel (cache-, private-cache-, private-encrypted-cache-,
 * presence-cache-), kept for CACHE_TTL_MS: in this process on one node, in Redis (with the TTL)
 * in a cluster, so a subscriber on any node gets the same event.
 */
export interface CacheStore {
  /** Keeps `frame` as the channel's last event; never rejects (a failure is logged and counted). */
  set(app: AppState, channel: string, frame: string): void | Promise<void>;
  get(app: AppState, channel: string): Cached | null | Promise<Cached | null>;
  /** A subscriber found the channel empty: true for the first miss of a burst, which is reported. */
  missed(app: AppState, channel: string): boolean | Promise<boolean>;
}

// Entries expire lazily when read; every SWEEP_EVERY writes, expired ones are dropped so that
// channels nobody reads again do not hold memory.
const SWEEP_EVERY = 1000;

interface Entry {
  frame: string;
  expiresAt: number;
}

/** One node's cache, in memory. */
export class LocalCacheStore implements CacheStore {
  private readonly entries = new Map<AppState, Map<string, Entry>>();
  private readonly misses = new Map<AppState, Map<string, number>>();
  private writes = 0;

  set(app: AppState, channel: string, frame: string): void {
    let channels = this.entries.get(app);
    if (channels === undefined) this.entries.set(app, (channels = new Map()));
    channels.set(channel, { frame, expiresAt: performance.now() + CACHE_TTL_MS });
    this.misses.get(app)?.delete(channel);
    if (++this.writes % SWEEP_EVERY === 0) this.sweep();
  }

  get(app: AppState, channel: string): Cached | null {
    const channels = this.entries.get(app);
    const entry = channels?.get(channel);
    if (entry === undefined) return null;
    const left = entry.expiresAt - performance.now();
    if (left <= 0) {
      channels!.delete(channel);
      return null;
    }
    return { frame: entry.frame, ttlSeconds: Math.ceil(left / 1000) };
  }

  missed(app: AppState, channel: string): boolean {
    let channels = this.misses.get(app);
    if (channels === undefined) this.misses.set(app, (channels = new Map()));
    const now = performance.now();
    const last = channels.get(channel);
    if (last !== undefined && now - last < MISS_BURST_MS) return false;
    channels.set(channel, now);
    return true;
  }

  private sweep(): void {
    const now = performance.now();
    for (const channels of this.entries.values()) for (const [name, entry] of channels) if (entry.expiresAt <= now) channels.delete(name);
    for (const channels of this.misses.values()) for (const [name, at] of channels) if (now - at >= MISS_BURST_MS) channels.delete(name);
  }
}
