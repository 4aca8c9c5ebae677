import type { Log } from '../log';
import type { RedisLink } from './redis-link';

/**
 * Warns, once at start-up, when Redis may evict the cluster's keys. Under `volatile-*` the keys
 * with a TTL go first, and those include the heartbeats: survivors would reap live nodes. Under
 * `allkeys-*` any state hash can vanish without a reconnection, so nothing rewrites it. Only
 * `noeviction` (writes fail under memory pressure, which the nodes survive like a Redis outage)
 * keeps the shared state exact.
 *
 * A warning, not a refusal to start: the policy can be changed at run time, so a check at
 * start-up proves nothing for later, and a managed Redis whose default is `volatile-lru` may
 * never be under memory pressure. Redis may refuse CONFIG (managed services, ACLs): then
 * nothing is said. On a Redis Cluster this asks the master of `key`.
 */
export async function warnOfEviction(link: RedisLink, key: string, log: Log): Promise<void> {
  let reply: unknown;
  try {
    reply = await link.command(key, ['CONFIG', 'GET', 'maxmemory-policy']);
  } catch (err) {
    if (log.debugEnabled) log.debug(`redis: maxmemory-policy not readable (${(err as Error)?.message ?? err})`);
    return;
  }
  // [name, value] in RESP2, a map (an object here) in RESP3.
  const policy = String(Array.isArray(reply) ? reply[1] : (reply as Record<string, unknown>)['maxmemory-policy']);
  if (policy === 'noeviction') return;
  log.warn(`redis: maxmemory-policy is ${policy}; set it to noeviction: under memory pressure Redis would evict ${policy.startsWith('volatile') ? 'heartbeat keys, and live nodes would be reaped' : 'the cluster\'s shared state'} (see docs/scaling.md)`);
}
