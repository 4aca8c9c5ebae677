import type { AppState } from '../apps/app-state';
import type { Apps } from '../apps/apps';
import type { Counter } from '../metrics/counter';
import { seriesPerApp, type PwsMetrics } from '../metrics/pws-metrics';

/**
 * Subscription-count frames sent and cache hits and misses, by app (slot = the app's
 * metricsSlot). The counts family has its series from the start when an app enables the
 * feature; the cache families get theirs at the first cache channel subscribed (cache channels
 * need no option), so a server that never sees them scrapes as before.
 */
export class ExtrasMetrics {
  private readonly countFrames: Counter;
  private readonly cacheHits: Counter;
  private readonly cacheMisses: Counter;

  constructor(
    metrics: PwsMetrics,
    private readonly apps: Apps,
  ) {
    const labelNames = ['app_id'];
    const { registry, prefix } = metrics;
    this.countFrames = registry.counter({ name: `${prefix}subscription_count_frames_total`, help: 'pusher_internal:subscription_count frames published (each reaches every subscriber of its channel).', labelNames });
    this.cacheHits = registry.counter({ name: `${prefix}cache_hits_total`, help: "New subscribers of cache channels sent the channel's last event.", labelNames });
    this.cacheMisses = registry.counter({ name: `${prefix}cache_misses_total`, help: 'New subscribers of cache channels that found the cache empty (pusher:cache_miss).', labelNames });
    if ([...apps.all()].some((app) => app.config.enableSubscriptionCount)) seriesPerApp(this.countFrames, apps);
  }

  countFrameSent(app: AppState): void {
    this.add(this.countFrames, app);
  }

  cacheHit(app: AppState): void {
    this.add(this.cacheHits, app);
  }

  cacheMiss(app: AppState): void {
    this.add(this.cacheMisses, app);
  }

  private add(family: Counter, app: AppState): void {
    if (family.size === 0) seriesPerApp(family, this.apps);
    family.add(app.metricsSlot, 1);
  }
}
