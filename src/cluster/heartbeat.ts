import type { Apps } from '../apps';
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
}

/**
 * Every quarter of the node timeout: refreshes this node's TTL key, publishes its connection
 * counts and learns the others', and looks for nodes whose key expired. One survivor (the
 * holder of a Redis lock) takes a dead node's sockets out of the shared state, and the reap
 * script returns each edge once, so member_removed, channel_vacated and a watchlist's offline go
 * out exactly once.
 */
export class Heartbeat {
  private readonly timer: NodeJS.Timeout;
  private beating: Promise<void> | null = null;
  private beats = 0;
  // No reaping until every live node has had a node timeout to beat: at start, and after Redis
  // came back (a Redis that kept its data holds heartbeat keys that expired during the outage,
  // of nodes that are alive and about to beat again).
  private reapNotBefore: number;

  constructor(private readonly ctx: HeartbeatContext) {
    this.reapNotBefore = performance.now() + ctx.nodeTimeoutMs;
    this.timer = setInterval(() => void this.beat(), Math.max(250, ctx.nodeTimeoutMs / 4));
    this.timer.unref();
  }

  /** Redis is back after a loss: beat now, and give the other nodes a node timeout to do the same before reaping. */
  reconnected(): Promise<void> {
    this.reapNotBefore = performance.now() + this.ctx.nodeTimeoutMs;
    return this.beat();
  }

  /** One heartbeat now (also the first one at start-up); never rejects. */
  beat(): Promise<void> {
    this.beating ??= this.run().finally(() => (this.beating = null));
    return this.beating;
  }

  private async run(): Promise<void> {
    const { link, keys, node, state, apps } = this.ctx;
    try {
      const previous = await link.command(keys.heartbeat(node), ['SET', keys.heartbeat(node), String(Date.now()), 'PX', String(this.ctx.nodeTimeoutMs), 'GET']);
      await link.command(keys.nodes(), ['SADD', keys.nodes(), node]);
      // Our key had expired: a survivor may have reaped us while we were only slow.
      if (this.beats++ > 0 && previous === null) state.dirty = true;
      if (state.dirty) await state.rewrite(apps, (app, userId, online) => this.ctx.watchlist.announce(app, userId, online));
      await state.syncConnections(apps);
      await this.scanNodes(performance.now() >= this.reapNotBefore);
    } catch (err) {
      this.ctx.metrics?.redisErrors.add(0, 1);
      if (this.ctx.log.debugEnabled) this.ctx.log.debug(`heartbeat failed: ${(err as Error)?.message ?? err}`);
    }
  }

  // Counts the live nodes; reaps the dead ones when `reap`.
  private async scanNodes(reap: boolean): Promise<void> {
    const { link, keys, node, metrics } = this.ctx;
    const members = toArray(await link.command(keys.nodes(), ['SMEMBERS', keys.nodes()]));
    let live = 0;
    for (const other of members) {
      if (other === node || Number(await link.command(keys.heartbeat(other), ['EXISTS', keys.heartbeat(other)])) === 1) {
        live++;
        continue;
      }
      if (!reap) continue;
      const locked = await link.command(keys.reapLock(other), ['SET', keys.reapLock(other), node, 'NX', 'PX', '30000']);
      if (locked === null) continue;
      const removed = await this.reap(other);
      await link.command(keys.nodes(), ['SREM', keys.nodes(), other]);
      metrics?.reapedNodes.add(0, 1);
      this.ctx.log.info(`cluster: node ${other} stopped sending heartbeats; removed its connections (${removed} presence members)`);
    }
    metrics?.nodes.set(0, live);
  }

  // Takes a node's entries out and announces each edge; returns the members removed.
  private async reap(dead: string): Promise<number> {
    const { apps, state, broadcaster, events } = this.ctx;
    let members = 0;
    for (const app of apps.all()) {
      const reaped = await state.reap(app, dead);
      for (const { channel, userId } of reaped.removed) {
        broadcaster.publishEdge(app, channel, userId, reaped.version, memberRemoved(channel, userId));
        events?.memberRemoved(app, channel, userId);
      }
      for (const channel of reaped.vacated) events?.vacated(app, channel);
      if (app.config.enableSubscriptionCount) {
        for (const { channel, count } of reaped.counted) if (channelKind(channel) !== 'presence') this.ctx.counts?.changed(app, channel, count, reaped.version);
      }
      for (const userId of reaped.offline) this.ctx.watchlist.announce(app, userId, false, reaped.version);
      members += reaped.removed.length;
    }
    return members;
  }

  /** Stops beating and leaves the cluster at once, so nobody waits for this node's key to expire. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.beating;
    const { link, keys, node } = this.ctx;
    try {
      // Whatever closing the sockets left behind (leaves still failing, say) goes now.
      await this.reap(node);
      await link.command(keys.heartbeat(node), ['DEL', keys.heartbeat(node)]);
      await link.command(keys.nodes(), ['SREM', keys.nodes(), node]);
    } catch {
      // Redis is gone: the survivors reap this node when its key expires.
    }
  }
}

// SMEMBERS answers an array (RESP2) or a Set (RESP3).
function toArray(reply: unknown): string[] {
  return reply instanceof Set ? [...reply].map(String) : (reply as unknown[]).map(String);
}
