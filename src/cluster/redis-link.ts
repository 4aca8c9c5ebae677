import { createClient, createCluster, createSentinel, ErrorReply } from 'redis';
import type { Log } from '../log';
import { parseHostPorts, type Options } from '../options';

/** The Redis options, as the cluster code reads them. */
export type RedisOptions = Pick<
  Options,
  | 'redisUrl'
  | 'redisHost'
  | 'redisPort'
  | 'redisUsername'
  | 'redisPassword'
  | 'redisDb'
  | 'redisTls'
  | 'redisClusterNodes'
  | 'redisSentinels'
  | 'redisSentinelName'
  | 'redisSentinelPassword'
>;

/** A Lua script and its SHA-1, run with EVALSHA and loaded on the first NOSCRIPT. */
export interface Script {
  source: string;
  sha: string;
}

/** Receives a sharded pub/sub message. */
export type MessageListener = (message: string, channel: string) => void;

/** Connection state changes the cluster code reacts to. */
export interface LinkEvents {
  /** Connected again after a loss: pub/sub is resubscribed, the node's entries must be rewritten. */
  reconnected(): void;
  /** A connection or command error (logged here once per outage). */
  error(err: unknown): void;
  /** Sentinel named a new master: commands go there from now on, retried ones included. */
  masterChanged?(): void;
}

// Every call is bounded: a Redis that stops answering delays a subscribe or a REST read by
// this much at most, and with the offline queue off a command fails at once while disconnected.
// node-redis's own command timeout ends once the command is written, so the bound is ours.
const COMMAND_TIMEOUT_MS = 2000;
// A call still unanswered this long after it gave up means a frozen Redis or a half-open path:
// its connection is closed, and node-redis opens it again. A connection that keeps writing never
// looks idle to the socket timeout below, so this is what catches a busy one.
const STALL_MS = COMMAND_TIMEOUT_MS;
// An idle connection pings, and one that receives nothing for SOCKET_TIMEOUT_MS is closed: a
// subscriber on a half-open path is found even when the node sends nothing.
const PING_INTERVAL_MS = 1000;
const SOCKET_TIMEOUT_MS = 2 * COMMAND_TIMEOUT_MS;
const RECONNECT_MAX_DELAY_MS = 2000;

/**
 * The few things the cluster needs from Redis, the same over one server, Sentinel or Redis
 * Cluster (node-redis routes by key and, for sharded pub/sub, by channel). Pub/sub is always
 * sharded (SPUBLISH/SSUBSCRIBE, Redis 7+): on a Redis Cluster a message then reaches only the
 * shard that owns its channel, and on one server it behaves like PUBLISH.
 */
export interface RedisLink {
  /** Runs one command; `key` routes it on a Redis Cluster. */
  command(key: string, args: string[]): Promise<unknown>;
  /** Runs a script whose keys all share one hash slot. */
  eval(script: Script, keys: string[], args: string[]): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string, listener: MessageListener): Promise<void>;
  unsubscribe(channel: string, listener: MessageListener): Promise<void>;
  /** Waits up to `ms` for the first connection; false if it is not there by then. */
  connected(ms: number): Promise<boolean>;
  close(): Promise<void>;
}

// The slices of node-redis's client, cluster and sentinel types used here (their full generic
// types do not unify across the three).
interface PubSub {
  sSubscribe(channel: string, listener: MessageListener): Promise<unknown>;
  sUnsubscribe(channel: string, listener: MessageListener): Promise<unknown>;
}
interface Client extends PubSub {
  readonly isReady: boolean;
  readonly options?: { socket?: { host?: string; port?: number } };
  sendCommand(args: string[]): Promise<unknown>;
  connect(): Promise<unknown>;
  destroy(): void;
}
interface Cluster extends PubSub {
  sendCommand(key: string, isReadonly: boolean, args: string[]): Promise<unknown>;
  getNodeClientForKey(key: string, isReadonly: boolean): Promise<Client>;
  destroy(): void;
}
interface Sentinel extends PubSub {
  sendCommand(isReadonly: boolean, args: string[]): Promise<unknown>;
  connect(): Promise<unknown>;
  destroy(): Promise<unknown>;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  on(event: 'topology-change', listener: (change: { type: string }) => void): unknown;
}

