import type { AppState } from '../apps/app-state';
import type { Apps } from '../apps/apps';
import type { Counter } from '../metrics/counter';
import type { Gauge } from '../metrics/gauge';
import type { Histogram } from '../metrics/histogram';
import { seriesPerApp, type PwsMetrics } from '../metrics/pws-metrics';

// From a receiver on the same host (a few ms, plus the batching wait) to the 5 minutes of retries.
const DELIVERY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * Why events were given up: `expired` (undelivered 5 minutes after queueing), `full` (the
 * stream's length bound), `shutdown` (left at a shutdown without Redis to hand them to).
 */
export const DROP_REASONS = ['expired', 'full', 'shutdown'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/**
 * The webhook families (only when some app has webhooks), on the server's registry. A webhook
 * is one POST, as Pusher counts them; with batching it carries up to 20 events.
 */
export class WebhookMetrics {
  /** POSTs answered 2xx, by app (slot = the app's metricsSlot). */
  readonly sent: Counter;
  /** POST attempts that failed: network error, timeout or a non-2xx answer. */
  readonly failed: Counter;
  /** POST attempts that were retries of a failed one. */
  readonly retried: Counter;
  /** Events delivered (inside 2xx-answered POSTs). */
  readonly eventsSent: Counter;
  /** Events given up, by app and reason (slot: dropSlot()). */
  readonly eventsDropped: Counter;
  /** Events queued (each once, where it happened). */
  readonly eventsQueued: Counter;
  /** Events taken over from a node that stopped or died (ADAPTER_DRIVER=redis). */
  readonly eventsClaimed: Counter;
  /** Events waiting in the app's queues, in flight included. */
  readonly queued: Gauge;
  /** Seconds from an event's queueing to the 2xx answer for its POST (batching wait and retries included). */
  readonly deliverySeconds: Histogram;

  constructor(metrics: PwsMetrics, apps: Apps) {
    const { registry, prefix } = metrics;
    const labelNames = ['app_id'];
    this.sent = registry.counter({ name: `${prefix}webhooks_sent_total`, help: 'Webhooks (POSTs) answered with a 2xx status.', labelNames });
    this.failed = registry.counter({ name: `${prefix}webhooks_failed_total`, help: 'Webhook POST attempts that failed: network error, timeout or a non-2xx status.', labelNames });
    this.retried = registry.counter({ name: `${prefix}webhooks_retried_total`, help: 'Webhook POST attempts that retried a failed one.', labelNames });
    this.eventsSent = registry.counter({ name: `${prefix}webhook_events_sent_total`, help: 'Webhook events delivered in POSTs answered with a 2xx status.', labelNames });
    this.eventsDropped = registry.counter({ name: `${prefix}webhook_events_dropped_total`, help: 'Webhook events given up, by reason: expired (undelivered 5 minutes after queueing), full (the stream\'s length bound), shutdown.', labelNames: ['app_id', 'reason'] });
    seriesPerApp(this.eventsDropped, apps, DROP_REASONS.map((reason) => [reason]));
    this.eventsQueued = registry.counter({ name: `${prefix}webhook_events_queued_total`, help: 'Webhook events queued.', labelNames });
    this.eventsClaimed = registry.counter({ name: `${prefix}webhook_events_claimed_total`, help: 'Webhook events this node took over from a node that stopped or died.', labelNames });
    this.queued = registry.gauge({ name: `${prefix}webhook_events_queued`, help: 'Webhook events waiting to be delivered, in flight included.', labelNames });
    for (const family of [this.sent, this.failed, this.retried, this.eventsSent, this.eventsQueued, this.eventsClaimed, this.queued]) seriesPerApp(family, apps);
    this.deliverySeconds = registry.histogram({ name: `${prefix}webhook_delivery_duration_seconds`, help: "Seconds from a webhook event's queueing to the 2xx answer for its POST, batching wait and retries included.", buckets: DELIVERY_BUCKETS });
    this.deliverySeconds.series([]);
  }

  /** The series of `app`'s events dropped for `reason`. */
  dropSlot(app: AppState, reason: DropReason): number {
    return app.metricsSlot * DROP_REASONS.length + DROP_REASONS.indexOf(reason);
  }
}
