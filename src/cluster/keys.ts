import type { AppState } from '../apps/app-state';

/**
 * Every Redis key and pub/sub channel the cluster uses, in one place. An app's state keys share
 * one hash tag (`{<app id>}`), so each Lua script touches a single slot of a Redis Cluster.
 * Apps are named by id, which is the same on every node (unlike their order in a config file).
 *
 * Per app:  subs (channel → subscriptions), members:<channel> (user → nodes holding it),
 *           info:<channel> (user → user_info), conns (node → connections),
 *           node:<node> (what that node added: `s\n<channel>` → subscriptions, `m\n<channel>\n<user>` → 1,
 *           `u\n<user>` → 1 for a user signed in there, apps with watchlist events only),
 *           online (user → nodes where it is signed in; apps with watchlist events only),
 *           limit:<limit> (a rate limit's token bucket), cache:<channel> (a cache channel's last event,
 *           with its TTL), cachemiss:<channel> (set during a miss burst),
 *           version (the last edge version the scripts handed out, see scripts.ts),
 *           webhooks (webhook queue → sending node), webhooks:<node>:<url digest> (a webhook queue, a stream),
 *           webhooks:<node>:<url digest>:sending
 * Global:   node:<node> (heartbeat, expires), nodes (set of node ids), reap:<node> (the reaper's lock),
 *           console:open (set while a node serves an open console, expires)
 *           apps (channel: the id of an app changed with `pws-server apps`, for the app store's nodes)
 * Channels: ch:<app>:<channel> on database 0, ch<db>:<app>:<channel> on another one: sharded pub/sub
 *           (and console / console<db>, the console's log and figures while one is open)
 *           ignores the database, so deployments told apart by it alone would get each other's frames.
 */
export class Keys {
  private readonly channels: string;
  private readonly database: number;

  constructor(
    private readonly prefix: string,
    database = 0,
  ) {
    this.channels = `${prefix}:ch${database === 0 ? '' : database}:`;
    this.database = database;
  }

  /** The sharded channel that announces app changes made with `pws-server apps`. */
  appChanges(): string {
    return `${this.channels}apps`;
  }

  /** The prefix of one app's state keys, e.g. `pws:{app-id}:`. */
  app(app: AppState): string {
    return `${this.prefix}:{${encodeURIComponent(app.config.id)}}:`;
  }

  subs(app: AppState): string {
    return `${this.app(app)}subs`;
  }

  members(app: AppState, channel: string): string {
    return `${this.app(app)}members:${channel}`;
  }

  info(app: AppState, channel: string): string {
    return `${this.app(app)}info:${channel}`;
  }

  conns(app: AppState): string {
    return `${this.app(app)}conns`;
  }

  /** Signed-in users (apps with watchlist events): user id → nodes where it has a socket. */
  online(app: AppState): string {
    return `${this.app(app)}online`;
  }

  /** What a node added to an app's state, so that it can be taken out again when the node dies. */
  owned(app: AppState, node: string): string {
    return `${this.app(app)}node:${node}`;
  }

  /** The app's edge version: every join, leave, sign-in and sign-out script takes the next one. */
  version(app: AppState): string {
    return `${this.app(app)}version`;
  }

  /** A rate limit's token bucket (RATE_LIMITER_DRIVER=redis). */
  rateLimit(app: AppState, limit: string): string {
    return `${this.app(app)}limit:${limit}`;
  }

  /** A cache channel's last event, and the marker of its current miss burst. */
  cache(app: AppState, channel: string): string {
    return `${this.app(app)}cache:${channel}`;
  }

  cacheMiss(app: AppState, channel: string): string {
    return `${this.app(app)}cachemiss:${channel}`;
  }

  /** An app's webhook queues (ADAPTER_DRIVER=redis): stream key → the node sending it. */
  webhookQueues(app: AppState): string {
    return `${this.app(app)}webhooks`;
  }

  /** The webhook queue one node started for one URL of an app (`url`: a digest of it, after the last colon). */
  webhookQueue(app: AppState, node: string, url: string): string {
    return `${this.app(app)}webhooks:${node}:${url}`;
  }

  /** The POST a webhook queue's sender is sending (same hash tag as the queue). */
  webhookSending(queue: string): string {
    return `${queue}:sending`;
  }

  /** The console relay's key and channel (CONSOLE_ENABLED). */
  console(): { open: string; channel: string } {
    const db = this.database === 0 ? '' : String(this.database);
    return { open: `${this.prefix}:console${db}:open`, channel: `${this.prefix}:console${db}` };
  }

  heartbeat(node: string): string {
    return `${this.prefix}:node:${node}`;
  }

  nodes(): string {
    return `${this.prefix}:nodes`;
  }

  reapLock(node: string): string {
    return `${this.prefix}:reap:${node}`;
  }

  /** The sharded pub/sub channel of one app channel. */
  channel(app: AppState, channel: string): string {
    return `${this.channelPrefix(app)}${channel}`;
  }

  channelPrefix(app: AppState): string {
    return `${this.channels}${encodeURIComponent(app.config.id)}:`;
  }
}
