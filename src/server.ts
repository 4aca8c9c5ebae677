import { ActivityMonitor } from './ws/activity';
import { Apps } from './apps/apps';
import { AppSync } from './apps/app-sync';
import type { SqlAppStore } from './apps/sql/sql-store';
import { StoreMetrics } from './apps/store-metrics';
import type { Broadcaster, ChannelState } from './adapter/adapter';
import { LocalCacheStore, type CacheStore } from './adapter/cache-store';
import { LocalChannelState } from './adapter/local-state';
import type { RedisAdapter } from './cluster/redis-adapter';
import { LocalRateLimiter, type RateLimiter } from './limits/rate-limiter';
import { Refusals } from './limits/refusals';
import { Channels } from './channels/channels';
import { ChannelEventLog } from './channels/event-log';
import { Console } from './console/console';
import { ConsoleTap } from './console/tap';
import { channelEventsOf } from './channels/events';
import { ExtrasMetrics } from './channels/extras-metrics';
import { SubscriptionCounts } from './channels/subscription-counts';
import { ErrorCode, ListenError, PusherError } from './protocol/errors';
import { FanOut } from './adapter/fan-out';
import { MemoryWatch, registerHealth } from './http/health';
import { registerHttpApi } from './http/api';
import { writeJson } from './http/reply';
import { Log } from './log';
import { noMetricsHere, registerMetricsEndpoint } from './http/metrics-endpoint';
import { PushgatewayDriver } from './metrics/pushgateway';
import { PwsMetrics } from './metrics/pws-metrics';
import type { Options } from './options';
import { Users } from './channels/users';
import { Watchlist } from './channels/watchlist';
import { loaded, uws, type TemplatedApp, type us_listen_socket } from './uws';
import { wsBehavior } from './ws/behavior';
import { Webhooks } from './webhooks/webhooks';

const SHUTDOWN_MESSAGE = 'Server is shutting down, please reconnect';

/** A running pws-server: the WebSocket endpoint, the REST API, health and metrics on one port. */
export class Server {
  readonly apps: Apps;
  readonly metrics: PwsMetrics | null;
  readonly log: Log;
  private readonly app: TemplatedApp;
  private readonly metricsApp: TemplatedApp | null = null;
  private readonly pushgateway: PushgatewayDriver | null = null;
  private readonly fanOut: FanOut;
  private readonly cluster: RedisAdapter | null;
  private readonly counts: SubscriptionCounts | null;
  /** Apps from a database (APP_MANAGER_DRIVER postgres or mysql); null with the config file's. */
  private readonly sync: AppSync | null;
  private readonly webhooks: Webhooks | null;
  private readonly watchlist: Watchlist;
  private readonly console: Console | null = null;
  private activity: ActivityMonitor | null = null;
  private memory: MemoryWatch | null = null;
  private listenSockets: us_listen_socket[] = [];
  private closing = false;
  private stopped: Promise<void> | null = null;
  /** The port actually bound (differs from options.port when that is 0). */
  port = 0;
  /** The metrics port actually bound, when METRICS_SERVER_PORT is set. */
  metricsPort = 0;

