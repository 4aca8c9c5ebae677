import type { ChannelState } from '../adapter/adapter';
import type { AppState } from '../apps/app-state';
import type { Apps } from '../apps/apps';
import type { ChannelEvents } from '../channels/events';
import type { ConsoleTap } from '../console/tap';
import type { Log } from '../log';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { Options } from '../options';
import { HOLD_BACK_MS, HoldBack } from './hold-back';
import type { QueueRoute, RedisWebhookQueues } from './redis-queue';
import { WebhookSender } from './sender';
import { DELIVERY, WebhookStream, type StreamContext } from './stream';
import { wants, type WebhookConfig, type WebhookEventType } from './webhook-config';
import { cacheMiss, channelOccupied, channelVacated, clientEvent, memberAdded, memberRemoved, subscriptionCount, type WebhookEvent } from './webhook-events';
import { WebhookMetrics } from './webhook-metrics';

/** At shutdown, the time every stream has for its last attempt (so exit stays near the grace period). */
export const LAST_ATTEMPT_MS = 2000;

/** A channel_vacated or member_removed waiting out its hold-back. */
interface Held {
  type: 'channel_vacated' | 'member_removed';
  channel: string;
  userId: string;
}

/** One URL of an app: its stream, and the entries (one or more, same headers) that feed it. */
interface Route {
  url: string;
  stream: WebhookStream;
  entries: WebhookConfig[];
}

/**
 * Turns channel events into webhooks. For each app with webhooks: the events its entries ask
 * for (type and channel filter), one stream per URL, and the hold-back that lets a page reload
 * pass unreported. Edges come here once per cluster (ChannelState decides them), so the node
 * that receives an edge sends its webhook and no other node does.
 */
export class Webhooks implements ChannelEvents {
  private readonly apps = new Map<AppState, AppWebhooks>();
  private readonly sender = new WebhookSender();
  private readonly ctx: StreamContext;
  /** ADAPTER_DRIVER=redis: where the streams keep their events, and hand them over at shutdown. */
  private queues: RedisWebhookQueues | null = null;
  private state: ChannelState | null = null;
  /** Streams of URLs an app no longer has, or of removed apps: they deliver what they hold, and get no more. */
  private readonly retired = new Set<WebhookStream>();

  /**
   * Null when no app has webhooks and none can gain them (`dynamic` is false: the apps come
   * from the config file): then nothing listens, and channel events cost nothing.
   */
  static forApps(apps: Apps, options: Options, metrics: PwsMetrics | null, log: Log, dynamic: boolean, console: ConsoleTap | null): Webhooks | null {
    return dynamic || [...apps.all()].some((app) => app.config.webhooks.length > 0) ? new Webhooks(apps, options, metrics, log, console) : null;
  }

  private constructor(apps: Apps, options: Options, metrics: PwsMetrics | null, log: Log, console: ConsoleTap | null) {
    this.ctx = {
      sender: this.sender,
      batching: options.webhooksBatching,
      batchingMs: options.webhooksBatchingDurationMs,
      timings: DELIVERY,
      metrics: metrics === null ? null : new WebhookMetrics(metrics, apps),
      log,
      console,
    };
    apps.watch({
      added: (app) => this.reconfigure(app),
      changed: (app) => this.reconfigure(app),
      removed: (app) => {
        const hooks = this.apps.get(app);
        if (hooks === undefined) return;
        this.apps.delete(app);
        hooks.retire([]);
        this.queues?.removeApp(app);
      },
    });
  }

  // Builds, changes or drops the app's webhooks after its config.
  private reconfigure(app: AppState): void {
    let hooks = this.apps.get(app);
    if (hooks === undefined) {
      if (app.config.webhooks.length === 0) return;
      this.apps.set(app, (hooks = new AppWebhooks(app, (url, headers) => this.stream(app, url, headers), (stream) => this.retire(stream))));
      hooks.state = this.state;
    }
    hooks.configure(app.config.webhooks);
    if (hooks.routes.length === 0) this.apps.delete(app);
  }

  private stream(app: AppState, url: string, headers: Record<string, string>): WebhookStream {
    const stream = new WebhookStream(app, new URL(url), headers, this.ctx);
    if (this.queues !== null) {
      stream.journal = this.queues.journal(app, url);
      this.queues.addRoutes([{ app, url, stream: (journal) => new WebhookStream(app, new URL(url), headers, this.ctx, journal) }]);
    }
    return stream;
  }

