/** Failed logins allowed per client address in one window, before it must wait. */
const MAX_FAILURES = 5;
const WINDOW_MS = 60_000;
// Bounds the memory an attacker spraying addresses can take; past it the oldest entry goes.
const MAX_TRACKED = 10_000;

interface Window {
  failures: number;
  endsAt: number;
}

/**
 * Failed console logins per client address: after MAX_FAILURES in a minute, 429 until it ends.
 * An attempt counts as failed from its arrival until its password is found right, so that
 * attempts sent side by side cannot all pass the check before any is counted.
 */
export class LoginLimiter {
  private readonly windows = new Map<string, Window>();

  /** Seconds the address must wait before trying again, or 0 when it may try now. */
  retryAfter(address: string, now: number): number {
    const window = this.windows.get(address);
    if (window === undefined || window.endsAt <= now || window.failures < MAX_FAILURES) return 0;
    return Math.ceil((window.endsAt - now) / 1000);
  }

  attempted(address: string, now: number): void {
    let window = this.windows.get(address);
    if (window === undefined || window.endsAt <= now) {
      this.windows.delete(address);
      if (this.windows.size >= MAX_TRACKED) this.windows.delete(this.windows.keys().next().value!);
      this.windows.set(address, (window = { failures: 0, endsAt: now + WINDOW_MS }));
    }
    window.failures++;
  }

  succeeded(address: string): void {
    this.windows.delete(address);
  }
}
