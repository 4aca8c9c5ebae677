import type { AppState } from '../apps/app-state';
import { CACHE_TTL_MS, MISS_BURST_MS, type CacheStore, type Cached } from '../adapter/cache-store';
import type { Log } from '../log';
import type { ClusterMetrics } from './cluster-metrics';
import type { Keys } from './keys';
import type { RedisLink } from './redis-link';
import { script } from './scripts';

/** KEYS cache, miss marker. ARGV frame, ttl ms. A new event also ends the channel's miss burst. */
const SET = script(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
`);

/** KEYS cache. Returns {frame, ms left} or {}. */
const GET = script(`
local frame = redis.call('GET', KEYS[1])
if not frame then return {} end
return {frame, redis.call('PTTL', KEYS[1])}
`);

/** The cache channels' last events in Redis, shared by every node, expiring with Redis's TTL. */
export class RedisCacheStore implements CacheStore {
  constructor(
    private readonly link: RedisLink,
    private readonly keys: Keys,
    private readonly metrics: ClusterMetrics | null,
    private readonly log: Log,
  ) {}

  async set(app: AppState, channel: string, frame: string): Promise<void> {
    try {
      await this.link.eval(SET, [this.keys.cache(app, channel), this.keys.cacheMiss(app, channel)], [frame, String(CACHE_TTL_MS)]);
    } catch (err) {
      this.metrics?.redisErrors.add(0, 1);
      this.log.warn(`cache of ${channel} not kept: ${(err as Error)?.message ?? err}`);
    }
  }

  async get(app: AppState, channel: string): Promise<Cached | null> {
    const reply = (await this.link.eval(GET, [this.keys.cache(app, channel)], [])) as unknown[];
    return reply.length === 0 ? null : { frame: String(reply[0]), ttlSeconds: Math.ceil(Number(reply[1]) / 1000) };
  }

  async missed(app: AppState, channel: string): Promise<boolean> {
    const key = this.keys.cacheMiss(app, channel);
    return (await this.link.command(key, ['SET', key, '1', 'NX', 'PX', String(MISS_BURST_MS)])) !== null;
  }
}
