import type { Apps } from '../apps/apps';
import type { Counter } from '../metrics/counter';
import type { Gauge } from '../metrics/gauge';
import type { Histogram } from '../metrics/histogram';
import { seriesPerApp, type PwsMetrics } from '../metrics/pws-metrics';

// From a loopback hop (~0.2 ms) to a Redis under strain (seconds).
const LAG_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The cluster's families (Redis adapter only), on the server's registry. */
export class ClusterMetrics {
  /** Frames this node published to Redis for the other nodes, by app (slot = the app's metricsSlot). */
  readonly published: Counter;
  /** Frames received from other nodes through Redis (this node's own echoes excluded), by app. */
  readonly received: Counter;
  /** Seconds from the publish on the origin node to the receipt here (wall clocks of two hosts). */
  readonly lag: Histogram;
  /** Redis command and connection failures (slot 0). */
  readonly redisErrors: Counter;
  /** Connections to Redis made again after a loss (slot 0). */
  readonly redisReconnects: Counter;
  /** Dead nodes whose sockets this node took out of the shared state (slot 0). */
  readonly reapedNodes: Counter;
  /** Live nodes of the cluster, at this node's last heartbeat (slot 0). */
  readonly nodes: Gauge;
  /** Times this node closed its connections because the cluster may have dropped its entries (slot 0). */
  readonly fences: Counter;

  constructor(metrics: PwsMetrics, apps: Apps) {
    const { registry, prefix } = metrics;
    const labelNames = ['app_id'];
    this.published = registry.counter({ name: `${prefix}cluster_messages_published_total`, help: 'Frames this node published to Redis for the other nodes.', labelNames });
    this.received = registry.counter({ name: `${prefix}cluster_messages_received_total`, help: 'Frames received from other nodes through Redis.', labelNames });
    for (const family of [this.published, this.received]) seriesPerApp(family, apps);
    this.lag = registry.histogram({ name: `${prefix}cluster_delivery_lag_seconds`, help: 'Seconds from the publish on the origin node to the receipt on this one.', buckets: LAG_BUCKETS });
    this.redisErrors = registry.counter({ name: `${prefix}redis_errors_total`, help: 'Redis command and connection failures.' });
    this.redisReconnects = registry.counter({ name: `${prefix}redis_reconnects_total`, help: 'Connections to Redis made again after a loss.' });
    this.reapedNodes = registry.counter({ name: `${prefix}cluster_nodes_reaped_total`, help: 'Dead nodes whose connections this node removed from the shared state.' });
    this.nodes = registry.gauge({ name: `${prefix}cluster_nodes`, help: 'Live nodes of the cluster at the last heartbeat.' });
    this.fences = registry.counter({ name: `${prefix}cluster_fences_total`, help: 'Times this node closed its connections because the cluster may have dropped its entries.' });
    for (const family of [this.lag, this.redisErrors, this.redisReconnects, this.reapedNodes, this.nodes, this.fences]) family.series([]);
  }
}
