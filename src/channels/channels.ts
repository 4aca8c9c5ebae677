import type { AppState, Channel, Member } from '../apps';
import { PusherError, SubscriptionError } from '../protocol/errors';
import type { FanOut } from '../adapter/fan-out';
import type { Options } from '../options';
import { memberAdded, memberInfoBytes, memberRemoved, optionalString, requireString, subscriptionSucceeded } from '../protocol/frames';
import { socketAuthValid } from '../protocol/signatures';
import type { Socket } from '../ws/socket';
import { USER_CHANNEL_PREFIX, channelKind, userChannel, validChannelName } from '../protocol/channel-names';
import { socketId } from '../ws/socket-table';
/** Serialized presence state sent in subscription_succeeded: `{presence:{ids,hash,count}}`. */
export function presenceData(members: Map<string, Member>): string {
  const ids: string[] = [];
  // No prototype: a user id such as "__proto__" must be a key like any other.
  const hash: Record<string, unknown> = Object.create(null);
  for (const [id, member] of members) {
    ids.push(id);
    hash[id] = member.info;
  }
  return JSON.stringify({ presence: { ids, hash, count: ids.length } });
}

/** Subscription rules: authorization, presence membership and its limits, and channel bookkeeping. */
export class Channels {
  constructor(
    private readonly options: Options,
    private readonly fanOut: FanOut,
  ) {}

  /** Handles `pusher:subscribe`. Throws PusherError for malformed frames, SubscriptionError for refusals. */
  subscribe(ws: Socket, data: unknown): void {
    const socket = ws.getUserData();
    const app = socket.app;
    const name = requireString(data, 'channel', 'pusher:subscribe');
    if (name.startsWith(USER_CHANNEL_PREFIX)) {
      this.confirmUserChannel(ws, name);
      return;
    }
    if (!validChannelName(name, this.options.channelMaxNameLength)) {
      throw new PusherError(null, `Invalid channel name "${name.slice(0, 210)}": use at most ${this.options.channelMaxNameLength} of a-z A-Z 0-9 _ - = @ , . ;`);
    }
    const kind = channelKind(name);
    const auth = optionalString(data, 'auth', 'pusher:subscribe');
    const channelData = optionalString(data, 'channel_data', 'pusher:subscribe');

    if (kind !== 'public') {
      if (auth === undefined) throw new SubscriptionError(name, 'AuthError', `Subscribing to ${name} requires an auth signature`, 401);
      if (kind === 'presence' && channelData === undefined) throw new SubscriptionError(name, 'AuthError', 'Presence channels require channel_data', 401);
      const id = socketId(ws);
      const signed = kind === 'presence' ? `${id}:${name}:${channelData}` : `${id}:${name}`;
      if (!socketAuthValid(app.config.key, app.config.secret, auth, signed)) {
        throw new SubscriptionError(name, 'AuthError', `Invalid signature for ${name}`, 401);
      }
    }

    if (socket.channels?.has(name)) {
      // Re-subscribing is harmless: confirm again without counting the socket twice.
      const channel = app.channels.get(name)!;
      this.fanOut.send(ws, subscriptionSucceeded(name, channel.members ? presenceData(channel.members) : '{}'));
      return;
    }

    if (kind === 'presence') {
      this.joinPresence(ws, app, name, channelData!);
      return;
    }
    this.attach(ws, app, name, '', false);
    this.fanOut.send(ws, subscriptionSucceeded(name, '{}'));
  }

  // pusher-js subscribes to its user's #server-to-user-<id> after sign-in. Sign-in already
  // delivers that channel's events to the socket, so this only confirms it, and refuses anyone else's.
  private confirmUserChannel(ws: Socket, name: string): void {
    const userId = ws.getUserData().userId;
    if (userId === null || name !== userChannel(userId)) {
      throw new SubscriptionError(name, 'AuthError', `Only a socket signed in as that user may subscribe to ${name.slice(0, 210)}`, 403);
    }
    this.fanOut.send(ws, subscriptionSucceeded(name, '{}'));
  }

  private joinPresence(ws: Socket, app: AppState, name: string, channelData: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(channelData);
    } catch {
      throw new SubscriptionError(name, 'InvalidChannelData', 'channel_data must be a JSON object', 400);
    }
    const userIdRaw = parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>).user_id : undefined;
    if ((typeof userIdRaw !== 'string' && typeof userIdRaw !== 'number') || userIdRaw === '') {
      throw new SubscriptionError(name, 'InvalidChannelData', 'channel_data must have a user_id string or number', 400);
    }
    const userId = String(userIdRaw);
    const userInfo = (parsed as Record<string, unknown>).user_info;
    const limitBytes = this.options.presenceMaxMemberSizeInKb * 1024;
    if (userInfo !== undefined && memberInfoBytes(name, userInfo) > limitBytes) {
      throw new SubscriptionError(name, 'LimitReached', `Presence member info is larger than ${this.options.presenceMaxMemberSizeInKb} KB`, 4100);
    }
    const existing = app.channels.get(name)?.members;
    if (existing !== undefined && existing !== null && !existing.has(userId) && existing.size >= this.options.presenceMaxMembers) {
      throw new SubscriptionError(name, 'LimitReached', `Presence channel ${name} already has the maximum of ${this.options.presenceMaxMembers} members`, 4100);
    }

    const channel = this.attach(ws, app, name, userId, true);
    const members = channel.members!;
    const member = members.get(userId);
    if (member !== undefined) {
      member.sockets++;
    } else {
      members.set(userId, { info: userInfo ?? null, sockets: 1 });
      this.fanOut.publish(app, name, memberAdded(name, userId, userInfo ?? null), ws);
    }
    this.fanOut.send(ws, subscriptionSucceeded(name, presenceData(members)));
  }

  private attach(ws: Socket, app: AppState, name: string, userId: string, presence: boolean): Channel {
    const socket = ws.getUserData();
    let channel = app.channels.get(name);
    if (channel === undefined) {
      channel = { subscriptions: 0, members: presence ? new Map() : null };
      app.channels.set(name, channel);
    }
    channel.subscriptions++;
    (socket.channels ??= new Map()).set(name, userId);
    ws.subscribe(app.topic(name));
    return channel;
  }

  /** Handles `pusher:unsubscribe`; unknown channels are ignored, as Pusher does. */
  unsubscribe(ws: Socket, data: unknown): void {
    const name = requireString(data, 'channel', 'pusher:unsubscribe');
    const socket = ws.getUserData();
    if (!socket.channels?.has(name)) return;
    ws.unsubscribe(socket.app.topic(name));
    this.detach(socket.app, name, socket.channels.get(name)!);
    socket.channels.delete(name);
  }

  /** Removes a closed socket from all its channels (uWS has already dropped its topics). */
  leaveAll(ws: Socket): void {
    const socket = ws.getUserData();
    if (socket.channels === null) return;
    for (const [name, userId] of socket.channels) this.detach(socket.app, name, userId);
    socket.channels = null;
  }

  private detach(app: AppState, name: string, userId: string): void {
    const channel = app.channels.get(name);
    if (channel === undefined) return;
    if (channel.members !== null) {
      const member = channel.members.get(userId);
      if (member !== undefined && --member.sockets === 0) {
        channel.members.delete(userId);
        this.fanOut.publish(app, name, memberRemoved(name, userId));
      }
    }
    if (--channel.subscriptions === 0) app.channels.delete(name);
  }
}
