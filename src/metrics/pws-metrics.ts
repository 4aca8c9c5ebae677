// The server's own families, named as pWS has always named them so existing dashboards
// keep working, plus the process collector, all on one registry.
import { Counter } from './counter';
import { Gauge } from './gauge';
import { ProcessCollector } from './process-collector';
import { Registry } from './registry';

/** Options of the server's metrics. */
export interface PwsMetricsOptions {
  /** Put before every family name, e.g. `pws_`. */
  prefix: string;
  /** The server's port, part of every server family's name: `<prefix><port>_connected`. */
  port: number;
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

  private readonly appFamilies: Array<Counter | Gauge>;
  private readonly processCollector: ProcessCollector;

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
  }

  /**
   * The app's slot, valid in all ten families: resolve it once per app and keep it, so
   * each frame costs one `add(slot, n)`. Idempotent.
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
