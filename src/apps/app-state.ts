import type { AppConfig } from '../options';
import type { Socket } from '../ws/socket';
import { SocketBuckets } from '../limits/socket-buckets';
import { SocketTable } from '../ws/socket-table';

/** A presence channel member: what the others see, and how many of this user's sockets are in. */
export interface Member {
  info: unknown;
  sockets: number;
}

/** A channel with at least one subscriber on this node. */
export interface Channel {
  /** The channel's name: the one string its subscribers' SocketChannels hold. */
  readonly name: string;
  subscriptions: number;
  /** Presence channels only: user id → member. */
  members: Map<string, Member> | null;
  /** Until the cluster confirms this node receives the channel: subscribers wait for it before they are confirmed. */
  listening: Promise<void> | null;
}

/** A user watched from this node (apps with watchlist events only). */
export interface Watched {
  /** This node's sockets whose watchlist holds the user. */
  watchers: number;
  /** Until the cluster confirms this node receives the user's changes: watchers wait for it before their initial state. */
  listening: Promise<void> | null;
}

/** One app's configuration and live state on this node. */
export class AppState {
  /** uWS topics are namespaced by this prefix so two apps' channels of one name never meet (see FanOut). */
  readonly topicPrefix: string;
  /** The app's series slot in every metrics family; -1 when metrics are off. */
  metricsSlot = -1;
  readonly sockets = new SocketTable();
  readonly channels = new Map<string, Channel>();
  /** Signed-in user id → that user's sockets. */
  readonly users = new Map<string, Set<Socket>>();
  /** Signed-in socket → its user id: kept here rather than in SocketData, which only sockets that sign in would use. */
  readonly signedIn = new Map<Socket, string>();
  /** Apps requiring sign-in only: sockets not signed in yet → `clock()` when they opened. */
  awaitingSignin: Map<Socket, number> | null = null;
  /** Apps with a client-event rate only: each socket's token bucket, by slot. */
  clientEventBuckets: SocketBuckets | null = null;
  /** Apps with watchlist events only: each signed-in socket's watched user ids (sockets that watch nobody are left out). */
  watchlists: Map<Socket, string[]> | null = null;
  /** Apps with watchlist events only: user id → its watchers on this node. */
  watched: Map<string, Watched> | null = null;

  constructor(
    public config: AppConfig,
    index: number,
  ) {
    this.topicPrefix = `${index}|`;
    this.build();
  }

  /**
   * Takes a changed config. Most fields are read at each use and change in place; a change of
   * the fields the per-socket structures are built from builds them afresh, and then returns
   * true: the caller closes the app's sockets so that they reconnect into the new ones.
   */
  reconfigure(config: AppConfig): boolean {
    const before = this.config;
    this.config = config;
    if (!socketsMustReconnect(before, config)) return false;
    this.build();
    return true;
  }

  private build(): void {
    const config = this.config;
    this.awaitingSignin = config.userAuthentication ? new Map() : null;
    this.clientEventBuckets = config.maxClientEventsPerSecond >= 0 ? new SocketBuckets(config.maxClientEventsPerSecond) : null;
    this.watchlists = config.enableWatchlistEvents ? new Map() : null;
    this.watched = config.enableWatchlistEvents ? new Map() : null;
  }
}

/**
 * True when a socket connected under `before` must reconnect to get what `after` promises: the
 * key it connected with, sign-in deadlines, its client-event bucket, its watchlist.
 */
export function socketsMustReconnect(before: AppConfig, after: AppConfig): boolean {
  return (
    before.key !== after.key ||
    before.userAuthentication !== after.userAuthentication ||
    before.enableWatchlistEvents !== after.enableWatchlistEvents ||
    before.maxClientEventsPerSecond !== after.maxClientEventsPerSecond
  );
}
