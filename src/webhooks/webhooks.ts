import type { ChannelState } from '../adapter/adapter';
import type { Apps, AppState } from '../apps';
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

  /** Null when no app has webhooks: then nothing listens, and channel events cost nothing. */
  static forApps(apps: Apps, options: Options, metrics: PwsMetrics | null, log: Log, console: ConsoleTap | null): Webhooks | null {
    return [...apps.all()].some((app) => app.config.webhooks.length > 0) ? new Webhooks(apps, options, metrics, log, console) : null;
  }

  private constructor(apps: Apps, options: Options, metrics: PwsMetrics | null, log: Log, console: ConsoleTap | null) {
    const ctx: StreamContext = (this.ctx = {
      sender: this.sender,
      batching: options.webhooksBatching,
      batchingMs: options.webhooksBatchingDurationMs,
      timings: DELIVERY,
      metrics: metrics === null ? null : new WebhookMetrics(metrics, apps),
      log,
      console,
    });
    for (const app of apps.all()) {
      if (app.config.webhooks.length > 0) this.apps.set(app, new AppWebhooks(app, ctx));
    }
  }

  /**
   * The state a held event is checked against before it goes out. With Redis the user may
   * have come back through another node, which sent its member_added (or channel_occupied)
   * unaware of the hold here: the held event is then dropped, as it would be untrue.
   */
  checkHeldAgainst(state: ChannelState): void {
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
    queues.start(routes, this.ctx.metrics);
  }

  /**
   * Shutdown, last step: every stream's last attempt, LAST_ATTEMPT_MS at most, or with Redis
   * queues, the hand-over of what is left to the other nodes; then closes the connections.
   */
  async stop(): Promise<void> {
    await this.releaseHeld();
    if (this.queues !== null) {
      for (const app of this.apps.values()) for (const route of app.routes) route.stream.handOver();
      await this.queues.handOver();
      this.sender.close();
      return;
    }
    const deadline = performance.now() + LAST_ATTEMPT_MS;
    await Promise.all([...this.apps.values()].flatMap((app) => app.routes.map((route) => route.stream.finish(deadline))));
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
    ctx: StreamContext,
  ) {
    const byUrl = new Map<string, Route>();
    for (const entry of app.config.webhooks) {
      let route = byUrl.get(entry.url);
      if (route === undefined) {
        route = { url: entry.url, stream: new WebhookStream(app, new URL(entry.url), entry.headers, ctx), entries: [] };
        byUrl.set(entry.url, route);
        this.routes.push(route);
      }
      route.entries.push(entry);
    }
    this.holds = new HoldBack(HOLD_BACK_MS, (held) => this.release(held));
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
