import type { Broadcaster, ChannelState } from '../adapter/adapter';
import type { AppState } from '../apps';
import type { Log } from '../log';
import { subscriptionCountFrame } from '../protocol/frames';
import type { ChannelEvents } from './events';

/** Above this many subscribers a channel's count is sent at most once per THROTTLE_MS (Pusher's rule). */
export const THROTTLE_ABOVE = 100;
export const THROTTLE_MS = 5000;

// A large channel's count that changed within THROTTLE_MS of the last one sent.
interface Pending {
  sentAt: number;
  timer: NodeJS.Timeout | null;
}

/**
 * Live subscription counts (apps with enableSubscriptionCount): on each subscribe and unsubscribe
 * of a non-presence channel, the cluster-wide count goes to the channel's subscribers as
 * `pusher_internal:subscription_count` and to the subscription_count webhook. Above 100
 * subscribers at most once every 5 s while it changes; the last send after a burst reads the
 * count afresh, so subscribers always end on the true value.
 */
export class SubscriptionCounts {
  private readonly pending = new Map<AppState, Map<string, Pending>>();

  constructor(
    private readonly broadcaster: Broadcaster,
    private readonly state: ChannelState,
    private readonly events: ChannelEvents | null,
    private readonly log: Log,
    private readonly onSent: ((app: AppState) => void) | null,
  ) {}

  /** The channel's count is now `count` (this node's join or leave, decided cluster-wide). */
  changed(app: AppState, channel: string, count: number): void {
    let channels = this.pending.get(app);
    const entry = channels?.get(channel);
    const now = performance.now();
    if (entry !== undefined) {
      // Inside a throttle window: the timer sends the latest count when it ends.
      if (entry.timer !== null) return;
      if (count > THROTTLE_ABOVE && now - entry.sentAt < THROTTLE_MS) {
        entry.timer = setTimeout(() => this.flush(app, channel, entry), THROTTLE_MS - (now - entry.sentAt));
        entry.timer.unref();
        return;
      }
    }
    this.send(app, channel, count);
    if (count > THROTTLE_ABOVE) {
      if (channels === undefined) this.pending.set(app, (channels = new Map()));
      if (entry === undefined) channels.set(channel, { sentAt: now, timer: null });
      else entry.sentAt = now;
    } else if (entry !== undefined) {
      channels!.delete(channel);
    }
  }

  private flush(app: AppState, channel: string, entry: Pending): void {
    entry.timer = null;
    Promise.resolve(this.state.channel(app, channel)).then(
      (summary) => {
        const count = summary?.subscriptionCount ?? 0;
        this.send(app, channel, count);
        entry.sentAt = performance.now();
        if (count <= THROTTLE_ABOVE) this.pending.get(app)?.delete(channel);
      },
      (err) => this.log.warn(`subscription count of ${channel} not sent: ${(err as Error)?.message ?? err}`),
    );
  }

  private send(app: AppState, channel: string, count: number): void {
    this.broadcaster.publish(app, channel, subscriptionCountFrame(channel, count));
    this.events?.subscriptionCount(app, channel, count);
    this.onSent?.(app);
  }

  /** Stops the pending sends (shutdown). */
  stop(): void {
    for (const channels of this.pending.values()) for (const entry of channels.values()) if (entry.timer !== null) clearTimeout(entry.timer);
    this.pending.clear();
  }
}
