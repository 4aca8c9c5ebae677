/** Milliseconds per unit of `clock()`. */
export const CLOCK_UNIT_MS = 10;

/**
 * A coarse monotonic clock in 10 ms units since process start (never 0). Readings stay V8 small
 * integers for about 124 days, so a timestamp kept per socket costs no boxed heap number.
 */
export function clock(): number {
  return Math.floor(performance.now() / CLOCK_UNIT_MS) + 1;
}

/** Converts a duration in milliseconds to clock units, rounding up. */
export function clockUnits(ms: number): number {
  return Math.ceil(ms / CLOCK_UNIT_MS);
}