/** The database the connections select: REDIS_URL's when it names one, else DB_REDIS_DB (a Redis Cluster has only 0). */
export function databaseOf(options: RedisOptions): number {
  if (options.redisClusterNodes !== '') return 0;
  if (options.redisUrl !== '') return Number(new URL(options.redisUrl).pathname.slice(1) || '0');
  return options.redisDb;
}

/** Connects as the options say: REDIS_URL, DB_REDIS_CLUSTER_NODES, DB_REDIS_SENTINELS, or DB_REDIS_HOST/PORT. */
export function connectRedis(options: RedisOptions, log: Log, events: LinkEvents): RedisLink {
  const socket = {
    reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, RECONNECT_MAX_DELAY_MS),
    connectTimeout: COMMAND_TIMEOUT_MS,
    ...(options.redisTls ? { tls: true as const } : {}),
  };
  // The connections to the data ping when idle (pingInterval), so silence means a dead path. A
  // Sentinel client's connections to the sentinels do not, and are not timed out.
  const dataSocket = { ...socket, socketTimeout: SOCKET_TIMEOUT_MS };
  const auth = {
    ...(options.redisUsername !== '' ? { username: options.redisUsername } : {}),
    ...(options.redisPassword !== '' ? { password: options.redisPassword } : {}),
  };
  const common = { disableOfflineQueue: true, pingInterval: PING_INTERVAL_MS, commandOptions: { timeout: COMMAND_TIMEOUT_MS } };
  const watch = new Watch(log, events);

  if (options.redisClusterNodes !== '') {
    const cluster = createCluster({
      rootNodes: parseHostPorts(options.redisClusterNodes, 'DB_REDIS_CLUSTER_NODES').map(({ host, port }) => ({ socket: { host, port, ...dataSocket } })),
      defaults: { ...auth, ...common, socket: dataSocket },
    });
    cluster.on('error', (err) => watch.failed(err));
    // By address: a new pub/sub client of a master is ready under the master's address too, and
    // is no reconnection unless that address failed.
    cluster.on('node-error', (err: unknown, node: Address) => watch.failed(err, addressOf(node)));
    cluster.on('node-ready', (node: Address) => watch.ready(addressOf(node)));
    return new ClusterLink(cluster as unknown as Cluster, cluster.connect(), watch);
  }
  if (options.redisSentinels !== '') {
    const sentinel = createSentinel({
      name: options.redisSentinelName,
      sentinelRootNodes: parseHostPorts(options.redisSentinels, 'DB_REDIS_SENTINELS'),
      nodeClientOptions: { ...auth, ...common, socket: dataSocket, database: options.redisDb },
      sentinelClientOptions: options.redisSentinelPassword !== '' ? { password: options.redisSentinelPassword, socket } : { socket },
      // Errors of the master's connection are 'error' events too (not only the pub/sub one's).
      passthroughClientErrorEvents: true,
    });
    (sentinel as unknown as Sentinel).on('topology-change', (change) => {
      if (change.type === 'MASTER_CHANGE') events.masterChanged?.();
    });
    return new SentinelLink(sentinel as unknown as Sentinel, watch);
  }
  const client =
    options.redisUrl !== ''
      ? createClient({ url: options.redisUrl, ...common, socket: dataSocket })
      : createClient({ ...auth, ...common, database: options.redisDb, socket: { host: options.redisHost, port: options.redisPort, ...dataSocket } });
  // Subscribing takes a connection over; commands and publishes go on the other one.
  const subscriber = client.duplicate();
  for (const [name, c] of [['commands', client], ['subscriber', subscriber]] as const) {
    c.on('error', (err) => watch.failed(err, name));
    c.on('ready', () => watch.ready(name));
  }
  return new ClientLink(client as unknown as Client, subscriber as unknown as Client, Promise.all([client.connect(), subscriber.connect()]), watch);
}

/** A Redis Cluster node, as node-redis names it in its events and client options. */
interface Address {
  host?: string;
  port?: number;
}

function addressOf(node: Address | undefined): string {
  return `${node?.host}:${node?.port}`;
}

