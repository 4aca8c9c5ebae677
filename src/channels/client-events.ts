import { channelKind } from '../protocol/channel-names';
import { PusherError } from '../protocol/errors';
import type { FanOut } from '../adapter/fan-out';
import type { Options } from '../options';
import { clientEventFrame } from '../protocol/frames';
import type { Socket } from '../ws/socket';

/**
 * Relays a `client-*` event from one socket to the other subscribers of its channel:
 * only on private and presence channels the sender has joined, only when the app allows client
 * messages, never echoed to the sender, tagged with `user_id` on presence channels.
 */
export function relayClientEvent(ws: Socket, event: string, channel: string | undefined, data: unknown, options: Options, fanOut: FanOut): void {
  const socket = ws.getUserData();
  const app = socket.app;
  if (!app.config.enableClientMessages) throw new PusherError(null, 'Client events are not enabled for this app');
  if (channel === undefined) throw new PusherError(null, `Client event ${event} has no channel`);
  const kind = channelKind(channel);
  if (kind !== 'private' && kind !== 'presence') {
    throw new PusherError(null, `Client events are only allowed on private and presence channels, not on ${channel}`);
  }
  const userId = socket.channels?.get(channel);
  if (userId === undefined) throw new PusherError(null, `Client event ${event} rejected: not subscribed to ${channel}`);
  if (event.length > options.eventMaxNameLength) {
    throw new PusherError(null, `Client event name is longer than ${options.eventMaxNameLength} characters`);
  }
  fanOut.publish(app, channel, clientEventFrame(event, channel, data, kind === 'presence' ? userId : undefined), ws);
}
