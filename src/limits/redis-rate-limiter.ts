import type { AppState } from '../apps/app-state';
import type { Keys } from '../cluster/keys';
import type { RedisLink } from '../cluster/redis-link';
import { script } from '../cluster/scripts';
import type { Log } from '../log';
import { NOTHING_ADMITTED, rateOf, type LocalRateLimiter, type RateLimit, type RateLimiter, type Verdict } from './rate-limiter';

/**
 * KEYS bucket. ARGV rate, cost. The same token bucket as TokenBucket, on Redis's clock so every
 * node agrees. Returns {wait ms, tokens left} as strings (Lua would truncate the fractions).
 */
const TAKE = script(`
local rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1]) or rate
local at = tonumber(b[2]) or now
-- Redis's clock can step back (an NTP step, a failover to a replica whose clock is behind): no
-- refill and no debt for the step, and the refill goes on from the clock as it is now.
if now < at then at = now end
tokens = math.min(rate, tokens + (now - at) * rate / 1000)
local need = math.min(cost, rate)
local wait = 0
if tokens >= need then tokens = tokens - need else wait = (need - tokens) * 1000 / rate end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
return {tostring(wait), tostring(tokens)}
`);

/**
 * The app's limits across every node, on the cluster's Redis. When Redis cannot answer, each
 * node falls back to its own buckets (fail open: a Redis outage must not stop the API), says so
 * once, and says again when Redis answers.
 */
export class RedisRateLimiter implements RateLimiter {
  private failing = false;

  constructor(
    private readonly link: RedisLink,
    private readonly keys: Keys,
    private readonly fallback: LocalRateLimiter,
    private readonly log: Log,
  ) {}

  async consume(app: AppState, limit: RateLimit, cost: number): Promise<Verdict> {
    const rate = rateOf(app, limit);
    if (rate === 0) return NOTHING_ADMITTED;
    let reply: string[];
    try {
      reply = (await this.link.eval(TAKE, [this.keys.rateLimit(app, limit)], [String(rate), String(cost)])) as string[];
    } catch (err) {
      if (!this.failing) this.log.warn(`rate limits: Redis did not answer (${(err as Error)?.message ?? err}); counting on this node until it does`);
      this.failing = true;
      return this.fallback.consume(app, limit, cost);
    }
    if (this.failing) this.log.info('rate limits: counting on Redis again');
    this.failing = false;
    const waitMs = Number(reply[0]);
    return { allowed: waitMs === 0, limit: rate, remaining: Math.floor(Number(reply[1])), retryAfter: Math.ceil(waitMs / 1000) };
  }
}
