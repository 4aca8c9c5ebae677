import type { AppState, Apps } from '../apps';
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
  private readonly buckets = new Map<AppState, Record<RateLimit, TokenBucket | null>>();

  constructor(apps: Apps) {
    const now = performance.now();
    for (const app of apps.all()) {
      const bucket = (limit: RateLimit) => (rateOf(app, limit) >= 0 ? new TokenBucket(rateOf(app, limit), now) : null);
      this.buckets.set(app, { backend_events: bucket('backend_events'), read_requests: bucket('read_requests') });
    }
  }

  consume(app: AppState, limit: RateLimit, cost: number): Verdict {
    const bucket = this.buckets.get(app)![limit]!;
    if (bucket.rate === 0) return NOTHING_ADMITTED;
    const waitMs = bucket.take(cost, performance.now());
    return { allowed: waitMs === 0, limit: bucket.rate, remaining: bucket.remaining, retryAfter: Math.ceil(waitMs / 1000) };
  }
}
