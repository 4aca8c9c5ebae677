// The server's own families: the ten named as pWS has always named them so existing
// dashboards keep working, the process collector, then the newer ones, named by Prometheus'
// conventions (no port in the name, `_total` counters, seconds), all on one registry.
import { totalmem } from 'node:os';
import type { Apps } from '../apps/apps';
import { Counter } from './counter';
import type { Family } from './family';
import { Gauge } from './gauge';
import { Histogram } from './histogram';
import { ProcessCollector } from './process-collector';
import { Registry } from './registry';
import { loaded } from '../uws';

/** Options of the server's metrics. */
export interface PwsMetricsOptions {
  /** Put before every family name, e.g. `pws_`. */
  prefix: string;
  /** The server's port, part of every server family's name: `<prefix><port>_connected`. */
  port: number;
  /** HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD, in percent of system memory, exported in bytes. */
  memoryThresholdPercent?: number;
}

/** Close codes of connections refused at connect time, each a series from the start (4001 has no app). */
const REFUSAL_CODES = [4001, 4003, 4004, 4007, 4100, 4200];

/**
 * Close codes of accepted connections kept as themselves: the server's (1009 too large, 4009
 * unauthorized or terminated, 4200 shutdown, 4201 pong timeout) and the usual client and
 * network ones (1000 normal, 1001 going away, 1005 no code, 1006 dropped without a close frame,
 * which includes the 1 MB backpressure limit). Any other code is one a client chose: `other`.
 */
const CLOSE_CODES = [1000, 1001, 1005, 1006, 1009, 4009, 4200, 4201];

// From a read answered at once (~0.1 ms) to a call held up by Redis or a large batch.
const REQUEST_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Gives a family labelled by app_id (and, with `more`, by further labels: one series per app
 * and entry) its series for every app, now and as apps come, at the app's metricsSlot (times the
 * number of entries), as in the server's own families: a subsystem then counts with
 * `add(app.metricsSlot, n)` and never looks a label up. A removed app's series go with it.
 */
export function seriesPerApp(family: Family, apps: Apps, more: readonly (readonly string[])[] = [[]]): void {
  apps.watch({
    added(app) {
      const first = app.metricsSlot * more.length;
      family.skipTo(first);
      more.forEach((labels, i) => {
        if (family.series([app.config.id, ...labels]) !== first + i) throw new Error(`${family.name}: metric slots out of step for app ${app.config.id}`);
      });
    },
    removed(app) {
      for (const labels of more) family.remove([app.config.id, ...labels]);
    },
  });
}

/** Every family the server updates, each labelled by `app_id`, and the scrape body. */
export class PwsMetrics {
  /** The registry behind render(); other drivers add their families here. */
  readonly registry = new Registry();
  /** The prefix given, for other drivers naming their families like ours. */
  readonly prefix: string;

  /** The number of currently connected sockets. */
  readonly connected: Gauge;
  /** Connection requests. */
  readonly newConnections: Counter;
  /** Disconnections. */
  readonly newDisconnections: Counter;
  /** Bytes received over WebSockets. */
  readonly socketReceivedBytes: Counter;
  /** Bytes sent over WebSockets. */
  readonly socketTransmittedBytes: Counter;
  /** Bytes received by the REST API. */
  readonly httpReceivedBytes: Counter;
  /** Bytes sent back by the REST API. */
  readonly httpTransmittedBytes: Counter;
  /** REST API calls received. */
  readonly httpCallsReceived: Counter;
  /** WebSocket messages received from connections. */
  readonly wsMessagesReceived: Counter;
  /** WebSocket messages sent to connections. */
  readonly wsMessagesSent: Counter;

  /** Channels with a subscriber on this node, by app; read from the apps at each render. */
  readonly channels: Gauge;
  /** Subscriptions to those channels, by app. */
  readonly channelSubscriptions: Gauge;
  /** Members of presence channels on this node (one per user and channel), by app. */
  readonly presenceMembers: Gauge;
  /** Frames published to a channel on this node, each counted once, by app. */
  readonly channelMessages: Counter;
  /** Copies of those frames handed to subscribed sockets, by app: divided by channelMessages, the fan-out. */
  readonly channelDeliveries: Counter;
  /** Connections refused at connect time, by close code. */
  readonly connectionRefusals: Counter;
  /** Accepted connections closed, by close code. */
  readonly connectionCloses: Counter;
  /** REST API answers: seconds from the request to its answer, by route pattern and status class. */
  readonly httpRequestDuration: Histogram;