  private retire(stream: WebhookStream): void {
    this.retired.add(stream);
  }

  /**
   * The state a held event is checked against before it goes out. With Redis the user may
   * have come back through another node, which sent its member_added (or channel_occupied)
   * unaware of the hold here: the held event is then dropped, as it would be untrue.
   */
  checkHeldAgainst(state: ChannelState): void {
    this.state = state;
    for (const app of this.apps.values()) app.state = state;
  }

  occupied(app: AppState, channel: string): void {
    this.apps.get(app)?.rejoined('channel_occupied', channel, '', channelOccupied);
  }

  vacated(app: AppState, channel: string): void {
    this.apps.get(app)?.left('channel_vacated', channel, '');
  }

  memberAdded(app: AppState, channel: string, userId: string): void {
    this.apps.get(app)?.rejoined('member_added', channel, userId, (c) => memberAdded(c, userId));
  }

  memberRemoved(app: AppState, channel: string, userId: string): void {
    this.apps.get(app)?.left('member_removed', channel, userId);
  }

  // Already throttled like the frames (SubscriptionCounts), so a large channel cannot flood the queue.
  subscriptionCount(app: AppState, channel: string, count: number): void {
    this.apps.get(app)?.emit('subscription_count', channel, (c) => subscriptionCount(c, count));
  }

  cacheMiss(app: AppState, channel: string): void {
    this.apps.get(app)?.emit('cache_miss', channel, cacheMiss);
  }

  clientEvent(app: AppState, channel: string, event: string, data: unknown, socketId: string, userId: string | undefined): void {
    this.apps.get(app)?.emit('client_event', channel, () => clientEvent(channel, event, data, socketId, userId));
  }

  /**
   * Shutdown, first step: sends what is held now (checked while the cluster's state can still
   * be read); events from then on are not held.
   */
  releaseHeld(): Promise<void> {
    return Promise.all([...this.apps.values()].map((app) => app.releaseHeld())).then(() => undefined);
  }

  /**
   * ADAPTER_DRIVER=redis: every stream keeps its events in a Redis queue, and this node takes
   * over the queues of nodes that stopped or died (docs/webhooks.md#cluster).
   */
  keepIn(queues: RedisWebhookQueues): void {
    this.queues = queues;
    const routes: QueueRoute[] = [];
    for (const [app, hooks] of this.apps) {
      for (const { url, stream, entries } of hooks.routes) {
        stream.journal = queues.journal(app, url);
        routes.push({ app, url, stream: (journal) => new WebhookStream(app, new URL(url), entries[0].headers, this.ctx, journal) });
      }
    }
    queues.addRoutes(routes);
    queues.start(this.ctx.metrics);
  }

  /**
   * Shutdown, last step: every stream's last attempt, LAST_ATTEMPT_MS at most, or with Redis
   * queues, the hand-over of what is left to the other nodes; then closes the connections.
   */
  async stop(): Promise<void> {
    await this.releaseHeld();
    const streams = [...this.retired, ...[...this.apps.values()].flatMap((app) => app.routes.map((route) => route.stream))];
    if (this.queues !== null) {
      for (const stream of streams) stream.handOver();
      await this.queues.handOver();
      this.sender.close();
      return;
    }
    const deadline = performance.now() + LAST_ATTEMPT_MS;
    await Promise.all(streams.map((stream) => stream.finish(deadline)));
    this.sender.close();
  }
}

/** One app's webhooks. */
class AppWebhooks {
  readonly routes: Route[] = [];
  state: ChannelState | null = null;
  private readonly holds: HoldBack<Held>;
  private holding = true;
  // Released events whose check against the cluster's state is still running, chained so they go
  // out in order. The checks run side by side, and each Redis read gives up after its bound
  // (redis-link.ts), so a Redis that hangs holds the chain for that long, not for the hang.
  private releasing: Promise<void> | null = null;

  constructor(
    private readonly app: AppState,
    private readonly newStream: (url: string, headers: Record<string, string>) => WebhookStream,
    private readonly retireStream: (stream: WebhookStream) => void,
  ) {
    this.holds = new HoldBack(HOLD_BACK_MS, (held) => this.release(held));
  }

