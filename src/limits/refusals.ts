import type { AppState, Apps } from '../apps';
import type { Counter } from '../metrics/counter';
import type { PwsMetrics } from '../metrics/pws-metrics';

/** Why a quota or a rate limit refused something, as the metric's `reason` label says it. */
export const REFUSAL_REASONS = ['connection_quota', 'backend_events', 'client_events', 'read_requests'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** `<prefix>limit_refusals_total{app_id, reason}`: what the quotas and rate limits turned away. */
export class Refusals {
  private readonly family: Counter;

  constructor(metrics: PwsMetrics, apps: Apps) {
    this.family = metrics.registry.counter({
      name: `${metrics.prefix}limit_refusals_total`,
      help: 'Connections, REST requests and client events refused by a quota or rate limit.',
      labelNames: ['app_id', 'reason'],
    });
    for (const app of apps.all()) {
      REFUSAL_REASONS.forEach((reason, i) => {
        // Created app by app in the apps' order, so a slot is computed, never looked up.
        if (this.family.series([app.config.id, reason]) !== app.metricsSlot * REFUSAL_REASONS.length + i) throw new Error('refusal slots out of step');
      });
    }
  }

  count(app: AppState, reason: RefusalReason): void {
    this.family.add(app.metricsSlot * REFUSAL_REASONS.length + REFUSAL_REASONS.indexOf(reason), 1);
  }
}
