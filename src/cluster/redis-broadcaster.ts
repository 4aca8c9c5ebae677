import type { AppState, Apps } from '../apps';
import type { Broadcaster } from '../adapter/adapter';
import type { FanOut } from '../adapter/fan-out';
import type { Log } from '../log';
import { userChannel, watchlistChannel } from '../protocol/channel-names';
import type { ClusterMetrics } from './cluster-metrics';
import type { Keys } from './keys';
import type { Outbox } from './outbox';
import type { MessageListener, RedisLink } from './redis-link';

// Message kinds on the wire: a frame to deliver, or a user to disconnect.
const FRAME = 'F';
const TERMINATE = 'T';

/**
 * Delivers locally first, then publishes the serialized frame once to the app channel's sharded
 * Redis channel: `<kind>\n<origin node>\n<excluded socket id>\n<sent at, ms>\n<frame>`. A node
 * subscribes to that channel only while it has a local subscriber, so a message reaches only the
 * nodes that need it; each delivers it to its own sockets and drops its own echo.
 */
export class RedisBroadcaster implements Broadcaster {
  private readonly listeners = new Map<AppState, MessageListener>();

  constructor(
    private readonly fanOut: FanOut,
    private readonly link: RedisLink,
    private readonly keys: Keys,
    private readonly node: string,
    apps: Apps,
    private readonly metrics: ClusterMetrics | null,
    private readonly log: Log,
    /** Holds the messages for the other nodes, in order, while Redis cannot take them. */
    private readonly outbox: Outbox,
  ) {
    for (const app of apps.all()) this.listeners.set(app, this.receiver(app));
  }

  publish(app: AppState, channel: string, frame: string, exceptSocketId?: string): void {
    this.fanOut.publish(app, channel, frame, exceptSocketId);
    this.send(app, channel, FRAME, exceptSocketId ?? '', frame);
  }

  terminateUser(app: AppState, userId: string): void {
    this.fanOut.terminateUser(app, userId);
    this.send(app, userChannel(userId), TERMINATE, '', userId);
  }

  /** Resolves once Redis confirmed the subscription (or failed: then delivery stays local). */
  listen(app: AppState, channel: string): Promise<void> {
    return this.link.subscribe(this.keys.channel(app, channel), this.listeners.get(app)!).catch((err) => this.failed('subscribe', err));
  }

  unlisten(app: AppState, channel: string): void {
    this.link.unsubscribe(this.keys.channel(app, channel), this.listeners.get(app)!).catch((err) => this.failed('unsubscribe', err));
  }

  /** Subscribes again to every channel with a local subscriber (after Redis lost the subscriptions). */
  relisten(apps: Apps): void {
    for (const app of apps.all()) {
      for (const channel of app.channels.keys()) void this.listen(app, channel);
      for (const userId of app.users.keys()) void this.listen(app, userChannel(userId));
      for (const userId of app.watched?.keys() ?? []) void this.listen(app, watchlistChannel(userId));
    }
  }

  private send(app: AppState, channel: string, kind: string, except: string, payload: string): void {
    const message = `${kind}\n${this.node}\n${except}\n${Date.now()}\n${payload}`;
    const key = this.keys.channel(app, channel);
    const seq = this.outbox.next();
    if (this.outbox.holding) this.outbox.hold(seq, key, message);
    else {
      const generation = this.outbox.generation;
      // One function for both outcomes (a reply is never an Error): one closure per frame, as before the outbox.
      const settled = (outcome: unknown) => {
        if (outcome instanceof Error) this.failed('publish', outcome);
        else if (this.outbox.generation === generation) return;
        this.outbox.hold(seq, key, message);
      };
      this.link.publish(key, message).then(settled, settled);
    }
    this.metrics?.published.add(app.metricsSlot, 1);
  }

  private receiver(app: AppState): MessageListener {
    const prefixLength = this.keys.channelPrefix(app).length;
    return (message, redisChannel) => {
      const a = message.indexOf('\n', 2);
      // Our own publish, already delivered locally.
      if (message.slice(2, a) === this.node) return;
      const b = message.indexOf('\n', a + 1);
      const c = message.indexOf('\n', b + 1);
      const payload = message.slice(c + 1);
      if (message[0] === TERMINATE) {
        this.fanOut.terminateUser(app, payload);
        return;
      }
      const except = b > a + 1 ? message.slice(a + 1, b) : undefined;
      this.fanOut.publish(app, redisChannel.slice(prefixLength), payload, except);
      if (this.metrics !== null) {
        this.metrics.received.add(app.metricsSlot, 1);
        this.metrics.lag.observe(0, Math.max(0, Date.now() - Number(message.slice(b + 1, c))) / 1000);
      }
    };
  }

  private failed(what: string, err: unknown): void {
    this.metrics?.redisErrors.add(0, 1);
    if (this.log.debugEnabled) this.log.debug(`redis ${what} failed: ${(err as Error)?.message ?? err}`);
  }
}
