import type { AppState } from '../apps/app-state';
import type { Apps } from '../apps/apps';
import type { ChannelState, ChannelSummary, JoinEdges, LeaveEdges, MemberJoin, OnlineState } from '../adapter/adapter';
import { LocalChannelState } from '../adapter/local-state';
import { HttpError } from '../protocol/errors';
import type { ClusterMetrics } from './cluster-metrics';
import type { Keys } from './keys';
import type { RedisLink } from './redis-link';
import { CHANNEL, CHANNELS, CONNECTIONS, JOIN, LEAVE, MEMBERS, OFFLINE, ONLINE, PRUNE, REAP, SYNC } from './scripts';

// Records or fields per script of a rewrite, so rewriting a large node never blocks Redis for long.
const BATCH = 500;

/** A member taken out of a presence channel by a reap. */
export interface Reaped {
  removed: { channel: string; userId: string }[];
  vacated: string[];
  /** Channels left with fewer subscribers, and how many. */
  counted: { channel: string; count: number }[];
  /** Users (apps with watchlist events) signed in on no node any more. */
  offline: string[];
  /** The edge version of all of these. */
  version: number;
}

/** Told of a user that came online or went offline (apps with watchlist events). */
export type UserChange = (app: AppState, userId: string, online: boolean) => void;

/**
 * Channel occupancy and presence on Redis: each join and leave is one script that decides the
 * edge on the cluster-wide counts. When Redis cannot answer, the node keeps serving with its
 * own counts (a subscribe never hangs or fails for it) and rewrites its entries once Redis is
 * back; REST reads answer 503 instead of numbers that would be wrong.
 */
export class RedisChannelState implements ChannelState {
  private readonly local = new LocalChannelState();
  /** Connections on the other nodes, per app, as of the last heartbeat. */
  private readonly elsewhere = new WeakMap<AppState, number>();
  /** A change Redis did not take: the node's entries must be rewritten. */
  dirty = false;
  // True only while the node closes its sockets to fence itself: their leaves announce nothing,
  // the reap of the incarnation they belonged to does.
  private fencing = false;

  constructor(
    private readonly link: RedisLink,
    private readonly keys: Keys,
    /** This node's incarnation: its entries are kept under this id (see Heartbeat). */
    public node: string,
    private readonly metrics: ClusterMetrics | null,
  ) {}

  async join(app: AppState, channel: string, presence: boolean, member: MemberJoin | null): Promise<JoinEdges> {
    const keys = [this.keys.subs(app), this.keys.owned(app, this.node), this.keys.members(app, channel), this.keys.info(app, channel), this.keys.version(app)];
    const args = [channel, presence ? '1' : '0', member?.userId ?? '', member === null ? '' : JSON.stringify(member.info), String(app.config.maxPresenceMembersPerChannel)];
    let reply: unknown[];
    try {
      reply = (await this.link.eval(JOIN, keys, args)) as unknown[];
    } catch {
      this.failed();
      return this.local.join(app, channel, presence, member);
    }
    const count = Number(reply[2]);
    return {
      full: reply[0] === 1,
      occupied: count === 1,
      memberAdded: reply[1] === 1,
      subscriptionCount: count,
      members: presence ? membersOf(reply, 4) : null,
      version: Number(reply[3]),
    };
  }

  async leave(app: AppState, channel: string, userId: string | null): Promise<LeaveEdges> {
    const quiet = this.fencing;
    const keys = [this.keys.subs(app), this.keys.owned(app, this.node), this.keys.members(app, channel), this.keys.info(app, channel), this.keys.version(app)];
    try {
      const reply = (await this.link.eval(LEAVE, keys, [channel, userId ?? ''])) as number[];
      return { vacated: reply[0] === 1, memberRemoved: reply[1] === 1, subscriptionCount: Number(reply[2]), version: Number(reply[3]) };
    } catch {
      this.failed();
      const alone = this.local.leave(app, channel, userId);
      return quiet ? { ...alone, vacated: false, memberRemoved: false } : alone;
    }
  }

  async members(app: AppState, channel: string): Promise<Map<string, unknown>> {
    return membersOf((await this.read(MEMBERS, [this.keys.info(app, channel)], [])) as unknown[], 0);
  }

  async channel(app: AppState, channel: string): Promise<ChannelSummary | null> {
    const [subscriptions, users, version] = (await this.read(CHANNEL, [this.keys.subs(app), this.keys.members(app, channel), this.keys.version(app)], [channel])) as number[];
    return subscriptions > 0 ? { subscriptionCount: subscriptions, userCount: users, version: Number(version) } : null;
  }