  constructor(
    readonly options: Options,
    log?: Log,
  ) {
    this.log = log ?? new Log(options.debug);
    // Apps from a database start empty and come with start(); every part below that keeps
    // per-app state watches the apps, so one added while running gets what one from the file has.
    const fromStore = options.appManagerDriver !== 'config';
    this.apps = new Apps(fromStore ? [] : options.apps);
    this.app = options.sslCert !== '' ? uws.SSLApp({ cert_file_name: options.sslCert, key_file_name: options.sslKey, passphrase: options.sslPass }) : uws.App();
    this.metrics = options.metricsEnabled ? new PwsMetrics({ prefix: options.metricsPrefix, port: options.port, memoryThresholdPercent: options.acceptTrafficMemoryThreshold }) : null;
    this.metrics?.addApps(this.apps);
    if (this.metrics !== null && options.metricsDriver === 'pushgateway') this.pushgateway = new PushgatewayDriver(this.metrics, options, this.log);
    this.fanOut = new FanOut(this.app, this.metrics);
    // Only with CONSOLE_ENABLED: otherwise no hook has a tap, and none of the console exists.
    const consoleTap = options.consoleEnabled ? new ConsoleTap() : null;
    this.webhooks = Webhooks.forApps(this.apps, options, this.metrics, this.log, fromStore, consoleTap);
    this.sync = fromStore
      ? new AppSync({ apps: this.apps, store: loadSqlStore().open(options), fanOut: this.fanOut, log: this.log, metrics: this.metrics && new StoreMetrics(this.metrics), ttlMs: options.appManagerCacheTtlSeconds * 1000 })
      : null;
    const events = channelEventsOf([...(options.debug ? [new ChannelEventLog(this.log)] : []), ...(this.webhooks ? [this.webhooks] : []), ...(consoleTap ? [consoleTap] : [])]);
    // The local adapter is the FanOut and this node's own counts: no connection, no extra work.
    this.cluster = options.adapterDriver === 'redis' ? new (loadRedisAdapter())(options, this.apps, this.fanOut, events, this.metrics, this.log) : null;
    if (this.cluster !== null) this.webhooks?.keepIn(this.cluster.webhookQueues());
    const broadcaster: Broadcaster = this.cluster?.broadcaster ?? this.fanOut;
    const state: ChannelState = this.cluster?.state ?? new LocalChannelState();
    const limited = fromStore || options.apps.some((a) => a.maxConnections >= 0 || a.maxBackendEventsPerSecond >= 0 || a.maxClientEventsPerSecond >= 0 || a.maxReadRequestsPerSecond >= 0);
    const refusals = this.metrics !== null && limited ? new Refusals(this.metrics, this.apps) : null;
    const localLimiter = new LocalRateLimiter();
    const limiter: RateLimiter = options.rateLimiterDriver === 'redis' ? this.cluster!.rateLimiter(localLimiter) : localLimiter;
    this.webhooks?.checkHeldAgainst(state);
    this.watchlist = new Watchlist(this.apps, this.fanOut, broadcaster, state, this.metrics, this.log);
    const users = new Users(this.fanOut, broadcaster, this.watchlist);
    const cache: CacheStore = this.cluster?.cacheStore() ?? new LocalCacheStore();
    const extras = this.metrics === null ? null : new ExtrasMetrics(this.metrics, this.apps);
    this.counts = fromStore || options.apps.some((a) => a.enableSubscriptionCount)
      ? new SubscriptionCounts(broadcaster, state, events, this.log, extras === null ? null : (app) => extras.countFrameSent(app))
      : null;
    const channels = new Channels({ options, fanOut: this.fanOut, broadcaster, state, cache, counts: this.counts, events, metrics: extras, log: this.log, console: consoleTap });

    this.app.ws('/app/:key', wsBehavior({
      apps: this.apps,
      lookup: this.sync,
      options,
      fanOut: this.fanOut,
      broadcaster,
      state,
      events,
      channels,
      users,
      metrics: this.metrics,
      refusals,
      log: this.log,
      console: consoleTap,
      admissionRefusal: () => this.admissionRefusal(),
    }));
    const trigger = registerHttpApi(this.app, { apps: this.apps, lookup: this.sync, options, broadcaster, state, limiter, refusals, cache, metrics: this.metrics, log: this.log, outbox: this.cluster?.outbox ?? null, console: consoleTap });
    if (consoleTap !== null) {
      const relay = this.cluster?.consoleRelay(consoleTap, this.metrics) ?? null;
      this.console = new Console(consoleTap, { apps: this.apps, state, metrics: this.metrics, trigger, password: options.consolePassword, secure: options.sslCert !== '' && options.metricsServerPort === 0, log: this.log, relay });
    }
    registerHealth(this.app, { closing: () => this.closing, memoryThresholdPercent: options.acceptTrafficMemoryThreshold });
    if ((this.metrics !== null || this.console !== null) && options.metricsServerPort !== 0) {
      const metricsApp = (this.metricsApp = uws.App());
      if (this.metrics !== null) registerMetricsEndpoint(metricsApp, this.metrics);
      else metricsApp.get('/metrics', noMetricsHere);
      this.console?.register(metricsApp);
      const serves = this.console === null ? 'GET /metrics only' : 'GET /metrics and /console only';
      metricsApp.any('/*', (res, req) => {
        writeJson(res, 404, { error: `Not found: ${req.getMethod().toUpperCase()} ${req.getUrl()} (this port serves ${serves})` });
      });
      this.app.get('/metrics', noMetricsHere);
    } else {
      if (this.metrics !== null) registerMetricsEndpoint(this.app, this.metrics);
      else this.app.get('/metrics', noMetricsHere);
      this.console?.register(this.app);
    }
    this.app.any('/*', (res, req) => {
      writeJson(res, 404, { error: `Not found: ${req.getMethod().toUpperCase()} ${req.getUrl()}` });
    });
  }