/**
 * Tells reconnections from new connections, and logs the first error of an outage and the
 * recovery instead of one line per retry. A connection (by name, or by address on a Redis
 * Cluster) is reconnected when it is ready after an error or a loss of its own; the first
 * connection, and every later new one, is not.
 */
class Watch {
  /** Connections lost since they were last ready. */
  private readonly lost = new Set<string>();
  private down = false;

  constructor(
    private readonly log: Log,
    private readonly events: LinkEvents,
  ) {}

  /** An error, of `connection` when given (which then counts as lost). */
  failed(err: unknown, connection?: string): void {
    this.events.error(err);
    if (connection !== undefined) this.lost.add(connection);
    if (this.down) return;
    this.down = true;
    this.log.warn(`redis: ${(err as Error)?.message ?? err}; serving local clients only until it is back`);
  }

  /** `connection` was lost without an error event. */
  lose(connection: string): void {
    this.lost.add(connection);
  }

  ready(connection: string): void {
    if (this.down) this.log.info('redis: connected again');
    this.down = false;
    if (this.lost.delete(connection)) this.events.reconnected();
  }

  /**
   * Closes `client`, which left a call unanswered, and opens it again; a client already
   * reconnecting is left alone. Its next 'ready' is a reconnection: subscribed again, rewritten.
   */
  reopen(client: Client, connection: string): void {
    if (!client.isReady) return;
    this.failed(new Error(`a call was left unanswered for ${COMMAND_TIMEOUT_MS + STALL_MS} ms; reconnecting`), connection);
    client.destroy();
    client.connect().catch(() => undefined);
  }
}

async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function noScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

abstract class BaseLink implements RedisLink {
  constructor(private readonly connecting: Promise<unknown>) {
    // Failures of the first connection are reported through the error events, and retried.
    connecting.catch(() => undefined);
  }

  /** Sends one command, unbounded. */
  protected abstract send(key: string, args: string[]): Promise<unknown>;
  /** The connection that serves `key` left a call unanswered: closes it so that it reconnects. */
  protected abstract stalled(key: string): void;
  abstract subscribe(channel: string, listener: MessageListener): Promise<void>;
  abstract unsubscribe(channel: string, listener: MessageListener): Promise<void>;
  abstract close(): Promise<void>;

  async eval(script: Script, keys: string[], args: string[]): Promise<unknown> {
    const key = keys[0];
    try {
      return await this.command(key, ['EVALSHA', script.sha, String(keys.length), ...keys, ...args]);
    } catch (err) {
      if (!noScript(err)) throw err;
      return this.command(key, ['EVAL', script.source, String(keys.length), ...keys, ...args]);
    }
  }

  command(key: string, args: string[]): Promise<unknown> {
    return bounded(this.send(key, args), () => this.stalled(key));
  }

  /**
   * Not bounded by a timer of its own: nothing waits for a publish, and one timer per frame
   * would cost the hot path. A publish Redis leaves unanswered fails when its connection is
   * closed, which a bounded call on it (the heartbeat, at the latest) brings about.
   */
  publish(channel: string, message: string): Promise<unknown> {
    return this.send(channel, ['SPUBLISH', channel, message]);
  }

  connected(ms: number): Promise<boolean> {
    return within(this.connecting, ms);
  }
}

class ClientLink extends BaseLink {
  constructor(
    private readonly client: Client,
    private readonly subscriber: Client,
    connecting: Promise<unknown>,
    private readonly watch: Watch,
  ) {
    super(connecting);
  }

  protected send(_key: string, args: string[]): Promise<unknown> {
    return this.client.sendCommand(args);
  }

  protected stalled(): void {
    this.watch.reopen(this.client, 'commands');
  }

  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    await bounded(this.subscriber.sSubscribe(channel, listener), () => this.watch.reopen(this.subscriber, 'subscriber'));
  }

  async unsubscribe(channel: string, listener: MessageListener): Promise<void> {
    await bounded(this.subscriber.sUnsubscribe(channel, listener), () => this.watch.reopen(this.subscriber, 'subscriber'));
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.subscriber.destroy();
  }
}

class ClusterLink extends BaseLink {
  constructor(
    private readonly cluster: Cluster,
    connecting: Promise<unknown>,
    private readonly watch: Watch,
  ) {
    super(connecting);
  }