  async channels(app: AppState, prefix: string, userCounts: boolean): Promise<Map<string, ChannelSummary>> {
    const reply = (await this.read(CHANNELS, [this.keys.subs(app)], [this.keys.app(app), prefix, userCounts ? '1' : '0'])) as unknown[];
    const out = new Map<string, ChannelSummary>();
    for (let i = 0; i < reply.length; i += 3) out.set(String(reply[i]), { subscriptionCount: Number(reply[i + 1]), userCount: Number(reply[i + 2]) });
    return out;
  }

  connections(app: AppState): number {
    return app.sockets.size + (this.elsewhere.get(app) ?? 0);
  }

  async signedIn(app: AppState, userId: string): Promise<number | false> {
    return this.userEdge(ONLINE, app, userId, this.local.signedIn());
  }

  async signedOut(app: AppState, userId: string): Promise<number | false> {
    return this.userEdge(OFFLINE, app, userId, this.fencing ? false : this.local.signedOut());
  }

  async online(app: AppState, userIds: string[]): Promise<OnlineState> {
    const key = this.keys.online(app);
    const versionKey = this.keys.version(app);
    try {
      // The version first, on the same connection: every edge up to it is in the statuses read
      // after it; a later one may be too, and sent again after them it changes nothing.
      const [version, reply] = (await Promise.all([this.link.command(versionKey, ['GET', versionKey]), this.link.command(key, ['HMGET', key, ...userIds])])) as [unknown, unknown[]];
      return { online: new Set(userIds.filter((_, i) => reply[i] !== null)), version: Number(version ?? 0) };
    } catch {
      this.metrics?.redisErrors.add(0, 1);
      // A sign-in does not fail for it: the watchlist's state is this node's own users then.
      return this.local.online(app, userIds);
    }
  }

  // Like a join: when Redis does not answer, the node decides alone and rewrites its entries later.
  private async userEdge(script: typeof ONLINE, app: AppState, userId: string, alone: number | false): Promise<number | false> {
    try {
      const reply = (await this.link.eval(script, [this.keys.online(app), this.keys.owned(app, this.node), this.keys.version(app)], [userId])) as unknown[];
      return reply.length === 2 ? Number(reply[0]) : false;
    } catch {
      this.failed();
      return alone;
    }
  }

  /** Publishes this node's connection counts and learns the other nodes' (once per heartbeat). */
  async syncConnections(apps: Apps): Promise<void> {
    await Promise.all(
      [...apps.all()].map(async (app) => {
        const mine = app.sockets.size;
        const total = Number(await this.link.eval(CONNECTIONS, [this.keys.conns(app)], [this.node, String(mine)]));
        this.elsewhere.set(app, Math.max(0, total - mine));
      }),
    );
  }

  /** Takes everything `node` (a dead one, or this one leaving) added out of the shared state; returns the edges that caused. */
  async reap(app: AppState, node: string): Promise<Reaped> {
    const keys = [this.keys.subs(app), this.keys.owned(app, node), this.keys.conns(app)];
    const reply = (await this.link.eval(REAP, keys, [this.keys.app(app), node])) as string[];
    const pairs = Number(reply[0]);
    const removed: Reaped['removed'] = [];
    for (let i = 1; i < 1 + pairs; i += 2) removed.push({ channel: reply[i], userId: reply[i + 1] });
    const vacatedAt = 2 + pairs;
    const countedAt = vacatedAt + Number(reply[vacatedAt - 1]) + 1;
    const versionAt = countedAt + Number(reply[countedAt - 1]);
    const counted: Reaped['counted'] = [];
    for (let i = countedAt; i < versionAt; i += 2) counted.push({ channel: reply[i], count: Number(reply[i + 1]) });
    return { removed, vacated: reply.slice(vacatedAt, countedAt - 1), counted, version: Number(reply[versionAt]), offline: reply.slice(versionAt + 1) };
  }

  /**
   * Makes Redis hold exactly this node's entries (after Redis lost some, or took a change
   * while this node could not hear the answer): first each channel and member it holds, then
   * the removal of what it no longer holds. Entries that were right stay untouched throughout,
   * so no other node sees them missing. Channel edges are not replayed: the clients saw none.
   * Signed-in users are reconciled too, and each online status change that caused goes to
   * `changed` as soon as Redis made it: a user whose last sign-out Redis missed is offline now.
   */
  async rewrite(apps: Apps, changed: UserChange): Promise<void> {
    this.dirty = false;
    try {
      for (const app of apps.all()) {
        await this.syncEntries(app);
        await this.pruneEntries(app);
        if (app.watched !== null) await this.reconcileUsers(app, changed);
      }
    } catch (err) {
      if (err instanceof Fenced) return;
      this.failed();
      throw err;
    }
  }

