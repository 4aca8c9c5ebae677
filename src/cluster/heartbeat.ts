import type { Apps } from '../apps/apps';
import type { Broadcaster } from '../adapter/adapter';
import type { ChannelEvents } from '../channels/events';
import type { SubscriptionCounts } from '../channels/subscription-counts';
import type { Watchlist } from '../channels/watchlist';
import type { Log } from '../log';
import { channelKind } from '../protocol/channel-names';
import { memberRemoved } from '../protocol/frames';
import type { ClusterMetrics } from './cluster-metrics';
import type { Keys } from './keys';
import type { RedisLink } from './redis-link';
import type { RedisChannelState } from './redis-state';

/** What the heartbeat works with. */
export interface HeartbeatContext {
  apps: Apps;
  link: RedisLink;
  keys: Keys;
  /** This process's id; the state's entries are under its first incarnation (see incarnation()). */
  node: string;
  state: RedisChannelState;
  broadcaster: Broadcaster;
  events: ChannelEvents | null;
  /** Announces the users a reap takes offline, or a rewrite finds changed. */
  watchlist: Watchlist;
  /** Announces the counts a reap lowers (null when no app has live subscription counts). */
  counts: SubscriptionCounts | null;
  metrics: ClusterMetrics | null;
  log: Log;
  /** Milliseconds after the last heartbeat at which a node counts as dead. */
  nodeTimeoutMs: number;
  /** Closes every socket of this node with 4200, so that its clients reconnect and join again. */
  closeAll: () => void;
}

/** The id under which incarnation `n` of `node` keeps its entries and beats. */
export function incarnation(node: string, n: number): string {
  return `${node}.${n}`;
}

// Ids of nodes seen leaving the cluster, kept to recognize one that Redis brings back.
const DEPARTED_MAX = 10000;

/**
 * Every quarter of the node timeout: renews this node's TTL key (on its own, so that a long
 * upkeep never lets it expire), and runs the upkeep: rewrites the node's entries when Redis may
 * not hold them right, publishes its connection counts and learns the others', and looks for
 * nodes whose key expired. One survivor (the holder of a Redis lock) takes a dead node's sockets
 * out of the shared state, and the reap script returns each edge once, so member_removed,
 * channel_vacated and a watchlist's offline go out exactly once.
 *
 * Fencing: a node's entries live under its incarnation, `<node>.<n>`. When a renewal finds the
 * key not as the last confirmed one left it (gone: it expired, as when the node was paused or cut
 * off for a node timeout, or Redis lost it; older: Redis went back to older data), a survivor may
 * have reaped the incarnation, or Redis may have lost its entries, while other nodes' clients saw
 * its users leave. So the node does not serve that state on: it closes its sockets with 4200
 * (clients reconnect and join again through the normal path, which announces each edge once),
 * continues as the next incarnation, and reaps the one it left like a dead node. A reap decided
 * on a stale view of a live node can only ever hit an incarnation that node gives up. While
 * Redis cannot be reached the node serves on (see "Redis is down" in docs/scaling.md): its
 * clients then rejoin on a Redis that takes the joins.
 */
export class Heartbeat {
  private readonly timer: NodeJS.Timeout;
  private renewing: Promise<void> | null = null;
  /** The incarnation the renewal in flight is for. */
  private renewingFor = '';
  private running: Promise<void> | null = null;
  private incarnation = 1;
  /** The value this incarnation's key was left with by its last renewal Redis confirmed; null before the first. */
  private confirmed: string | null = null;
  /** When that renewal was sent (performance.now()). */
  private confirmedSentAt = 0;
  /** Values of renewals sent since, whose answer never came (a call gives up after 2 s): Redis may still have run them. */
  private readonly unanswered = new Set<string>();
  /** This node's earlier incarnations, not reaped yet. */
  private readonly retired: string[] = [];
  /** Nodes seen leaving the set of nodes (reaped, stopped, retired), oldest first. */
  private readonly departed = new Set<string>();
  /** The node ids of the last scan, to see which left since. */
  private members: string[] = [];
  // No reaping until every live node has had a node timeout to beat: at start, and after Redis
  // came back (a Redis that kept its data holds heartbeat keys that expired during the outage,
  // of nodes that are alive and about to beat again).
  private reapNotBefore: number;

  constructor(private readonly ctx: HeartbeatContext) {
    this.reapNotBefore = performance.now() + ctx.nodeTimeoutMs;
    this.timer = setInterval(() => {
      void this.renew();
      void this.upkeep();
    }, Math.max(250, ctx.nodeTimeoutMs / 4));
    this.timer.unref();
  }

