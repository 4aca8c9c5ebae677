import type { AppState } from '../apps/app-state';

/**
 * What happens on channels, decided once for the whole cluster (see ChannelState): a
 * channel's first subscriber and last, a presence member's first socket and last, the
 * subscription count announced, cache misses, and client events (fired by the node that received them). Webhooks and
 * live subscription counts listen here; the server passes null when nobody listens, and then
 * firing costs nothing.
 */
export interface ChannelEvents {
  occupied(app: AppState, channel: string): void;
  vacated(app: AppState, channel: string): void;
  memberAdded(app: AppState, channel: string, userId: string): void;
  memberRemoved(app: AppState, channel: string, userId: string): void;
  /** A channel's count as announced to its subscribers (throttled; apps with enableSubscriptionCount). */
  subscriptionCount(app: AppState, channel: string, count: number): void;
  /** The first subscriber of a burst that found a cache channel empty. */
  cacheMiss(app: AppState, channel: string): void;
  clientEvent(app: AppState, channel: string, event: string, data: unknown, socketId: string, userId: string | undefined): void;
}

/** One sink that forwards to every listener, or null when there is none. */
export function channelEventsOf(listeners: ChannelEvents[]): ChannelEvents | null {
  if (listeners.length === 0) return null;
  if (listeners.length === 1) return listeners[0];
  return {
    occupied: (app, channel) => listeners.forEach((l) => l.occupied(app, channel)),
    vacated: (app, channel) => listeners.forEach((l) => l.vacated(app, channel)),
    memberAdded: (app, channel, userId) => listeners.forEach((l) => l.memberAdded(app, channel, userId)),
    memberRemoved: (app, channel, userId) => listeners.forEach((l) => l.memberRemoved(app, channel, userId)),
    subscriptionCount: (app, channel, count) => listeners.forEach((l) => l.subscriptionCount(app, channel, count)),
    cacheMiss: (app, channel) => listeners.forEach((l) => l.cacheMiss(app, channel)),
    clientEvent: (app, channel, event, data, socketId, userId) => listeners.forEach((l) => l.clientEvent(app, channel, event, data, socketId, userId)),
  };
}
