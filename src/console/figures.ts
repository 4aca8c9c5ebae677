import type { ChannelState } from '../adapter/adapter';
import type { AppState } from '../apps/app-state';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { ConsoleTap } from './tap';
import type { ChannelRow, Figures } from './web/wire';

/** Running totals a node keeps for an app; rates are their differences over time. */
export interface Totals {
  /** WebSocket messages received and sent; null with METRICS_ENABLED off (the metrics engine counts them). */
  messagesIn: number | null;
  messagesOut: number | null;
  webhooksSent: number;
  webhooksFailed: number;
}

/** An app's connections, channels and presence members at one moment. */
export type Occupancy = Pick<Figures, 'connections' | 'channels' | 'members' | 'list'>;

// The browser shows the busiest channels; a million-channel app must not become a megabyte a second.
const MAX_LISTED_CHANNELS = 200;

/** This node's totals for the app. */
export function localTotals(app: AppState, metrics: PwsMetrics | null, tap: ConsoleTap): Totals {
  const webhooks = tap.webhookTotals(app.config.id);
  return {
    messagesIn: metrics === null ? null : metrics.wsMessagesReceived.get(app.metricsSlot),
    messagesOut: metrics === null ? null : metrics.wsMessagesSent.get(app.metricsSlot),
    webhooksSent: webhooks.sent,
    webhooksFailed: webhooks.failed,
  };
}

/** Connections, channels and presence members as the ChannelState knows them: cluster-wide on Redis. */
export async function occupancy(app: AppState, state: ChannelState): Promise<Occupancy> {
  const channels = await state.channels(app, '', true);
  let members = 0;
  const list: ChannelRow[] = [];
  for (const [name, summary] of channels) {
    members += summary.userCount;
    const row = { name, subscriptions: summary.subscriptionCount, users: summary.userCount };
    // The busiest ones only, kept sorted: once the list is full, most channels fail the first comparison.
    if (list.length === MAX_LISTED_CHANNELS && !busier(row, list[list.length - 1])) continue;
    let i = list.length;
    while (i > 0 && busier(row, list[i - 1])) i--;
    list.splice(i, 0, row);
    if (list.length > MAX_LISTED_CHANNELS) list.pop();
  }
  return { connections: state.connections(app), channels: channels.size, members, list };
}

/** Adds another node's totals to these (a null stays null: that figure needs metrics everywhere). */
export function addTotals(a: Totals, b: Totals): Totals {
  return {
    messagesIn: a.messagesIn === null || b.messagesIn === null ? null : a.messagesIn + b.messagesIn,
    messagesOut: a.messagesOut === null || b.messagesOut === null ? null : a.messagesOut + b.messagesOut,
    webhooksSent: a.webhooksSent + b.webhooksSent,
    webhooksFailed: a.webhooksFailed + b.webhooksFailed,
  };
}

// More subscriptions first; names break ties, so the list does not reshuffle from one second to the next.
function busier(a: ChannelRow, b: ChannelRow): boolean {
  return a.subscriptions > b.subscriptions || (a.subscriptions === b.subscriptions && a.name < b.name);
}