  /** Redis is back after a loss: beat now, and give the other nodes a node timeout to do the same before reaping. */
  reconnected(): Promise<void> {
    this.reapNotBefore = performance.now() + this.ctx.nodeTimeoutMs;
    return this.beat();
  }

  /** One renewal and one upkeep now (also the first ones at start-up); never rejects. */
  async beat(): Promise<void> {
    await this.renew();
    await this.upkeep();
  }

  private renew(): Promise<void> {
    const { state } = this.ctx;
    // A fence happens inside a renewal: the new incarnation's first one does not wait for it to settle.
    if (this.renewing === null || this.renewingFor !== state.node) {
      const renewing: Promise<void> = this.renewOnce((this.renewingFor = state.node)).finally(() => {
        if (this.renewing === renewing) this.renewing = null;
      });
      this.renewing = renewing;
    }
    return this.renewing;
  }

  private async renewOnce(id: string): Promise<void> {
    const { link, keys, state, nodeTimeoutMs } = this.ctx;
    const key = keys.heartbeat(id);
    const value = String(Date.now());
    const sentAt = performance.now();
    try {
      const previous = await link.command(key, ['SET', key, value, 'PX', String(nodeTimeoutMs), 'GET']);
      if (state.node !== id) return;
      // Gone (expired, or Redis lost it) or older (Redis went back to older data), or set by a
      // renewal whose answer never came, which may have recreated it after it expired.
      if (this.confirmed !== null && previous !== this.confirmed && !this.ranLate(previous)) {
        this.fence(previous === null ? 'found its heartbeat key gone' : 'found its heartbeat key not as it left it');
        return;
      }
      this.confirmed = value;
      this.confirmedSentAt = sentAt;
      this.unanswered.clear();
      await link.command(keys.nodes(), ['SADD', keys.nodes(), id]);
      // The process's own key, whatever its incarnation: its webhook queues are taken over only
      // once it is gone (redis-queue.ts), not each time it fences.
      const process = keys.heartbeat(this.ctx.node);
      await link.command(process, ['SET', process, value, 'PX', String(nodeTimeoutMs)]);
    } catch (err) {
      if (this.confirmed !== null && state.node === id) this.unanswered.add(value);
      this.failed('heartbeat', err);
    }
  }

  /**
   * Whether the key holds the value of a renewal that gave up waiting but ran once Redis resumed (a
   * stall longer than a call's bound, shorter than the node timeout): no sign of expiry, as long as
   * every renewal since the last confirmed one ran within a node timeout of its sending, which holds
   * when this answer came within one. Otherwise the key may have expired between them.
   */
  private ranLate(previous: unknown): boolean {
    return typeof previous === 'string' && this.unanswered.has(previous) && performance.now() - this.confirmedSentAt < this.ctx.nodeTimeoutMs;
  }

  private fence(why: string): void {
    const { state, node, log, metrics } = this.ctx;
    const left = state.node;
    const next = incarnation(node, ++this.incarnation);
    log.warn(`cluster: node ${left} ${why}; the cluster may have dropped its entries, so it closes its connections (4200: clients reconnect and join again) and continues as ${next}`);
    metrics?.fences.add(0, 1);
    this.confirmed = null;
    this.unanswered.clear();
    this.retired.push(left);
    state.fence(next, this.ctx.closeAll);
    void this.beat();
  }

  private upkeep(): Promise<void> {
    this.running ??= this.runUpkeep().finally(() => (this.running = null));
    return this.running;
  }

  private async runUpkeep(): Promise<void> {
    const { state, apps } = this.ctx;
    try {
      while (this.retired.length > 0) {
        await this.leave(this.retired[0]);
        this.depart(this.retired.shift()!);
      }
      // Not before this incarnation's key is known to be in place: after Redis lost this node's
      // entries, fencing rebuilds them, not a rewrite.
      if (this.confirmed === null) return;
      // The renewal in flight may find the key gone and fence: a rewrite waits for its verdict.
      await this.renewing;
      if (this.confirmed === null) return;
      if (state.dirty) await state.rewrite(apps, (app, userId, online) => this.ctx.watchlist.announce(app, userId, online));
      await state.syncConnections(apps);
      await this.scanNodes(performance.now() >= this.reapNotBefore);
    } catch (err) {
      this.failed('cluster upkeep', err);
    }
  }