  private readonly appFamilies: Array<Counter | Gauge>;
  private readonly processCollector: ProcessCollector;
  private readonly refusalSlots = new Map<number, number>();
  private readonly closeSlots = new Map<number, number>();
  private readonly otherCloses: number;
  // Route pattern → its histogram slot per status class (1xx … 5xx), -1 until first seen.
  private readonly requestSlots = new Map<string, number[]>();

  constructor(options: PwsMetricsOptions) {
    this.prefix = options.prefix;
    const base = `${options.prefix}${options.port}_`;
    const labelNames = ['app_id'];
    const counter = (name: string, help: string): Counter => this.registry.counter({ name: base + name, help, labelNames });

    this.connected = this.registry.gauge({ name: `${base}connected`, help: 'The number of currently connected sockets.', labelNames });
    this.newConnections = counter('new_connections_total', 'Total amount of pWS connection requests.');
    this.newDisconnections = counter('new_disconnections_total', 'Total amount of pWS disconnections.');
    this.socketReceivedBytes = counter('socket_received_bytes', 'Total amount of bytes that pWS received.');
    this.socketTransmittedBytes = counter('socket_transmitted_bytes', 'Total amount of bytes that pWS transmitted.');
    this.httpReceivedBytes = counter('http_received_bytes', "Total amount of bytes that pWS's REST API received.");
    this.httpTransmittedBytes = counter('http_transmitted_bytes', "Total amount of bytes that pWS's REST API sent back.");
    this.httpCallsReceived = counter('http_calls_received_total', 'Total amount of received REST API calls.');
    this.wsMessagesReceived = counter(
      'ws_messages_received_total',
      'The total amount of WS messages received from connections by the server.',
    );
    this.wsMessagesSent = counter('ws_messages_sent_total', 'The total amount of WS messages sent to the connections from the server.');
    this.appFamilies = [
      this.connected,
      this.newConnections,
      this.newDisconnections,
      this.socketReceivedBytes,
      this.socketTransmittedBytes,
      this.httpReceivedBytes,
      this.httpTransmittedBytes,
      this.httpCallsReceived,
      this.wsMessagesReceived,
      this.wsMessagesSent,
    ];
    this.processCollector = new ProcessCollector(this.registry, { prefix: options.prefix });

    const { prefix } = options;
    const buildInfo = this.registry.gauge({
      name: `${prefix}build_info`,
      help: 'Always 1: the versions of pws-server, Node.js and the native uWebSockets.js build this node runs.',
      labelNames: ['version', 'nodejs_version', 'uws_version'],
    });
    buildInfo.set(buildInfo.series([packageVersion('../../../package.json'), process.version, loaded.build.version]), 1);
    if (options.memoryThresholdPercent !== undefined) {
      const threshold = this.registry.gauge({
        name: `${prefix}memory_threshold_bytes`,
        help: 'Resident memory above which new connections are refused (4100) and /accept-traffic answers 503.',
      });
      threshold.set(threshold.series([]), Math.round((totalmem() * options.memoryThresholdPercent) / 100));
    }

    this.channels = this.registry.gauge({ name: `${prefix}channels`, help: 'Channels with at least one subscriber on this node.', labelNames });
    this.channelSubscriptions = this.registry.gauge({ name: `${prefix}channel_subscriptions`, help: 'Subscriptions to channels on this node.', labelNames });
    this.presenceMembers = this.registry.gauge({ name: `${prefix}presence_members`, help: 'Members of presence channels on this node, one per user and channel.', labelNames });
    this.channelMessages = this.registry.counter({
      name: `${prefix}channel_messages_total`,
      help: 'Messages published to a channel on this node, each counted once however many sockets receive it.',
      labelNames,
    });
    this.channelDeliveries = this.registry.counter({
      name: `${prefix}channel_deliveries_total`,
      help: "Copies of channel messages handed to this node's subscribed sockets.",
      labelNames,
    });
    this.appFamilies.push(this.channels, this.channelSubscriptions, this.presenceMembers, this.channelMessages, this.channelDeliveries);

    this.connectionRefusals = this.registry.counter({
      name: `${prefix}connection_refusals_total`,
      help: 'Connections refused at connect time, by the close code they were given.',
      labelNames: ['code'],
    });
    for (const code of REFUSAL_CODES) this.refusalSlots.set(code, this.connectionRefusals.series([String(code)]));
    this.connectionCloses = this.registry.counter({
      name: `${prefix}connection_closes_total`,
      help: 'Accepted connections closed, by close code; codes a client chose beyond the usual ones are "other".',
      labelNames: ['code'],
    });
    for (const code of CLOSE_CODES) this.closeSlots.set(code, this.connectionCloses.series([String(code)]));
    this.otherCloses = this.connectionCloses.series(['other']);
    this.httpRequestDuration = this.registry.histogram({
      name: `${prefix}http_request_duration_seconds`,
      help: 'REST API requests, from their arrival to their answer, by route and status class.',
      labelNames: ['route', 'status_class'],
      buckets: REQUEST_DURATION_BUCKETS,
    });
  }

