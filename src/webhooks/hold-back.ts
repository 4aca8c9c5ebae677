/**
 * How long `channel_vacated` and `member_removed` wait before they go out (Pusher holds them
 * up to 3 s): a page reload leaves and comes back within it, and then neither event is sent.
 */
export const HOLD_BACK_MS = 3000;

/**
 * Values held for a fixed time unless cancelled first, then released in the order they were
 * held. Every hold lasts equally long, so the oldest expires first and one timer serves all.
 */
export class HoldBack<T> {
  // Insertion order is expiry order.
  private readonly held = new Map<string, { value: T; until: number }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly holdMs: number,
    private readonly release: (value: T) => void,
  ) {}

  /** Holds `value` under `key`; a value already held under it is replaced (and its time restarts). */
  hold(key: string, value: T): void {
    this.held.delete(key);
    this.held.set(key, { value, until: performance.now() + this.holdMs });
    this.arm();
  }

  /** Drops the value held under `key`; false when there was none. */
  cancel(key: string): boolean {
    return this.held.delete(key);
  }

  /** Releases everything now, in order (shutdown: nothing would be left to release them later). */
  releaseAll(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const values = [...this.held.values()];
    this.held.clear();
    for (const { value } of values) this.release(value);
  }

  private arm(): void {
    if (this.timer !== null) return;
    const first = this.held.values().next();
    if (first.done) return;
    this.timer = setTimeout(() => this.expire(), Math.max(0, first.value.until - performance.now()));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = null;
    const now = performance.now();
    for (const [key, entry] of this.held) {
      if (entry.until > now) break;
      this.held.delete(key);
      this.release(entry.value);
    }
    this.arm();
  }
}
