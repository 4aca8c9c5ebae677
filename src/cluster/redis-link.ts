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

// Every command is bounded: a Redis that stops answering delays a subscribe or a REST read by
// this much at most, and with the offline queue off a command fails at once while disconnected.
const COMMAND_TIMEOUT_MS = 2000;
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
  sendCommand(args: string[]): Promise<unknown>;
  destroy(): void;
}
interface Cluster extends PubSub {
  sendCommand(key: string, isReadonly: boolean, args: string[]): Promise<unknown>;
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

/** Connects as the options say: REDIS_URL, DB_REDIS_CLUSTER_NODES, DB_REDIS_SENTINELS, or DB_REDIS_HOST/PORT. */
export function connectRedis(options: RedisOptions, log: Log, events: LinkEvents): RedisLink {
  const socket = {
    reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, RECONNECT_MAX_DELAY_MS),
    connectTimeout: COMMAND_TIMEOUT_MS,
    ...(options.redisTls ? { tls: true as const } : {}),
  };
  const auth = {
    ...(options.redisUsername !== '' ? { username: options.redisUsername } : {}),
    ...(options.redisPassword !== '' ? { password: options.redisPassword } : {}),
  };
  const common = { disableOfflineQueue: true, commandOptions: { timeout: COMMAND_TIMEOUT_MS } };
  const watch = new Watch(log, events);

  if (options.redisClusterNodes !== '') {
    const cluster = createCluster({
      rootNodes: parseHostPorts(options.redisClusterNodes, 'DB_REDIS_CLUSTER_NODES').map(({ host, port }) => ({ socket: { host, port, ...socket } })),
      defaults: { ...auth, ...common, socket },
    });
    cluster.on('error', (err) => watch.failed(err));
    cluster.on('node-error', (err: unknown) => watch.failed(err));
    cluster.on('node-ready', (node: { host?: string; port?: number }) => watch.ready(`${node?.host}:${node?.port}`));
    return new ClusterLink(cluster as unknown as Cluster, cluster.connect());
  }
  if (options.redisSentinels !== '') {
    const sentinel = createSentinel({
      name: options.redisSentinelName,
      sentinelRootNodes: parseHostPorts(options.redisSentinels, 'DB_REDIS_SENTINELS'),
      nodeClientOptions: { ...auth, ...common, socket, database: options.redisDb },
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
      ? createClient({ url: options.redisUrl, ...common, socket })
      : createClient({ ...auth, ...common, database: options.redisDb, socket: { host: options.redisHost, port: options.redisPort, ...socket } });
  // Subscribing takes a connection over; commands and publishes go on the other one.
  const subscriber = client.duplicate();
  for (const [name, c] of [['commands', client], ['subscriber', subscriber]] as const) {
    c.on('error', (err) => watch.failed(err));
    c.on('ready', () => watch.ready(name));
  }
  return new ClientLink(client as unknown as Client, subscriber as unknown as Client, Promise.all([client.connect(), subscriber.connect()]));
}

// Logs the first error of an outage and the recovery, instead of one line per retry.
class Watch {
  /** Connections that were ready once: their next ready is a reconnection. */
  private readonly seen = new Set<string>();
  private down = false;

  constructor(
    private readonly log: Log,
    private readonly events: LinkEvents,
  ) {}

  failed(err: unknown): void {
    this.events.error(err);
    if (this.down) return;
    this.down = true;
    this.log.warn(`redis: ${(err as Error)?.message ?? err}; serving local clients only until it is back`);
  }

  ready(connection: string): void {
    if (!this.seen.has(connection)) {
      this.seen.add(connection);
      if (!this.down) return;
    }
    if (this.down) this.log.info('redis: connected again');
    this.down = false;
    this.events.reconnected();
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

  abstract command(key: string, args: string[]): Promise<unknown>;
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

  publish(channel: string, message: string): Promise<unknown> {
    return this.command(channel, ['SPUBLISH', channel, message]);
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
  ) {
    super(connecting);
  }

  command(_key: string, args: string[]): Promise<unknown> {
    return this.client.sendCommand(args);
  }

  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    await bounded(this.subscriber.sSubscribe(channel, listener));
  }

  async unsubscribe(channel: string, listener: MessageListener): Promise<void> {
    await this.subscriber.sUnsubscribe(channel, listener);
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
  ) {
    super(connecting);
  }

  command(key: string, args: string[]): Promise<unknown> {
    return this.cluster.sendCommand(key, false, args);
  }

  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    await bounded(this.cluster.sSubscribe(channel, listener));
  }

  async unsubscribe(channel: string, listener: MessageListener): Promise<void> {
    await this.cluster.sUnsubscribe(channel, listener);
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
      watch.failed(err);
    });
    sentinel.on('ready', () => {
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
        this.watch.failed(err);
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MAX_DELAY_MS).unref());
        if (this.closed) throw err;
      }
    }
  }

  async command(_key: string, args: string[]): Promise<unknown> {
    const reply = await bounded(this.sentinel.sendCommand(false, args));
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
      if (!(err instanceof ErrorReply)) this.lost = true;
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
 * Rejects when `promise` has not settled within COMMAND_TIMEOUT_MS: for what node-redis does not
 * bound itself (subscriptions everywhere, every Sentinel command; see SentinelLink).
 */
function bounded<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
