import type { AppState } from '../apps/app-state';

/**
 * How far behind the newest edge of a channel a forgotten key's edge may still arrive, in edge
 * versions (microseconds of Redis's clock): 60 s. Beyond it, an edge about a key this node no
 * longer remembers is dropped as stale.
 */
export const FORGET_AFTER = 60_000_000;

// A channel's remembered keys are pruned when they reach this many (and then twice as many as were left).
const PRUNE_AT = 64;

/** An edge delivered while a socket of its channel waited for its state. */
interface Kept {
  version: number;
  frame: string;
}

/** One channel's edges as this node delivered them. */
class ChannelEdges {
  /** Versions at or below it are stale for keys without an entry: covered by the state the first subscriber got, or forgotten. */
  floor = 0;
  newest = 0;
  /** Key (a user id, or '') → the version of the last edge delivered about it. */
  readonly last = new Map<string, number>();
  pruneAt = PRUNE_AT;
  /** Sockets waiting for the channel's state; while there are any, delivered edges are kept for them. */
  holds = 0;
  kept: Kept[] = [];
  /** The node's last subscriber left: holds taken before that are void. */
  forgotten = false;
}

/** One socket waiting for a channel's state. */
export class EdgeHold {
  released = false;

  constructor(
    readonly edges: ChannelEdges,
    readonly first: boolean,
  ) {}
}

/**
 * The order of edges on this node (RedisBroadcaster): an edge carries the version the Redis script
 * that decided it handed out, and is delivered only when it is newer than the last one this node
 * delivered about the same channel and key. Edges decided on two nodes therefore reach clients in
 * Redis's order however late one node publishes (a reload: the old node's member_removed after the
 * new node's member_added is dropped). State is kept only for channels with local subscribers,
 * and dropped when the last one leaves.
 */
export class EdgeOrder {
  private readonly apps = new WeakMap<AppState, Map<string, ChannelEdges>>();

  /**
   * True when the edge is to be delivered here, and remembers it; `listened` says whether the node
   * has local subscribers of the channel (no state is created for a channel without). A version
   * of 0 or less is an edge another node decided alone while Redis was away (perhaps sent from its
   * outbox once Redis is back), knowing edges up to minus that: it stands unless an edge about the
   * same key newer than those was delivered here since, which knows better.
   */
  accept(app: AppState, channel: string, key: string, version: number, frame: string, listened: boolean): boolean {
    if (version <= 0) return (this.apps.get(app)?.get(channel)?.last.get(key) ?? 0) <= -version;
    const edges = listened ? this.edges(app, channel) : this.apps.get(app)?.get(channel);
    if (edges === undefined) return true;
    if (version <= (edges.last.get(key) ?? edges.floor)) return false;
    edges.last.set(key, version);
    if (version > edges.newest) edges.newest = version;
    if (edges.last.size >= edges.pruneAt) prune(edges);
    if (edges.holds > 0) edges.kept.push({ version, frame });
    return true;
  }

  /** The newest edge version this node delivered on the channel (0: none, or no local subscriber). */
  newest(app: AppState, channel: string): number {
    return this.apps.get(app)?.get(channel)?.newest ?? 0;
  }

  /** A socket of the channel waits for its state (`first`: the node's first subscriber): keep what is delivered meanwhile. */
  hold(app: AppState, channel: string, first: boolean): EdgeHold {
    const edges = this.edges(app, channel);
    edges.holds++;
    return new EdgeHold(edges, first);
  }

  /**
   * The socket got its state as of `version` (or none): returns the kept edges newer than it, in
   * order. For the node's first subscriber the state covers every older edge: from now on an
   * older one about a key the node has not seen is stale.
   */
  release(hold: EdgeHold, version: number): Kept[] {
    const { edges } = hold;
    if (hold.released || edges.forgotten) return [];
    hold.released = true;
    if (hold.first && version > edges.floor) edges.floor = version;
    const newer = edges.kept.filter((k) => k.version > version);
    if (--edges.holds === 0) edges.kept = [];
    return newer;
  }

  /** The node's last subscriber of the channel left. */
  forget(app: AppState, channel: string): void {
    const channels = this.apps.get(app);
    const edges = channels?.get(channel);
    if (edges === undefined) return;
    edges.forgotten = true;
    channels!.delete(channel);
  }

  private edges(app: AppState, channel: string): ChannelEdges {
    let channels = this.apps.get(app);
    if (channels === undefined) this.apps.set(app, (channels = new Map()));
    let edges = channels.get(channel);
    if (edges === undefined) channels.set(channel, (edges = new ChannelEdges()));
    return edges;
  }
}

// Forgets the keys whose last edge is older than FORGET_AFTER before the channel's newest; the
// floor rises to the newest forgotten, so a late edge about them is still dropped.
function prune(edges: ChannelEdges): void {
  const before = edges.newest - FORGET_AFTER;
  for (const [key, version] of edges.last) {
    if (version > before) continue;
    edges.last.delete(key);
    if (version > edges.floor) edges.floor = version;
  }
  edges.pruneAt = Math.max(PRUNE_AT, 2 * edges.last.size);
}
