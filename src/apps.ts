import type { AppConfig } from './options';
import type { Socket } from './ws/socket';
import { SocketBuckets } from './limits/socket-buckets';
import { SocketTable } from './ws/socket-table';

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
  readonly awaitingSignin: Map<Socket, number> | null;
  /** Apps with a client-event rate only: each socket's token bucket, by slot. */
  readonly clientEventBuckets: SocketBuckets | null;
  /** Apps with watchlist events only: each signed-in socket's watched user ids (sockets that watch nobody are left out). */
  readonly watchlists: Map<Socket, string[]> | null;
  /** Apps with watchlist events only: user id → its watchers on this node. */
  readonly watched: Map<string, Watched> | null;

  constructor(
    readonly config: AppConfig,
    index: number,
  ) {
    this.topicPrefix = `${index}|`;
    this.awaitingSignin = config.userAuthentication ? new Map() : null;
    this.clientEventBuckets = config.maxClientEventsPerSecond >= 0 ? new SocketBuckets(config.maxClientEventsPerSecond) : null;
    this.watchlists = config.enableWatchlistEvents ? new Map() : null;
    this.watched = config.enableWatchlistEvents ? new Map() : null;
  }
}

/** Finds apps by id (REST API) and by key (WebSocket path). */
export class Apps {
  private readonly byId = new Map<string, AppState>();
  private readonly byKey = new Map<string, AppState>();

  constructor(configs: AppConfig[]) {
    configs.forEach((config, i) => {
      const app = new AppState(config, i);
      this.byId.set(config.id, app);
      this.byKey.set(config.key, app);
    });
  }

  findById(id: string): AppState | undefined {
    return this.byId.get(id);
  }

  findByKey(key: string): AppState | undefined {
    return this.byKey.get(key);
  }

  all(): IterableIterator<AppState> {
    return this.byId.values();
  }
}