  // Counts the live nodes; reaps the dead ones when `reap`.
  private async scanNodes(reap: boolean): Promise<void> {
    const { link, keys, state, metrics } = this.ctx;
    const members = toArray(await link.command(keys.nodes(), ['SMEMBERS', keys.nodes()]));
    const now = new Set(members);
    for (const gone of this.members) if (!now.has(gone)) this.depart(gone);
    this.members = members;
    let live = 0;
    for (const other of members) {
      // This node's own earlier incarnations are its to take out (runUpkeep).
      if (this.retired.includes(other)) continue;
      if (other === state.node || Number(await link.command(keys.heartbeat(other), ['EXISTS', keys.heartbeat(other)])) === 1) {
        // Alive after all (its id was missing from an older copy of the set, say): a node brought
        // back by Redis never is, as its key expired long before its reap.
        this.departed.delete(other);
        live++;
        continue;
      }
      if (!reap) continue;
      const locked = await link.command(keys.reapLock(other), ['SET', keys.reapLock(other), state.node, 'NX', 'PX', '30000']);
      if (locked === null) continue;
      // A node seen leaving before, brought back by Redis (an older snapshot loaded, a failover
      // that lost the writes of its reap): the webhooks had its edges then. Clients get them
      // again, as some may have subscribed since and been told of its members.
      const again = this.departed.has(other);
      const removed = await this.reap(other, !again);
      await link.command(keys.nodes(), ['SREM', keys.nodes(), other]);
      this.depart(other);
      if (again) {
        this.ctx.log.info(`cluster: node ${other}, gone before, was back in Redis; removed its connections again (no webhooks this time)`);
        continue;
      }
      metrics?.reapedNodes.add(0, 1);
      this.ctx.log.info(`cluster: node ${other} stopped sending heartbeats; removed its connections (${removed} presence members)`);
    }
    metrics?.nodes.set(0, live);
  }

  // Takes a node's entries out and announces each edge that caused, to the webhooks too when
  // `webhooks`; returns the members removed.
  private async reap(dead: string, webhooks: boolean): Promise<number> {
    const { apps, state, broadcaster } = this.ctx;
    const events = webhooks ? this.ctx.events : null;
    let members = 0;
    for (const app of apps.all()) {
      const reaped = await state.reap(app, dead);
      members += reaped.removed.length;
      for (const { channel, userId } of reaped.removed) {
        broadcaster.publishEdge(app, channel, userId, reaped.version, memberRemoved(channel, userId));
        events?.memberRemoved(app, channel, userId);
      }
      if (events !== null) for (const channel of reaped.vacated) events.vacated(app, channel);
      if (app.config.enableSubscriptionCount) {
        for (const { channel, count } of reaped.counted) if (channelKind(channel) !== 'presence') this.ctx.counts?.changed(app, channel, count, reaped.version);
      }
      for (const userId of reaped.offline) this.ctx.watchlist.announce(app, userId, false, reaped.version);
    }
    return members;
  }

  // Takes one of this node's incarnations out of the cluster, announcing each edge once.
  private async leave(id: string): Promise<void> {
    const { link, keys } = this.ctx;
    await this.reap(id, true);
    await link.command(keys.heartbeat(id), ['DEL', keys.heartbeat(id)]);
    await link.command(keys.nodes(), ['SREM', keys.nodes(), id]);
  }

  private depart(id: string): void {
    this.departed.add(id);
    if (this.departed.size > DEPARTED_MAX) this.departed.delete(this.departed.values().next().value!);
  }

  private failed(what: string, err: unknown): void {
    this.ctx.metrics?.redisErrors.add(0, 1);
    if (this.ctx.log.debugEnabled) this.ctx.log.debug(`${what} failed: ${(err as Error)?.message ?? err}`);
  }

  /** Stops beating and leaves the cluster at once, so nobody waits for this node's key to expire. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing;
    await this.running;
    try {
      // Whatever closing the sockets left behind (leaves still failing, say) goes now.
      for (const id of [...this.retired, this.ctx.state.node]) await this.leave(id);
      await this.ctx.link.command(this.ctx.keys.heartbeat(this.ctx.node), ['DEL', this.ctx.keys.heartbeat(this.ctx.node)]);
    } catch {
      // Redis is gone: the survivors reap this node when its key expires.
    }
  }
}

// SMEMBERS answers an array (RESP2) or a Set (RESP3).
function toArray(reply: unknown): string[] {
  return reply instanceof Set ? [...reply].map(String) : (reply as unknown[]).map(String);
}
