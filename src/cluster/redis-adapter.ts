import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Apps } from '../apps/apps';
import type { FanOut } from '../adapter/fan-out';
import type { ChannelEvents } from '../channels/events';
import type { SubscriptionCounts } from '../channels/subscription-counts';
import type { Watchlist } from '../channels/watchlist';
import type { Log } from '../log';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { Options } from '../options';
import type { LocalRateLimiter } from '../limits/rate-limiter';
import { RedisRateLimiter } from '../limits/redis-rate-limiter';
import { ClusterMetrics } from './cluster-metrics';
import { ErrorCode } from '../protocol/errors';
import { warnOfEviction } from './eviction';
import { Heartbeat, incarnation } from './heartbeat';
import { Keys } from './keys';
import { connectRedis, databaseOf, type MessageListener, type RedisLink } from './redis-link';
import { RedisBroadcaster } from './redis-broadcaster';
import { RedisCacheStore } from './redis-cache';
import { RedisChannelState } from './redis-state';
import { RedisWebhookQueues } from '../webhooks/redis-queue';
import { Outbox } from './outbox';
import { ConsoleRelay } from '../console/relay';
import type { ConsoleTap } from '../console/tap';
import { DELIVERY } from '../webhooks/stream';

// How long start-up waits for Redis before serving local clients anyway.
const CONNECT_WAIT_MS = 3000;
const FENCED_MESSAGE = 'The cluster lost track of this connection, please reconnect';

/** The cluster's parts on one node: the Redis connection, the two seams on it, and the heartbeat. */
export class RedisAdapter {
  /** This process's id in the cluster: socket ids are unique per node only, so entries are scoped by it. */
  readonly node = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  readonly broadcaster: RedisBroadcaster;
  readonly state: RedisChannelState;
  /** Frames for the other nodes, kept in order while Redis is unreachable. */
  readonly outbox: Outbox;
  private readonly link: RedisLink;
  /** APP_MANAGER_DRIVER=mysql: hears `pws-server apps` changes (subscribed again after each reconnection). */
  private appChanges: MessageListener | null = null;
  private relay: ConsoleRelay | null = null;
  private readonly keys: Keys;
  private heartbeat: Heartbeat | null = null;
  private readonly metrics: ClusterMetrics | null;

  constructor(
    private readonly options: Options,
    private readonly apps: Apps,
    private readonly fanOut: FanOut,
    private readonly events: ChannelEvents | null,
    metrics: PwsMetrics | null,
    private readonly log: Log,
  ) {
    this.metrics = metrics === null ? null : new ClusterMetrics(metrics, apps);
    const keys = (this.keys = new Keys(options.redisKeyPrefix, databaseOf(options)));
    this.link = connectRedis(options, log, {
      reconnected: () => this.reconnected(),
      error: () => this.metrics?.redisErrors.add(0, 1),
      // The first master, at start-up, is no change.
      masterChanged: () => {
        if (this.heartbeat !== null) this.outbox.reconnected();
      },
    });
    this.state = new RedisChannelState(this.link, keys, incarnation(this.node, 1), this.metrics);
    const bounds = { maxAgeMs: options.adapterOutboxMaxAgeMs, maxFrames: options.adapterOutboxMaxFrames, maxBytes: options.adapterOutboxMaxSizeInKb * 1024 };
    this.outbox = new Outbox(this.link, bounds, metrics, log);
    this.broadcaster = new RedisBroadcaster(fanOut, this.link, keys, this.node, this.metrics, log, this.outbox);
  }

  /** Cache channels' last events, shared by every node. */
  cacheStore(): RedisCacheStore {
    return new RedisCacheStore(this.link, this.keys, this.metrics, this.log);
  }

  /** Rate limits held across every node on this Redis connection, falling back to `local`. */
  rateLimiter(local: LocalRateLimiter): RedisRateLimiter {
    return new RedisRateLimiter(this.link, this.keys, local, this.log);
  }

  /** The console's relay between nodes (CONSOLE_ENABLED). */
  consoleRelay(tap: ConsoleTap, metrics: PwsMetrics | null): ConsoleRelay {
    this.relay = new ConsoleRelay(this.link, this.keys.console(), this.node, this.apps, metrics, tap, this.log);
    return this.relay;
  }

  /** Durable webhook queues on this Redis, taken over from nodes that stop or die. */
  webhookQueues(): RedisWebhookQueues {
    // Named by the process, whose own heartbeat key (renewed whatever its incarnation) tells the
    // others whether it lives.
    return new RedisWebhookQueues({ link: this.link, keys: this.keys, node: this.node, nodeTimeoutMs: this.options.adapterNodeTimeoutMs, timings: DELIVERY, log: this.log });
  }

  /**
   * Changes made with `pws-server apps` to a store that announces nothing itself (MySQL): the
   * app's id, published on this Redis by the command. A change missed while Redis was away is
   * read at the store's next refresh.
   */
  watchAppChanges(changed: (id: string) => void): void {
    this.appChanges = (id) => changed(id);
    this.subscribeAppChanges();
  }

  private subscribeAppChanges(): void {
    if (this.appChanges === null) return;
    this.link.subscribe(this.keys.appChanges(), this.appChanges).catch((err) => this.log.warn(`redis: cannot subscribe to app changes: ${(err as Error)?.message ?? err}`));
  }

  /**
   * Waits briefly for Redis, then beats once (which also clears what a previous run left under this
   * node). The heartbeat announces through `watchlist` the users a reap or a rewrite takes offline or brings back,
   * and through `counts` the subscription counts a reap lowers.
   */
  async start(watchlist: Watchlist, counts: SubscriptionCounts | null): Promise<void> {
    if (!(await this.link.connected(CONNECT_WAIT_MS))) {
      this.log.warn(`redis: not reachable after ${CONNECT_WAIT_MS} ms; serving local clients and retrying`);
    } else {
      await warnOfEviction(this.link, this.keys.nodes(), this.log);
    }
    this.heartbeat = new Heartbeat({
      apps: this.apps,
      link: this.link,
      keys: this.keys,
      node: this.node,
      state: this.state,
      broadcaster: this.broadcaster,
      events: this.events,
      watchlist,
      counts,
      metrics: this.metrics,
      log: this.log,
      nodeTimeoutMs: this.options.adapterNodeTimeoutMs,
      closeAll: () => {
        for (const app of this.apps.all()) app.sockets.forEach((ws) => this.fanOut.close(ws, ErrorCode.reconnect, FENCED_MESSAGE));
      },
    });
    await this.heartbeat.beat();
    this.log.info(`cluster: node ${this.node} on Redis`);
  }

  private reconnected(): void {
    this.metrics?.redisReconnects.add(0, 1);
    this.outbox.reconnected();
    // Subscribe again; the heartbeat checks at once whether Redis kept this node's entries, and
    // rewrites them if so (a change may have been lost with the connection) or fences if not.
    this.broadcaster.relisten(this.apps);
    this.subscribeAppChanges();
    this.relay?.resubscribe();
    this.state.dirty = true;
    void this.heartbeat?.reconnected();
  }

  /**
   * Leaves the cluster (after the sockets were closed) and closes the connections; `beforeClose`
   * runs in between, while Redis still answers (the webhooks' hand-over).
   */
  async stop(beforeClose?: () => Promise<void>): Promise<void> {
    await this.heartbeat?.stop();
    await beforeClose?.();
    this.outbox.stop();
    await this.link.close();
  }
}
