import type { AppState } from '../apps/app-state';
import { TokenBucket } from './token-bucket';

/** The per-app limits counted on the REST API, named as in refusals and their metric. */
export type RateLimit = 'backend_events' | 'read_requests';

/** A limiter's answer, with what the HTTP headers of a refusal need. */
export interface Verdict {
  allowed: boolean;
  /** The limit, per second. */
  limit: number;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Whole seconds until the request would be allowed (0 when it is). */
  retryAfter: number;
}

/** Counts one app's REST traffic against its limits (only for apps that set them). */
export interface RateLimiter {
  consume(app: AppState, limit: RateLimit, cost: number): Verdict | Promise<Verdict>;
}

/** The per-second rate of `limit` for `app`, or -1 when it has none. */
export function rateOf(app: AppState, limit: RateLimit): number {
  return limit === 'backend_events' ? app.config.maxBackendEventsPerSecond : app.config.maxReadRequestsPerSecond;
}

/**
 * The answer for a limit of 0: nothing is admitted, as a client-event limit of 0 admits no event
 * (a bucket of size 0 would let everything through, taking min(cost, 0) = 0 tokens). Retry-After
 * only paces the retries of a client that honours it.
 */
export const NOTHING_ADMITTED: Verdict = Object.freeze({ allowed: false, limit: 0, remaining: 0, retryAfter: 60 });

/** Token buckets in this process: the limits hold per node. */
export class LocalRateLimiter implements RateLimiter {
  // Made at an app's first counted request, and made again when its rate changed; a removed
  // app's buckets go with it.
  private readonly buckets = new WeakMap<AppState, Record<RateLimit, TokenBucket | null>>();

  consume(app: AppState, limit: RateLimit, cost: number): Verdict {
    const rate = rateOf(app, limit);
    let buckets = this.buckets.get(app);
    if (buckets === undefined) this.buckets.set(app, (buckets = { backend_events: null, read_requests: null }));
    let bucket = buckets[limit];
    if (bucket === null || bucket.rate !== rate) bucket = buckets[limit] = new TokenBucket(rate, performance.now());
    if (rate === 0) return NOTHING_ADMITTED;
    const waitMs = bucket.take(cost, performance.now());
    return { allowed: waitMs === 0, limit: bucket.rate, remaining: bucket.remaining, retryAfter: Math.ceil(waitMs / 1000) };
  }
}
