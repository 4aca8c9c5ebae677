import type { AppState } from '../apps/app-state';
import type { ChannelState, ChannelSummary, JoinEdges, LeaveEdges, MemberJoin, OnlineState } from './adapter';

/**
 * One node is the whole cluster: the answers are this node's own bookkeeping (AppState.channels),
 * which Channels has already updated when join and leave are called. Synchronous, so a
 * single-node subscribe never waits for a promise.
 */
export class LocalChannelState implements ChannelState {
  join(app: AppState, channel: string, presence: boolean, member: MemberJoin | null): JoinEdges {
    const entry = app.channels.get(channel)!;
    return {
      full: false,
      occupied: entry.subscriptions === 1,
      memberAdded: member !== null && entry.members!.get(member.userId)!.sockets === 1,
      subscriptionCount: entry.subscriptions,
      members: presence ? this.members(app, channel) : null,
      version: 0,
    };
  }

  leave(app: AppState, channel: string, userId: string | null): LeaveEdges {
    const entry = app.channels.get(channel);
    return { vacated: entry === undefined, memberRemoved: userId !== null, subscriptionCount: entry?.subscriptions ?? 0, version: 0 };
  }

  members(app: AppState, channel: string): Map<string, unknown> {
    const out = new Map<string, unknown>();
    const members = app.channels.get(channel)?.members;
    if (members) for (const [id, member] of members) out.set(id, member.info);
    return out;
  }

  channel(app: AppState, channel: string): ChannelSummary | null {
    const entry = app.channels.get(channel);
    return entry === undefined ? null : { subscriptionCount: entry.subscriptions, userCount: entry.members?.size ?? 0 };
  }

  channels(app: AppState, prefix: string): Map<string, ChannelSummary> {
    const out = new Map<string, ChannelSummary>();
    for (const [name, entry] of app.channels) {
      if (name.startsWith(prefix)) out.set(name, { subscriptionCount: entry.subscriptions, userCount: entry.members?.size ?? 0 });
    }
    return out;
  }

  connections(app: AppState): number {
    return app.sockets.size;
  }

  // This node's first and last socket of a user are the cluster's; one node needs no versions.
  signedIn(): number {
    return 0;
  }

  signedOut(): number {
    return 0;
  }

  online(app: AppState, userIds: string[]): OnlineState {
    return { online: new Set(userIds.filter((id) => app.users.has(id))), version: 0 };
  }
}
