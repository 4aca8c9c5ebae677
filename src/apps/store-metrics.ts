import type { Counter } from '../metrics/counter';
import type { Gauge } from '../metrics/gauge';
import type { PwsMetrics } from '../metrics/pws-metrics';

/** Why a lookup went to the database, and what it found. */
export const LOOKUP_RESULTS = ['found', 'missing', 'error'] as const;
export type LookupResult = (typeof LOOKUP_RESULTS)[number];

/** The app store's families (APP_MANAGER_DRIVER other than config). */
export class StoreMetrics {
  /** Database lookups of a key or id memory did not know, by result (slot: LOOKUP_RESULTS order). */
  readonly lookups: Counter;
  /** Lookups answered from the remembered misses, with no query. */
  readonly cachedMisses: Counter;
  /** Reloads of the whole table: slot 0 ok, slot 1 error. */
  readonly refreshes: Counter;
  /** Apps in memory. */
  readonly apps: Gauge;

  constructor(metrics: PwsMetrics) {
    const { registry, prefix } = metrics;
    this.lookups = registry.counter({ name: `${prefix}app_store_lookups_total`, help: 'Database lookups of an app key or id not in memory, by result: found, missing, error.', labelNames: ['result'] });
    for (const result of LOOKUP_RESULTS) this.lookups.series([result]);
    this.cachedMisses = registry.counter({ name: `${prefix}app_store_cached_misses_total`, help: 'Unknown app keys and ids answered from the remembered misses, without a query.' });
    this.cachedMisses.series([]);
    this.refreshes = registry.counter({ name: `${prefix}app_store_refreshes_total`, help: 'Reloads of the apps table, by result: ok, error.', labelNames: ['result'] });
    this.refreshes.series(['ok']);
    this.refreshes.series(['error']);
    this.apps = registry.gauge({ name: `${prefix}app_store_apps`, help: 'Apps held in memory from the app store.' });
    this.apps.series([]);
  }

  lookup(result: LookupResult): void {
    this.lookups.add(LOOKUP_RESULTS.indexOf(result), 1);
  }
}