  // Each batch is read from the live channels right before it is sent (the Map iterators follow
  // changes across the awaits). Commands run in order on the connection, so a join or leave
  // whose script went out before a batch is counted in it, and one sent after it runs after it:
  // a leave during the rewrite is never undone by an older copy of the entry.
  private async syncEntries(app: AppState): Promise<void> {
    const node = this.node;
    const keys = [this.keys.subs(app), this.keys.owned(app, node)];
    let args = [this.keys.app(app)];
    let records = 0;
    const flush = async () => {
      const batch = args;
      args = [batch[0]];
      records = 0;
      // A fence since the rewrite began retired `node`: writing its entries back would bring
      // back what a reap took out and announced. The fence rebuilds them under the next one.
      if (this.node !== node) throw new Fenced();
      await this.link.eval(SYNC, keys, batch);
    };
    for (const [name, channel] of app.channels) {
      args.push('s', name, String(channel.subscriptions));
      if (++records === BATCH) await flush();
      if (channel.members === null) continue;
      for (const [userId, member] of channel.members) {
        args.push('m', name, userId, JSON.stringify(member.info));
        if (++records === BATCH) await flush();
      }
    }
    if (records > 0) await flush();
  }

  // Takes out what Redis holds under this node and the node does not hold any more, a page of
  // its entries at a time; each page is compared with the live channels right before its script is sent.
  private async pruneEntries(app: AppState): Promise<void> {
    const keys = [this.keys.subs(app), this.keys.owned(app, this.node)];
    let cursor = '0';
    do {
      const [next, page] = (await this.link.command(keys[1], ['HSCAN', keys[1], cursor, 'COUNT', String(BATCH)])) as [string, string[]];
      cursor = String(next);
      const stale = [this.keys.app(app)];
      for (let i = 0; i < page.length; i += 2) if (!holds(app, page[i])) stale.push(page[i]);
      if (stale.length > 1) await this.link.eval(PRUNE, keys, stale);
    } while (cursor !== '0');
  }

  /**
   * Moves this node's entries to the new incarnation `next` and closes its sockets with
   * `closeAll`. Their leaves and sign-outs announce nothing: they belonged to the incarnation
   * left behind, whose reap announces each edge once.
   */
  fence(next: string, closeAll: () => void): void {
    this.node = next;
    this.dirty = false;
    this.fencing = true;
    try {
      closeAll();
    } finally {
      this.fencing = false;
    }
  }

  // Makes Redis record exactly this node's signed-in users. Each list is taken from app.users
  // just before its script is sent, and commands run in order, so a sign-in or sign-out racing
  // with this (whose own script goes on the same connection) is never undone.
  private async reconcileUsers(app: AppState, changed: UserChange): Promise<void> {
    const keys = [this.keys.online(app), this.keys.owned(app, this.node), this.keys.version(app)];
    const fields = (await this.link.command(keys[1], ['HKEYS', keys[1]])) as string[];
    const gone = fields.filter((f) => f.startsWith('u\n') && !app.users.has(f.slice(2))).map((f) => f.slice(2));
    if (gone.length > 0) for (const userId of ((await this.link.eval(OFFLINE, keys, gone)) as string[]).slice(1)) changed(app, userId, false);
    const users = [...app.users.keys()];
    for (let i = 0; i < users.length; i += BATCH) {
      const batch = users.slice(i, i + BATCH).filter((userId) => app.users.has(userId));
      if (batch.length > 0) for (const userId of ((await this.link.eval(ONLINE, keys, batch)) as string[]).slice(1)) changed(app, userId, true);
    }
  }

  private async read(script: typeof CHANNEL, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await this.link.eval(script, keys, args);
    } catch (err) {
      this.metrics?.redisErrors.add(0, 1);
      throw new HttpError(503, `The cluster's shared state cannot be read right now (Redis: ${(err as Error)?.message ?? err}); try again`);
    }
  }

  private failed(): void {
    this.dirty = true;
    this.metrics?.redisErrors.add(0, 1);
  }
}

// A rewrite overtaken by a fence: it stops, and the fence rebuilds the entries under the next incarnation.
class Fenced extends Error {}

// Whether this node still holds the entry behind a field of its owned hash (signed-in users are reconcileUsers' part).
function holds(app: AppState, field: string): boolean {
  if (field[0] === 's') return app.channels.has(field.slice(2));
  if (field[0] !== 'm') return true;
  const nl = field.indexOf('\n', 2);
  return app.channels.get(field.slice(2, nl))?.members?.has(field.slice(nl + 1)) === true;
}

// Pairs of user id and user_info JSON, from `offset` on.
function membersOf(reply: unknown[], offset: number): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (let i = offset; i < reply.length; i += 2) out.set(String(reply[i]), JSON.parse(String(reply[i + 1])));
  return out;
}
