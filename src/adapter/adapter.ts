// The two seams between the channel rules and where state and subscribers live: one node
// (fan-out.ts, local-state.ts) or many nodes on Redis (src/cluster/).
import type { AppState } from '../apps/app-state';
import type { Socket } from '../ws/socket';

/** Delivers frames to a channel's subscribers on every node. */
export interface Broadcaster {
  /**
   * Delivers `frame` to every subscriber of the app's channel, except the socket with id
   * `exceptSocketId` (the sender of a client event, or the socket_id an API call excluded).
   */
  publish(app: AppState, channel: string, frame: string, exceptSocketId?: string): void;
  /** Closes every connection of a signed-in user with 4009, wherever it is connected. */
  terminateUser(app: AppState, userId: string): void;
  /** This node has its first subscriber of `channel`: start receiving the channel's frames (resolves once it does). */
  listen(app: AppState, channel: string): void | Promise<void>;
  /** This node's last subscriber of `channel` left. */
  unlisten(app: AppState, channel: string): void;
  /**
   * Delivers an edge (a member, online status or count frame) decided at `version` about `key` of
   * the channel (a user id, or ''): each node delivers it only when it is newer than the last edge
   * it delivered about that key, so edges decided by two nodes reach clients in the order Redis
   * decided them. Version 0 (decided by this node alone) is delivered whatever came before.
   */
  publishEdge(app: AppState, channel: string, key: string, version: number, frame: string, exceptSocketId?: string): void;
  /**
   * A socket of the channel is about to be sent the channel's state as of some version (a member
   * list, a watchlist's initial state): the edges delivered from now on are kept for it, since it
   * may get them before that older state, which would undo them. `first`: it is the node's first
   * subscriber of the channel, so once it has its state no socket here needs an older edge.
   * Null where edges need no holding (one node).
   */
  holdEdges(app: AppState, channel: string, first: boolean): object | null;
  /** Its state as of `version` went out (to `ws`; null when it did not): sends it the kept edges newer than that, in order. */
  releaseEdges(hold: object | null, version: number, ws: Socket | null): void;
}

/** A presence member joining (any of its sockets), as the channel's other subscribers see it. */
export interface MemberJoin {
  userId: string;
  info: unknown;
}

/** What one subscription changed, decided on the counts of the whole cluster. */
export interface JoinEdges {
  /** Refused: the presence channel already holds PRESENCE_MAX_MEMBERS other users. */
  full: boolean;
  /** The channel had no subscriber anywhere before this one. */
  occupied: boolean;
  /** The user was no member of this presence channel anywhere before. */
  memberAdded: boolean;
  /** Subscriptions to the channel across the cluster, this one included. */
  subscriptionCount: number;
  /** Presence channels: every member (user id → user_info), for subscription_succeeded. */
  members: Map<string, unknown> | null;
  /** The edge version of this join, and of the member list (0: decided on this node alone). */
  version: number;
}

/** What one unsubscription changed, decided on the counts of the whole cluster. */
export interface LeaveEdges {
  /** The channel has no subscriber anywhere now. */
  vacated: boolean;
  /** The user has no socket left in this presence channel anywhere. */
  memberRemoved: boolean;
  /** Subscriptions to the channel left across the cluster. */
  subscriptionCount: number;
  /** The edge version of this leave (0: decided on this node alone). */
  version: number;
}

/** A user's online status as a watchlist's initial state: the users online, as of `version` (0 on one node). */
export interface OnlineState {
  online: Set<string>;
  version: number;
}

/** An occupied channel as the REST API reports it. */
export interface ChannelSummary {
  subscriptionCount: number;
  /** Distinct users, for presence channels; 0 otherwise. */
  userCount: number;
  /** The edge version these counts are as of (one channel read on Redis only). */
  version?: number;
}

/**
 * Channel occupancy and presence membership across the cluster. A node reports its own
 * changes, already reduced to this node's first and last (the per-node bookkeeping is in
 * AppState); the answers are cluster-wide. Methods answer synchronously on one node and with a
 * promise on Redis; reads reject with an HttpError 503 when the shared state cannot be read.
 */
export interface ChannelState {
  /**
   * One socket subscribed to `channel` on this node; `presence` and `member` for every presence
   * join. The user becomes a member where this node holds none of it yet (its first socket here,
   * which Channels has counted already; on Redis also a later socket whose first was refused).
   */
  join(app: AppState, channel: string, presence: boolean, member: MemberJoin | null): JoinEdges | Promise<JoinEdges>;
  /** One socket left `channel`; `userId` is set when it was that user's last socket here. */
  leave(app: AppState, channel: string, userId: string | null): LeaveEdges | Promise<LeaveEdges>;
  /** Presence members across the cluster (user id → user_info). */
  members(app: AppState, channel: string): Map<string, unknown> | Promise<Map<string, unknown>>;
  /** One channel; null when nobody is subscribed anywhere. */
  channel(app: AppState, channel: string): ChannelSummary | null | Promise<ChannelSummary | null>;
  /** Every occupied channel whose name starts with `prefix`; user counts only when asked. */
  channels(app: AppState, prefix: string, userCounts: boolean): Map<string, ChannelSummary> | Promise<Map<string, ChannelSummary>>;
  /** The app's open connections across the cluster, for the connection quota (read at every upgrade). */
  connections(app: AppState): number;
  /**
   * Apps with watchlist events only. The user's first socket on this node signed in: the edge's
   * version when the user had no signed-in socket anywhere before (came online), false otherwise.
   */
  signedIn(app: AppState, userId: string): number | false | Promise<number | false>;
  /** The user's last signed-in socket on this node is gone: the edge's version when the user has none anywhere now (went offline), false otherwise. */
  signedOut(app: AppState, userId: string): number | false | Promise<number | false>;
  /** Which of `userIds` are signed in on some node (a watchlist's initial state). */
  online(app: AppState, userIds: string[]): OnlineState | Promise<OnlineState>;
}
