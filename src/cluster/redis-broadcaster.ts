import type { AppState } from '../apps/app-state';
import type { Apps } from '../apps/apps';
import type { Broadcaster } from '../adapter/adapter';
import type { FanOut } from '../adapter/fan-out';
import type { Log } from '../log';
import type { Socket } from '../ws/socket';
import { userChannel, watchlistChannel } from '../protocol/channel-names';
import type { ClusterMetrics } from './cluster-metrics';
import { EdgeOrder, type EdgeHold } from './edge-order';
import type { Keys } from './keys';
import type { Outbox } from './outbox';
import type { MessageListener, RedisLink } from './redis-link';

// Message kinds on the wire: a frame to deliver, an edge (a frame delivered in version order), or a user to disconnect.
const FRAME = 'F';
const EDGE = 'E';
const TERMINATE = 'T';

/**
 * Delivers locally first, then publishes the serialized frame once to the app channel's sharded
 * Redis channel: `<kind>\n<origin node>\n<excluded socket id>\n<sent at, ms>\n<payload>`. A node
 * subscribes to that channel only while it has a local subscriber, so a message reaches only the
 * nodes that need it; each delivers it to its own sockets and drops its own echo. An edge's payload
 * is `<version>\n<key length>\n<key><frame>`, and each node delivers it only in version order (EdgeOrder).
 */
export class RedisBroadcaster implements Broadcaster {
  // One per app, made at its first channel: subscribe and unsubscribe must pass the same function.
  private readonly listeners = new WeakMap<AppState, MessageListener>();
  private readonly order = new EdgeOrder();

  constructor(
    private readonly fanOut: FanOut,
    private readonly link: RedisLink,
    private readonly keys: Keys,
    private readonly node: string,
    private readonly metrics: ClusterMetrics | null,
    private readonly log: Log,
    /** Holds the messages for the other nodes, in order, while Redis cannot take them. */
    private readonly outbox: Outbox,
  ) {}

  publish(app: AppState, channel: string, frame: string, exceptSocketId?: string): void {
    this.fanOut.publish(app, channel, frame, exceptSocketId);
    this.send(app, channel, FRAME, exceptSocketId ?? '', frame);
  }

  publishEdge(app: AppState, channel: string, key: string, version: number, frame: string, exceptSocketId?: string): void {
    if (version === 0) {
      // Decided by this node alone (Redis away): its own clients get it now; the others, perhaps
      // from the outbox once Redis is back, with the newest version this node knew (as minus it):
      // a node that has since delivered a newer edge about the key drops it.
      this.fanOut.publish(app, channel, frame, exceptSocketId);
      this.send(app, channel, EDGE, exceptSocketId ?? '', `-${this.order.newest(app, channel)}\n${key.length}\n${key}${frame}`);
      return;
    }
    this.deliverEdge(app, channel, key, version, frame, exceptSocketId);
    this.send(app, channel, EDGE, exceptSocketId ?? '', `${version}\n${key.length}\n${key}${frame}`);
  }

  holdEdges(app: AppState, channel: string, first: boolean): EdgeHold {
    return this.order.hold(app, channel, first);
  }

  releaseEdges(hold: EdgeHold | null, version: number, ws: Socket | null): void {
    if (hold === null) return;
    const newer = this.order.release(hold, version);
    if (ws !== null) for (const edge of newer) this.fanOut.send(ws, edge.frame);
  }

  terminateUser(app: AppState, userId: string): void {
    this.fanOut.terminateUser(app, userId);
    this.send(app, userChannel(userId), TERMINATE, '', userId);
  }

  /** Resolves once Redis confirmed the subscription (or failed: then delivery stays local). */
  listen(app: AppState, channel: string): Promise<void> {
    return this.link.subscribe(this.keys.channel(app, channel), this.listenerOf(app)).catch((err) => this.failed('subscribe', err));
  }

  unlisten(app: AppState, channel: string): void {
    this.order.forget(app, channel);
    this.link.unsubscribe(this.keys.channel(app, channel), this.listenerOf(app)).catch((err) => this.failed('unsubscribe', err));
  }

  private listenerOf(app: AppState): MessageListener {
    let listener = this.listeners.get(app);
    if (listener === undefined) this.listeners.set(app, (listener = this.receiver(app)));
    return listener;
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
      if (message[0] === EDGE) this.receivedEdge(app, redisChannel.slice(prefixLength), payload, except);
      else this.fanOut.publish(app, redisChannel.slice(prefixLength), payload, except);
      if (this.metrics !== null) {
        this.metrics.received.add(app.metricsSlot, 1);
        this.metrics.lag.observe(0, Math.max(0, Date.now() - Number(message.slice(b + 1, c))) / 1000);
      }
    };
  }

  // `<version>\n<key length>\n<key><frame>`
  private receivedEdge(app: AppState, channel: string, payload: string, except: string | undefined): void {
    const a = payload.indexOf('\n');
    const b = payload.indexOf('\n', a + 1);
    const keyEnd = b + 1 + Number(payload.slice(a + 1, b));
    this.deliverEdge(app, channel, payload.slice(b + 1, keyEnd), Number(payload.slice(0, a)), payload.slice(keyEnd), except);
  }

  private deliverEdge(app: AppState, channel: string, key: string, version: number, frame: string, except: string | undefined): void {
    if (this.order.accept(app, channel, key, version, frame, this.fanOut.subscribers(app, channel) > 0)) this.fanOut.publish(app, channel, frame, except);
  }

  private failed(what: string, err: unknown): void {
    this.metrics?.redisErrors.add(0, 1);
    if (this.log.debugEnabled) this.log.debug(`redis ${what} failed: ${(err as Error)?.message ?? err}`);
  }
}
