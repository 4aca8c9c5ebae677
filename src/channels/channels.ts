import type { AppState, Channel } from '../apps/app-state';
import type { Broadcaster, ChannelState, JoinEdges, LeaveEdges } from '../adapter/adapter';
import type { FanOut } from '../adapter/fan-out';
import type { CacheStore } from '../adapter/cache-store';
import { LocalChannelState } from '../adapter/local-state';
import { settle } from '../adapter/settle';
import type { Log } from '../log';
import type { Options } from '../options';
import { USER_CHANNEL_PREFIX, channelKind, isCacheChannel, userChannel, validChannelName } from '../protocol/channel-names';
import { PusherError, SubscriptionError } from '../protocol/errors';
import { cacheMissFrame, memberAdded, memberInfoBytes, memberRemoved, optionalString, presenceData, requireString, subscriptionErrorFrame, subscriptionSucceeded } from '../protocol/frames';
import { socketAuthValid } from '../protocol/signatures';
import { idOf, socketId, type Socket, type SocketData } from '../ws/socket';
import { channelUser, forEachChannel, withChannel, withoutChannel } from '../ws/socket-channels';
import type { ChannelEvents } from './events';
import type { ConsoleTap } from '../console/tap';
import type { ExtrasMetrics } from './extras-metrics';
import type { SubscriptionCounts } from './subscription-counts';

/** What Channels needs from the rest of the server. */
export interface ChannelsContext {
  options: Options;
  fanOut: FanOut;
  broadcaster: Broadcaster;
  state: ChannelState;
  cache: CacheStore;
  /** Live subscription counts; null when no app enables them. */
  counts: SubscriptionCounts | null;
  events: ChannelEvents | null;
  metrics: ExtrasMetrics | null;
  log: Log;
  /** The console's event log; null with CONSOLE_ENABLED off. */
  console: ConsoleTap | null;
}

/**
 * Subscription rules (authorization, presence membership and its limits) and this node's
 * channel bookkeeping. Each change is reduced to this node's first and last here, and the
 * ChannelState turns it into the cluster's edges. With Redis, a subscribe waits for that answer;
 * every continuation checks the socket is still open before touching it.
 */
export class Channels {
  constructor(private readonly ctx: ChannelsContext) {}

