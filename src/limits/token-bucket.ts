/**
 * A token bucket refilled by arithmetic on the clock, not by a timer: `rate` tokens a second,
 * holding at most `rate`. One per app and limit.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    /** Tokens per second, and the most the bucket holds. */
    readonly rate: number,
    now: number,
  ) {
    this.tokens = rate;
    this.at = now;
  }

  /**
   * Takes `cost` tokens if they are there; returns 0, or the milliseconds until they would be.
   * A cost above the bucket's size is taken from a full bucket, so it is delayed but never refused forever.
   */
  take(cost: number, now: number): number {
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.at) * this.rate) / 1000);
    this.at = now;
    const need = Math.min(cost, this.rate);
    if (this.tokens >= need) {
      this.tokens -= need;
      return 0;
    }
    return ((need - this.tokens) * 1000) / this.rate;
  }

  /** Whole tokens left, as of the last take. */
  get remaining(): number {
    return Math.floor(this.tokens);
  }
}
