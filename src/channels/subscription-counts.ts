import type { Broadcaster, ChannelState } from '../adapter/adapter';
import type { AppState } from '../apps/app-state';
import type { Log } from '../log';
import { subscriptionCountFrame } from '../protocol/frames';
import type { ChannelEvents } from './events';

/** Above this many subscribers a channel's count is sent at most once per THROTTLE_MS (Pusher's rule). */
export const THROTTLE_ABOVE = 100;
export const THROTTLE_MS = 5000;

// A large channel's throttle window, open for THROTTLE_MS after a count was sent; the entry
// lives only as long as the window, so channels whose later changes all happen on other nodes
// leave nothing behind.
interface Window {
  timer: NodeJS.Timeout;
  /** A change came during the window: its end sends the count read afresh. */
  changed: boolean;
}

/**
 * Live subscription counts (apps with enableSubscriptionCount): on each subscribe and unsubscribe
 * of a non-presence channel, the cluster-wide count goes to the channel's subscribers as
 * `pusher_internal:subscription_count` and to the subscription_count webhook. Above 100
 * subscribers at most once every 5 s while it changes; the last send after a burst reads the
 * count afresh. Each count carries the version of the state it was read from, and every node
 * delivers only a count newer than the last it delivered, so subscribers end on the true value
 * even when two nodes send counts at once.
 */
export class SubscriptionCounts {
  private readonly windows = new Map<AppState, Map<string, Window>>();

  constructor(
    private readonly broadcaster: Broadcaster,
    private readonly state: ChannelState,
    private readonly events: ChannelEvents | null,
    private readonly log: Log,
    private readonly onSent: ((app: AppState) => void) | null,
  ) {}

  /** The channel's count is now `count`, as of `version` (this node's join or leave, decided cluster-wide). */
  changed(app: AppState, channel: string, count: number, version: number): void {
    const window = this.windows.get(app)?.get(channel);
    if (window !== undefined) {
      // A large channel inside its window: the window's end sends the latest count.
      if (count > THROTTLE_ABOVE) {
        window.changed = true;
        return;
      }
      this.close(app, channel, window);
    }
    this.send(app, channel, count, version);
    if (count > THROTTLE_ABOVE) this.open(app, channel);
  }

  private open(app: AppState, channel: string): void {
    let channels = this.windows.get(app);
    if (channels === undefined) this.windows.set(app, (channels = new Map()));
    const window: Window = { timer: setTimeout(() => this.ended(app, channel, window), THROTTLE_MS), changed: false };
    window.timer.unref();
    channels.set(channel, window);
  }

  private close(app: AppState, channel: string, window: Window): void {
    clearTimeout(window.timer);
    this.windows.get(app)?.delete(channel);
  }

  private ended(app: AppState, channel: string, window: Window): void {
    this.close(app, channel, window);
    if (!window.changed) return;
    Promise.resolve(this.state.channel(app, channel)).then(
      (summary) => {
        // A change that came meanwhile has sent its own count (and perhaps opened a window).
        if (this.windows.get(app)?.has(channel)) return;
        const count = summary?.subscriptionCount ?? 0;
        this.send(app, channel, count, summary?.version ?? 0);
        if (count > THROTTLE_ABOVE) this.open(app, channel);
      },
      (err) => this.log.warn(`subscription count of ${channel} not sent: ${(err as Error)?.message ?? err}`),
    );
  }

  private send(app: AppState, channel: string, count: number, version: number): void {
    this.broadcaster.publishEdge(app, channel, '', version, subscriptionCountFrame(channel, count));
    this.events?.subscriptionCount(app, channel, count);
    this.onSent?.(app);
  }

  /** Stops the pending sends (shutdown). */
  stop(): void {
    for (const channels of this.windows.values()) for (const window of channels.values()) clearTimeout(window.timer);
    this.windows.clear();
  }
}