  /** Handles `pusher:subscribe`. Throws PusherError for malformed frames, SubscriptionError for refusals. */
  subscribe(ws: Socket, data: unknown): void | Promise<void> {
    const socket = ws.getUserData();
    const app = socket.app;
    const name = requireString(data, 'channel', 'pusher:subscribe');
    if (name.startsWith(USER_CHANNEL_PREFIX)) {
      this.confirmUserChannel(ws, name);
      return;
    }
    if (!validChannelName(name, app.config.maxChannelNameLength)) {
      throw new PusherError(null, `Invalid channel name "${name.slice(0, 210)}": use at most ${app.config.maxChannelNameLength} of a-z A-Z 0-9 _ - = @ , . ;`);
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

    if (channelUser(socket.channels, name) !== undefined) {
      // Re-subscribing is harmless: confirm again without counting the socket twice.
      if (kind !== 'presence') {
        this.ctx.fanOut.send(ws, subscriptionSucceeded(name, '{}'));
        return;
      }
      const members = this.ctx.state.members(app, name);
      // Without the cluster's list (Redis down), this node's own members: a confirmation, not an error.
      const known = members instanceof Promise ? members.catch(() => new LocalChannelState().members(app, name)) : members;
      return settle(known, (list) => {
        if (socket.ended === null) this.ctx.fanOut.send(ws, subscriptionSucceeded(name, presenceData(list)));
      });
    }

    if (kind === 'presence') return this.joinPresence(ws, socket, name, channelData!);
    const channel = this.attach(ws, socket, name, '');
    const join = listened(channel, this.ctx.state.join(app, name, false, null));
    // Not settle(): its callback would be a closure allocated on every subscribe, also on one node.
    if (join instanceof Promise) return join.then((edges) => this.joined(ws, socket, name, edges, '', undefined, null));
    this.joined(ws, socket, name, join, '', undefined, null);
  }

  // pusher-js subscribes to its user's #server-to-user-<id> after sign-in. Sign-in already
  // delivers that channel's events to the socket, so this only confirms it, and refuses anyone else's.
  private confirmUserChannel(ws: Socket, name: string): void {
    const userId = ws.getUserData().app.signedIn.get(ws);
    if (userId === undefined || name !== userChannel(userId)) {
      throw new SubscriptionError(name, 'AuthError', `Only a socket signed in as that user may subscribe to ${name.slice(0, 210)}`, 403);
    }
    this.ctx.fanOut.send(ws, subscriptionSucceeded(name, '{}'));
  }

  private joinPresence(ws: Socket, socket: SocketData, name: string, channelData: string): void | Promise<void> {
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
    const info = (parsed as Record<string, unknown>).user_info ?? null;
    if (info !== null && memberInfoBytes(name, info) > socket.app.config.maxPresenceMemberSizeInKb * 1024) {
      throw new SubscriptionError(name, 'LimitReached', `Presence member info is larger than ${socket.app.config.maxPresenceMemberSizeInKb} KB`, 4100);
    }
    const existing = socket.app.channels.get(name)?.members;
    if (existing !== undefined && existing !== null && !existing.has(userId) && existing.size >= socket.app.config.maxPresenceMembersPerChannel) {
      throw new SubscriptionError(name, 'LimitReached', presenceFull(name, socket.app.config.maxPresenceMembersPerChannel), 4100);
    }

    const channel = this.attach(ws, socket, name, userId);
    const first = channel.subscriptions === 1;
    const members = channel.members!;
    let member = members.get(userId);
    if (member === undefined) members.set(userId, (member = { info, sockets: 1 }));
    else member.sockets++;
    // Edges of the channel that reach this node before the member list are sent again after it.
    const hold = this.ctx.broadcaster.holdEdges(socket.app, name, first);
    // Every socket of the user joins as the member: the state adds it when this node holds no
    // membership of the user yet, and refuses it then if the channel is full.
    const join = this.ctx.state.join(socket.app, name, true, { userId, info: member.info });
    const memberInfo = member.info;
    return settle(listened(channel, join), (edges) => this.joined(ws, socket, name, edges, userId, memberInfo, hold));
  }

  private joined(ws: Socket, socket: SocketData, name: string, edges: JoinEdges, userId: string, info: unknown, hold: object | null): void {
    const { fanOut, broadcaster, events } = this.ctx;
    const app = socket.app;
    if (edges.full) {
      broadcaster.releaseEdges(hold, edges.version, null);
      // Another node filled the channel meanwhile: the state counted the subscription but not
      // the member, so an ordinary unsubscribe undoes it (unless the socket left already).
      if (socket.ended !== null || channelUser(socket.channels, name) !== userId) return;
      this.unsubscribeFrom(ws, socket, name)?.catch((err) => this.ctx.log.error(`leaving ${name} failed: ${(err as Error)?.stack ?? err}`));
      fanOut.send(ws, subscriptionErrorFrame(name, 'LimitReached', presenceFull(name, app.config.maxPresenceMembersPerChannel), 4100));
      return;
    }
    if (edges.occupied) events?.occupied(app, name);
    if (edges.memberAdded) {
      broadcaster.publishEdge(app, name, userId, edges.version, memberAdded(name, userId, info), idOf(socket));
      events?.memberAdded(app, name, userId);
    }
    const open = socket.ended === null && channelUser(socket.channels, name) !== undefined;
    if (open) fanOut.send(ws, subscriptionSucceeded(name, edges.members === null ? '{}' : presenceData(edges.members)));
    if (open) this.ctx.console?.subscribed(app, name, ws);
    broadcaster.releaseEdges(hold, edges.version, open ? ws : null);
    // After the confirmation, so the new subscriber counts itself too.
    if (edges.members === null && app.config.enableSubscriptionCount) this.ctx.counts?.changed(app, name, edges.subscriptionCount, edges.version);
    if (open && isCacheChannel(name)) this.replayCache(ws, socket, name);
  }

  // A new subscriber of a cache channel gets its last event right after the confirmation, or
  // pusher:cache_miss; the first miss of a burst is reported (the cache_miss webhook).
  private replayCache(ws: Socket, socket: SocketData, name: string): void {
    const { cache, fanOut, events, metrics, log } = this.ctx;
    const app = socket.app;
    const replayed = settle(cache.get(app, name), (cached) => {
      if (socket.ended !== null || channelUser(socket.channels, name) === undefined) return;
      if (cached !== null) {
        fanOut.send(ws, cached.frame);
        metrics?.cacheHit(app);
        return;
      }
      fanOut.send(ws, cacheMissFrame(name));
      metrics?.cacheMiss(app);
      return settle(cache.missed(app, name), (first) => {
        if (first) events?.cacheMiss(app, name);
      });
    });
    replayed?.catch((err) => log.warn(`cache of ${name} not read: ${(err as Error)?.message ?? err}`));
  }

  private attach(ws: Socket, socket: SocketData, name: string, userId: string): Channel {
    const app = socket.app;
    let channel = app.channels.get(name);
    if (channel === undefined) {
      const entry: Channel = (channel = { name, subscriptions: 0, members: userId === '' ? null : new Map(), listening: null });
      app.channels.set(name, entry);
      const listening = this.ctx.broadcaster.listen(app, name);
      if (listening !== undefined) {
        const pending: Promise<void> = listening.then(() => {
          if (entry.listening === pending) entry.listening = null;
        });
        entry.listening = pending;
      }
    }
    channel.subscriptions++;
    socket.channels = withChannel(socket.channels, channel.name, userId);
    this.ctx.fanOut.join(ws, app, name);
    return channel;
  }

  /** Handles `pusher:unsubscribe`; unknown channels are ignored, as Pusher does. */
  unsubscribe(ws: Socket, data: unknown): void | Promise<void> {
    const name = requireString(data, 'channel', 'pusher:unsubscribe');
    const socket = ws.getUserData();
    if (channelUser(socket.channels, name) === undefined) return;
    return this.unsubscribeFrom(ws, socket, name);
  }

  private unsubscribeFrom(ws: Socket, socket: SocketData, name: string): void | Promise<void> {
    const userId = channelUser(socket.channels, name)!;
    socket.channels = withoutChannel(socket.channels, name);
    this.ctx.fanOut.leave(ws, socket.app, name);
    return this.detach(socket.app, name, userId);
  }

  /** Removes a closed socket from all its channels (uWS has already dropped its topics). */
  leaveAll(ws: Socket): void {
    const socket = ws.getUserData();
    forEachChannel(socket.channels, (name, userId) => {
      this.detach(socket.app, name, userId)?.catch((err) => this.ctx.log.error(`leaving ${name} failed: ${(err as Error)?.stack ?? err}`));
    });
    socket.channels = null;
  }

  private detach(app: AppState, name: string, userId: string): void | Promise<void> {
    const channel = app.channels.get(name);
    if (channel === undefined) return;
    let lastOfUser = false;
    if (channel.members !== null) {
      const member = channel.members.get(userId);
      if (member !== undefined && --member.sockets === 0) {
        channel.members.delete(userId);
        lastOfUser = true;
      }
    }
    if (--channel.subscriptions === 0) {
      app.channels.delete(name);
      this.ctx.broadcaster.unlisten(app, name);
    }
    return settle(this.ctx.state.leave(app, name, lastOfUser ? userId : null), (edges) => this.left(app, name, userId, edges));
  }

  private left(app: AppState, name: string, userId: string, edges: LeaveEdges): void {
    const { broadcaster, events } = this.ctx;
    if (edges.memberRemoved) {
      broadcaster.publishEdge(app, name, userId, edges.version, memberRemoved(name, userId));
      events?.memberRemoved(app, name, userId);
    }
    if (app.config.enableSubscriptionCount && channelKind(name) !== 'presence') this.ctx.counts?.changed(app, name, edges.subscriptionCount, edges.version);
    if (edges.vacated) events?.vacated(app, name);
  }
}

// The join's edges, once the node also receives the channel from other nodes: a subscriber
// confirmed before that could miss an event published elsewhere right after.
function listened(channel: Channel, join: JoinEdges | Promise<JoinEdges>): JoinEdges | Promise<JoinEdges> {
  return channel.listening === null ? join : Promise.all([channel.listening, join]).then((both) => both[1]);
}

function presenceFull(name: string, max: number): string {
  return `Presence channel ${name} already has the maximum of ${max} members`;
}
