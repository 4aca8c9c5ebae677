// The two seams between the channel rules and where state and subscribers live: one node
// (fan-out.ts, local-state.ts) or many nodes on Redis (src/cluster/).
import type { AppState } from '../apps';

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
}

/** A presence member joining, as the channel's other subscribers see it. */
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
}

/** What one unsubscription changed, decided on the counts of the whole cluster. */
export interface LeaveEdges {
  /** The channel has no subscriber anywhere now. */
  vacated: boolean;
  /** The user has no socket left in this presence channel anywhere. */
  memberRemoved: boolean;
  /** Subscriptions to the channel left across the cluster. */
  subscriptionCount: number;
}

/** An occupied channel as the REST API reports it. */
export interface ChannelSummary {
  subscriptionCount: number;
  /** Distinct users, for presence channels; 0 otherwise. */
  userCount: number;
}

/**
 * Channel occupancy and presence membership across the cluster. A node reports its own
 * changes, already reduced to this node's first and last (the per-node bookkeeping is in
 * AppState); the answers are cluster-wide. Methods answer synchronously on one node and with a
 * promise on Redis; reads reject with an HttpError 503 when the shared state cannot be read.
 */
export interface ChannelState {
  /**
   * One socket subscribed to `channel` on this node. `member` is set when it is the user's
   * first socket in this presence channel on this node; `presence` for every presence join.
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
   * Apps with watchlist events only. The user's first socket on this node signed in; true when the
   * user had no signed-in socket anywhere before (came online).
   */
  signedIn(app: AppState, userId: string): boolean | Promise<boolean>;
  /** The user's last signed-in socket on this node is gone; true when the user has none anywhere now (went offline). */
  signedOut(app: AppState, userId: string): boolean | Promise<boolean>;
  /** Which of `userIds` are signed in on some node (a watchlist's initial state). */
  online(app: AppState, userIds: string[]): Set<string> | Promise<Set<string>>;
}
