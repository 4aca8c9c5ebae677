import type { Broadcaster } from '../adapter/adapter';
import type { FanOut } from '../adapter/fan-out';
import type { Refusals } from '../limits/refusals';
import type { Options } from '../options';
import { channelKind } from '../protocol/channel-names';
import { ErrorCode, PusherError } from '../protocol/errors';
import { clientEventFrame, errorFrame } from '../protocol/frames';
import { socketId, type Socket } from '../ws/socket';
import { channelUser } from '../ws/socket-channels';
import type { ChannelEvents } from './events';

/** What relaying a client event needs from the rest of the server. */
export interface ClientEventContext {
  options: Options;
  fanOut: FanOut;
  broadcaster: Broadcaster;
  events: ChannelEvents | null;
  refusals: Refusals | null;
}

// Sent at the abuser's rate, so built once: no Error, no string per refusal.
const OVER_RATE = errorFrame(ErrorCode.clientOverRateLimit, 'Client event rate limit reached: this event was dropped');

/**
 * Relays a `client-*` event from one socket to the other subscribers of its channel:
 * only on private and presence channels the sender has joined, only when the app allows client
 * messages, never echoed to the sender, tagged with `user_id` on presence channels, and within
 * the app's client-event rate per socket.
 */
export function relayClientEvent(ctx: ClientEventContext, ws: Socket, event: string, channel: string | undefined, data: unknown): void {
  const socket = ws.getUserData();
  const app = socket.app;
  if (!app.config.enableClientMessages) throw new PusherError(null, 'Client events are not enabled for this app');
  if (channel === undefined) throw new PusherError(null, `Client event ${event} has no channel`);
  const kind = channelKind(channel);
  if (kind !== 'private' && kind !== 'presence') {
    throw new PusherError(null, `Client events are only allowed on private and presence channels, not on ${channel}`);
  }
  const userId = channelUser(socket.channels, channel);
  if (userId === undefined) throw new PusherError(null, `Client event ${event} rejected: not subscribed to ${channel}`);
  if (event.length > app.config.maxEventNameLength) {
    throw new PusherError(null, `Client event name is longer than ${app.config.maxEventNameLength} characters`);
  }
  if (app.clientEventBuckets !== null && !app.clientEventBuckets.take(socket.slot, performance.now())) {
    ctx.refusals?.count(app, 'client_events');
    ctx.fanOut.send(ws, OVER_RATE);
    return;
  }
  const id = socketId(ws);
  const presenceUser = kind === 'presence' ? userId : undefined;
  ctx.broadcaster.publish(app, channel, clientEventFrame(event, channel, data, presenceUser), id);
  ctx.events?.clientEvent(app, channel, event, data, id, presenceUser);
}