  /** Binds the port(s) and starts the activity monitor. Rejects if a port cannot be bound. */
  async start(): Promise<void> {
    // Apps from a database are loaded before the ports open (a known app never waits for a
    // query), and before the cluster's first beat, which then covers them all.
    await this.sync?.start();
    try {
      this.port = await listen(this.app, this.options.host, this.options.port, this.listenSockets, 'PORT');
      if (this.metricsApp !== null) {
        this.metricsPort = await listen(this.metricsApp, this.options.host, this.options.metricsServerPort, this.listenSockets, 'METRICS_SERVER_PORT');
      }
    } catch (err) {
      // A server that cannot take every port it was given holds none.
      for (const socket of this.listenSockets) uws.us_listen_socket_close(socket);
      this.listenSockets = [];
      await this.sync?.stop();
      throw err;
    }
    await this.cluster?.start(this.watchlist, this.counts);
    if (this.sync !== null && this.options.appManagerDriver === 'mysql') this.cluster?.watchAppChanges((id) => this.sync!.changed(id));
    this.activity = new ActivityMonitor(this.apps, this.options, this.fanOut);
    this.memory = new MemoryWatch(this.options.acceptTrafficMemoryThreshold);
    this.pushgateway?.start();
    this.console?.start();
    this.log.info(loaded.description);
    this.log.info(`pws-server listening on ${this.options.sslCert ? 'https/wss' : 'http/ws'}://${this.options.host}:${this.port}` + (this.metrics ? `, metrics on :${this.metricsPort || this.port}/metrics` : '') + (this.console ? `, console on :${this.metricsPort || this.port}/console` : ''));
  }

  /** True once shutdown has begun: /ready answers 503 and new connections are refused. */
  get isClosing(): boolean {
    return this.closing;
  }

  /**
   * Graceful shutdown: refuse new connections, tell every socket to reconnect elsewhere (4200),
   * keep answering /ready with 503 for the grace period, then close everything.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    // Before the ports close: its streams end cleanly, and its relay leaves Redis while it answers.
    await this.console?.stop();
    for (const app of this.apps.all()) {
      app.sockets.forEach((ws) => this.fanOut.close(ws, ErrorCode.reconnect, SHUTDOWN_MESSAGE));
    }
    // uWS closes ended sockets at once; the grace period is the drain window in which load
    // balancers see /ready answer 503 and late clients are told to reconnect elsewhere (4200).
    await new Promise((r) => setTimeout(r, this.options.shutdownGracePeriodMs));
    this.activity?.stop();
    this.counts?.stop();
    this.memory?.stop();
    for (const socket of this.listenSockets) uws.us_listen_socket_close(socket);
    this.listenSockets = [];
    this.app.close();
    this.metricsApp?.close();
    // Held webhooks are checked against the cluster's state while Redis still answers.
    await this.webhooks?.releaseHeld();
    // Leaving the cluster can still announce vacated channels, so the webhooks' last attempt (or,
    // on Redis, their hand-over to the other nodes) comes after.
    if (this.cluster !== null) await this.cluster.stop(async () => this.webhooks?.stop());
    else await this.webhooks?.stop();
    // After the sockets closed: the last push shows the final counts and zero connections.
    await this.pushgateway?.stop();
    await this.sync?.stop();
    this.metrics?.stop();
    this.log.info('pws-server stopped');
  }

  private admissionRefusal(): PusherError | null {
    if (this.closing) return new PusherError(ErrorCode.reconnect, SHUTDOWN_MESSAGE, true);
    if (this.memory?.over) {
      return new PusherError(ErrorCode.overCapacity, 'Over capacity: the server is above its memory threshold', true);
    }
    return null;
  }
}

// Loaded only for APP_MANAGER_DRIVER postgres or mysql: with the config file, neither database client is.
function loadSqlStore(): typeof SqlAppStore {
  return (require('./apps/sql/sql-store') as typeof import('./apps/sql/sql-store')).SqlAppStore;
}

// Loaded only for ADAPTER_DRIVER=redis: a single node never pays for the Redis client's code.
function loadRedisAdapter(): typeof RedisAdapter {
  return (require('./cluster/redis-adapter') as typeof import('./cluster/redis-adapter')).RedisAdapter;
}

// Exclusive: uWS binds with SO_REUSEPORT by default, so a second server on a port in use would
// start and the kernel would split clients between the two.
function listen(app: TemplatedApp, host: string, port: number, sockets: us_listen_socket[], option: string): Promise<number> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, uws.LIBUS_LISTEN_EXCLUSIVE_PORT, (socket) => {
      if (socket === false) {
        reject(new ListenError(option, host, port));
        return;
      }
      sockets.push(socket);
      resolve(uws.us_socket_local_port(socket as unknown as Parameters<typeof uws.us_socket_local_port>[0]));
    });
  });
}
