import type { AppState } from '../apps/app-state';
import type { ChannelEvents } from '../channels/events';
import { socketId, type Socket } from '../ws/socket';
import type { LogRow } from './web/wire';

/** Where rows go while a console is open somewhere: this node's streams, the cluster relay. */
export type RowSink = (row: LogRow) => void;

// Event data is shown, not replayed: the log keeps this much of each payload.
const MAX_DATA_CHARS = 1000;

/**
 * The event log's tap on the server's hot paths. Every hook starts with one boolean check, so
 * while no console is open (here or, with Redis, anywhere) it costs nothing else. Webhook
 * outcomes are always counted: they are figures, not log rows.
 */
export class ConsoleTap implements ChannelEvents {
  /** True while a console is open on this node or, with Redis, on any node. */
  active = false;
  private sink: RowSink = () => {};
  private readonly webhooks = new Map<string, { sent: number; failed: number }>();

  /** Sends rows to `sink` from now on (set once the streams and the relay exist). */
  drainTo(sink: RowSink): void {
    this.sink = sink;
  }

  connection(app: AppState, ws: Socket): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'connection', socket: socketId(ws) });
  }

  disconnection(app: AppState, ws: Socket, code: number): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'disconnection', socket: socketId(ws), code });
  }

  subscribed(app: AppState, channel: string, ws: Socket): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'subscribed', channel, socket: socketId(ws) });
  }

  apiMessage(app: AppState, channel: string, event: string, data: string): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'api_message', channel, event, data: clip(data) });
  }

  webhookSent(app: AppState, events: number): void {
    this.webhookCounts(app.config.id).sent++;
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'webhook', detail: `sent (${events} event${events === 1 ? '' : 's'})` });
  }

  webhookFailed(app: AppState, reason: string): void {
    this.webhookCounts(app.config.id).failed++;
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'webhook_failed', detail: reason });
  }

  /** Webhook POSTs this node sent and failed for the app since start. */
  webhookTotals(appId: string): { sent: number; failed: number } {
    return this.webhooks.get(appId) ?? { sent: 0, failed: 0 };
  }

  occupied(app: AppState, channel: string): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'occupied', channel });
  }

  vacated(app: AppState, channel: string): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'vacated', channel });
  }

  memberAdded(app: AppState, channel: string, userId: string): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'member_added', channel, user: userId });
  }

  memberRemoved(app: AppState, channel: string, userId: string): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'member_removed', channel, user: userId });
  }

  subscriptionCount(): void {}

  cacheMiss(app: AppState, channel: string): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'cache_miss', channel });
  }

  clientEvent(app: AppState, channel: string, event: string, data: unknown, socket: string, userId: string | undefined): void {
    if (this.active) this.sink({ t: Date.now(), app: app.config.id, type: 'client_event', channel, event, socket, user: userId, data: clip(typeof data === 'string' ? data : JSON.stringify(data) ?? '') });
  }

  private webhookCounts(appId: string): { sent: number; failed: number } {
    let counts = this.webhooks.get(appId);
    if (counts === undefined) this.webhooks.set(appId, (counts = { sent: 0, failed: 0 }));
    return counts;
  }
}

function clip(text: string): string {
  return text.length > MAX_DATA_CHARS ? `${text.slice(0, MAX_DATA_CHARS)}…` : text;
}