  protected send(key: string, args: string[]): Promise<unknown> {
    return this.cluster.sendCommand(key, false, args);
  }

  // The master's command client; its pub/sub clients are mostly idle, which the socket timeout
  // covers. getNodeClientForKey throws at once while the cluster is not ready: nothing to close then.
  protected stalled(key: string): void {
    Promise.resolve()
      .then(() => this.cluster.getNodeClientForKey(key, false))
      .then(
        (client) => this.watch.reopen(client, addressOf(client.options?.socket)),
        () => undefined,
      );
  }

  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    await bounded(this.cluster.sSubscribe(channel, listener));
  }

  async unsubscribe(channel: string, listener: MessageListener): Promise<void> {
    await bounded(this.cluster.sUnsubscribe(channel, listener));
  }

  async close(): Promise<void> {
    this.cluster.destroy();
  }
}

/**
 * node-redis's Sentinel client differs from the other two in three ways this link makes up for.
 * Without a master it retries a command up to 16 times, a second apart: each command and
 * subscription is bounded here by COMMAND_TIMEOUT_MS, as everywhere else. Its connect() gives up
 * after those retries and tears the client down: it is tried again until it succeeds. It emits
 * 'ready' again only after a failover, and reports errors of the master's connection only when
 * passthroughClientErrorEvents is on: a master back at the same address counts as a
 * reconnection at the first command that succeeds after an error.
 */
class SentinelLink extends BaseLink {
  /** An error event or a failed subscription since the last 'ready' or successful command. */
  private lost = false;
  private closed = false;

  constructor(
    private readonly sentinel: Sentinel,
    private readonly watch: Watch,
  ) {
    let opened!: () => void;
    super(new Promise<void>((resolve) => (opened = resolve)));
    sentinel.on('error', (err) => {
      this.lost = true;
      watch.failed(err, 'sentinel');
    });
    let readyBefore = false;
    sentinel.on('ready', () => {
      // Again after a failover, which may come without an error.
      if (readyBefore) watch.lose('sentinel');
      readyBefore = true;
      this.lost = false;
      watch.ready('sentinel');
    });
    void this.open().then(opened, () => undefined);
  }

  private async open(): Promise<void> {
    for (;;) {
      try {
        await this.sentinel.connect();
        return;
      } catch (err) {
        if (this.closed) throw err;
        this.watch.failed(err, 'sentinel');
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MAX_DELAY_MS).unref());
        if (this.closed) throw err;
      }
    }
  }

  protected send(_key: string, args: string[]): Promise<unknown> {
    return this.sentinel.sendCommand(false, args);
  }

  // node-redis's Sentinel client hides its connections; an idle one is closed by the socket timeout.
  protected stalled(): void {}

  async command(key: string, args: string[]): Promise<unknown> {
    const reply = await super.command(key, args);
    if (this.lost) {
      this.lost = false;
      this.watch.ready('sentinel');
    }
    return reply;
  }

  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    try {
      await bounded(this.sentinel.sSubscribe(channel, listener));
    } catch (err) {
      // Subscribed again, with every other channel, once a command succeeds. A reply from Redis
      // (an ACL refusal, say) would fail again.
      if (!(err instanceof ErrorReply)) {
        this.lost = true;
        this.watch.lose('sentinel');
      }
      throw err;
    }
  }

  async unsubscribe(channel: string, listener: MessageListener): Promise<void> {
    await bounded(this.sentinel.sUnsubscribe(channel, listener));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.sentinel.destroy();
  }
}

/**
 * Rejects when `promise` has not settled within COMMAND_TIMEOUT_MS (node-redis bounds a command
 * only until it is written). When it is still unsettled STALL_MS later, calls `stalled`.
 */
function bounded<T>(promise: Promise<T>, stalled?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`Redis did not answer within ${COMMAND_TIMEOUT_MS} ms`));
      if (stalled !== undefined) watchStall(promise, stalled);
    }, COMMAND_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Only for calls that already gave up, so a healthy Redis costs no second timer.
function watchStall(promise: Promise<unknown>, stalled: () => void): void {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  setTimeout(() => settled || stalled(), STALL_MS).unref();
}
