// Event-loop delay statistics that read the same for every reader. prom-client resets its
// monitor on each scrape, so with two Prometheus servers (an HA pair) or a Pushgateway push
// beside a scrape, each reader sees only the time since the other one read. Here a timer
// records each interval it measures into the current of several fixed windows, and the
// statistics over all of them are computed when a window closes: a render only reads them.
// Node's own monitor cannot do this, because its histogram cannot be merged into another.
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** How the delay is sampled and over how long it is summed up. */
export interface EventLoopDelayOptions {
  /** Sampling period, as monitorEventLoopDelay's `resolution`. */
  resolutionMs: number;
  /** Length of one window; the statistics are recomputed each time one closes. */
  windowMs: number;
  /** Windows kept: the statistics cover the last `windows × windowMs`. */
  windows: number;
}

// Intervals are recorded in microseconds, up to an hour; two significant digits keep each
// histogram near 25 KB, where Node's default (three digits, up to 2^53) takes 440 KB.
const HIGHEST_US = 3_600_000_000;

/** The event-loop delay over a sliding span, in seconds, refreshed when a window closes. */
export class EventLoopDelay {
  /**
   * min, max, mean, stddev, p50, p90, p99 over the windows kept, in seconds; null until a
   * window has closed with a sample in it.
   */
  stats: readonly number[] | null = null;

  private readonly windows: RecordableHistogram[];
  private readonly merged: RecordableHistogram;
  private readonly timer: NodeJS.Timeout;
  private current = 0;
  private last = performance.now();
  private closesAt: number;

  constructor(private readonly options: EventLoopDelayOptions) {
    const histogram = () => createHistogram({ lowest: 1, highest: HIGHEST_US, figures: 2 });
    this.windows = Array.from({ length: options.windows }, histogram);
    this.merged = histogram();
    this.closesAt = this.last + options.windowMs;
    this.timer = setInterval(() => this.sample(), options.resolutionMs);
    // Sampling must not keep the process alive.
    this.timer.unref();
  }

  /** Stops sampling; the last statistics stay. */
  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): void {
    const now = performance.now();
    // The whole interval since the previous tick, resolution included, as monitorEventLoopDelay
    // records it: an idle loop reads about the resolution, a blocked one the time it was blocked.
    const us = Math.min(HIGHEST_US, Math.max(1, Math.round((now - this.last) * 1000)));
    this.windows[this.current].record(us);
    this.last = now;
    if (now >= this.closesAt) this.close(now);
  }

  // Sums up every window, the one closing included, then reuses the oldest as the next one.
  private close(now: number): void {
    const merged = this.merged;
    merged.reset();
    for (const window of this.windows) merged.add(window);
    if (merged.count > 0) {
      this.stats = [merged.min, merged.max, merged.mean, merged.stddev, merged.percentile(50), merged.percentile(90), merged.percentile(99)].map(
        (us) => us / 1e6,
      );
    }
    this.current = (this.current + 1) % this.windows.length;
    this.windows[this.current].reset();
    this.closesAt = now + this.options.windowMs;
  }
}
