// What the server streams to the page: the one definition both sides compile against (types
// only; the server imports them with `import type`, so neither side loads this module).

/** One line of the event log. */
export interface LogRow {
  /** Wall-clock milliseconds. */
  t: number;
  app: string;
  type: string;
  channel?: string;
  event?: string;
  socket?: string;
  user?: string;
  data?: string;
  code?: number;
  detail?: string;
  /** The node it happened on (ADAPTER_DRIVER=redis). */
  node?: string;
}

/** One point of the chart: a node's figures, rates per second since the point before. */
export interface Sample {
  t: number;
  connections: number;
  channels: number;
  members: number;
  /** Null with METRICS_ENABLED off (the metrics engine counts messages). */
  messagesIn: number | null;
  messagesOut: number | null;
  webhooksSent: number;
  webhooksFailed: number;
}

/** An occupied channel as the console lists it. */
export interface ChannelRow {
  name: string;
  subscriptions: number;
  users: number;
}

/** The live figures of an app, once a second. */
export interface Figures {
  connections: number;
  channels: number;
  members: number;
  /** The busiest channels. */
  list: ChannelRow[];
  /** Webhook POSTs sent and failed since the node(s) started. */
  webhooksSent: number;
  webhooksFailed: number;
  /** Messages per second over the last second; null with METRICS_ENABLED off. */
  rates: { messagesIn: number | null; messagesOut: number | null };
}