  /**
   * One route per URL of `webhooks`: a URL kept keeps its stream (and what it holds), with the
   * new entries and headers; a URL gone retires its stream, which still delivers what it holds.
   */
  configure(webhooks: WebhookConfig[]): void {
    const byUrl = new Map<string, Route>();
    for (const entry of webhooks) {
      let route = byUrl.get(entry.url);
      if (route === undefined) {
        const kept = this.routes.find((r) => r.url === entry.url);
        if (kept !== undefined) kept.stream.headers = entry.headers;
        route = { url: entry.url, stream: kept?.stream ?? this.newStream(entry.url, entry.headers), entries: [] };
        byUrl.set(entry.url, route);
      }
      route.entries.push(entry);
    }
    this.retire([...byUrl.keys()]);
    this.routes.splice(0, this.routes.length, ...byUrl.values());
  }

  /** Retires the streams of every URL but `keep`. */
  retire(keep: string[]): void {
    for (const route of this.routes) if (!keep.includes(route.url)) this.retireStream(route.stream);
  }

  /** Queues the event on every stream with an entry that wants it; builds it only then. */
  emit(type: WebhookEventType, channel: string, build: (channel: string) => WebhookEvent): void {
    let event: WebhookEvent | null = null;
    for (const route of this.routes) {
      if (route.entries.some((entry) => wants(entry, type, channel))) route.stream.push((event ??= build(channel)));
    }
  }

  /** channel_occupied / member_added: a held opposite means a quick return, and then neither is sent. */
  rejoined(type: 'channel_occupied' | 'member_added', channel: string, userId: string, build: (channel: string) => WebhookEvent): void {
    if (this.holds.cancel(holdKey(channel, userId))) return;
    this.emit(type, channel, build);
  }

  /** channel_vacated / member_removed: held back, when the pair concerns some entry of this channel. */
  left(type: 'channel_vacated' | 'member_removed', channel: string, userId: string): void {
    const pair: WebhookEventType = type === 'channel_vacated' ? 'channel_occupied' : 'member_added';
    if (!this.routes.some((route) => route.entries.some((entry) => wants(entry, type, channel) || wants(entry, pair, channel)))) return;
    if (this.holding) this.holds.hold(holdKey(channel, userId), { type, channel, userId });
    else this.emit(type, channel, (c) => (type === 'channel_vacated' ? channelVacated(c) : memberRemoved(c, userId)));
  }

  releaseHeld(): Promise<void> {
    this.holding = false;
    this.holds.releaseAll();
    return this.releasing ?? Promise.resolve();
  }

  // Sends a held event unless the cluster says the channel is occupied again (the user is back).
  private release(held: Held): void {
    const build = (c: string) => (held.type === 'channel_vacated' ? channelVacated(c) : memberRemoved(c, held.userId));
    const gone = this.stillGone(held);
    if (this.releasing === null && typeof gone === 'boolean') {
      if (gone) this.emit(held.type, held.channel, build);
      return;
    }
    const next: Promise<void> = Promise.all([this.releasing, gone]).then(([, yes]) => {
      if (yes) this.emit(held.type, held.channel, build);
      if (this.releasing === next) this.releasing = null;
    });
    this.releasing = next;
  }

  // True when the channel is still vacated / the user still absent. When the state cannot be
  // read, the event goes out: a lost member_removed would show the user online for good.
  private stillGone(held: Held): boolean | Promise<boolean> {
    const state = this.state;
    if (state === null) return true;
    const { channel, userId } = held;
    try {
      if (held.type === 'channel_vacated') {
        const summary = state.channel(this.app, channel);
        return summary instanceof Promise ? summary.then((s) => s === null, () => true) : summary === null;
      }
      const members = state.members(this.app, channel);
      return members instanceof Promise ? members.then((m) => !m.has(userId), () => true) : !members.has(userId);
    } catch {
      return true;
    }
  }
}

// A channel's vacated is keyed by its name, a member's removal by channel and user ('' is no user id).
function holdKey(channel: string, userId: string): string {
  return userId === '' ? channel : `${channel}\n${userId}`;
}
