import type { AppState } from '../apps/app-state';
import type { Apps } from '../apps/apps';
import type { Counter } from '../metrics/counter';
import { seriesPerApp, type PwsMetrics } from '../metrics/pws-metrics';

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
    seriesPerApp(this.family, apps, REFUSAL_REASONS.map((reason) => [reason]));
  }

  count(app: AppState, reason: RefusalReason): void {
    this.family.add(app.metricsSlot * REFUSAL_REASONS.length + REFUSAL_REASONS.indexOf(reason), 1);
  }
}