  /**
   * Gives every app its slot and reads the apps' channels, subscriptions and presence members
   * at each render: one pass over the channel maps per scrape, nothing per frame.
   */
  addApps(apps: Apps): void {
    apps.watch({
      added: (app) => {
        app.metricsSlot = this.appSlot(app.config.id);
      },
      removed: (app) => {
        this.connected.remove([app.config.id]);
        for (const family of this.appFamilies) family.remove([app.config.id]);
      },
    });
    this.registry.onCollect(() => {
      for (const app of apps.all()) {
        let subscriptions = 0;
        let members = 0;
        for (const channel of app.channels.values()) {
          subscriptions += channel.subscriptions;
          if (channel.members !== null) members += channel.members.size;
        }
        this.channels.set(app.metricsSlot, app.channels.size);
        this.channelSubscriptions.set(app.metricsSlot, subscriptions);
        this.presenceMembers.set(app.metricsSlot, members);
      }
    });
  }

  /** Counts a connection refused at connect time with `code`. */
  countRefusal(code: number): void {
    this.connectionRefusals.add(this.refusalSlots.get(code) ?? this.connectionRefusals.series([String(code)]), 1);
  }

  /** Counts an accepted connection closed with `code`, as the close handler was given it. */
  countClose(code: number): void {
    this.connectionCloses.add(this.closeSlots.get(code) ?? this.otherCloses, 1);
  }

  /** Records a REST answer with `status`, `seconds` after its request arrived on the route `route` (the pattern). */
  observeRequest(route: string, status: number, seconds: number): void {
    let slots = this.requestSlots.get(route);
    if (slots === undefined) this.requestSlots.set(route, (slots = [-1, -1, -1, -1, -1]));
    const c = Math.floor(status / 100) - 1;
    if (slots[c] < 0) slots[c] = this.httpRequestDuration.series([route, `${c + 1}xx`]);
    this.httpRequestDuration.observe(slots[c], seconds);
  }

  /**
   * The app's slot, valid in every family labelled by app_id alone: resolve it once per app
   * and keep it, so each frame costs one `add(slot, n)`. Idempotent.
   */
  appSlot(appId: string): number {
    const slot = this.connected.series([appId]);
    for (const family of this.appFamilies) {
      // The families only ever gain series together, so their indices cannot drift apart.
      if (family.series([appId]) !== slot) throw new Error(`metric slots out of step for app ${appId}`);
    }
    return slot;
  }

  /** The scrape body, text format 0.0.4 (serve it with CONTENT_TYPE). */
  render(): string {
    return this.registry.render();
  }

  /** Stops the process collector's observers so the process can exit. */
  stop(): void {
    this.processCollector.stop();
  }
}

// `version` of a package.json, resolved from this file (or a package name); `unknown` if unreadable.
function packageVersion(path: string): string {
  try {
    const { version } = require(path) as { version?: unknown };
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}
