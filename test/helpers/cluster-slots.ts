// Which master of a test Redis Cluster serves a key, to freeze or watch that one.
import type { RedisClusterInstance } from './redis';

/** The port of the master serving `key`'s slot, as CLUSTER NODES says. */
export async function masterOf(cluster: RedisClusterInstance, key: string): Promise<number> {
  const slot = Number((await cluster.cli(cluster.ports[0], 'CLUSTER', 'KEYSLOT', key)).trim());
  for (const line of (await cluster.cli(cluster.ports[0], 'CLUSTER', 'NODES')).split('\n')) {
    const fields = line.trim().split(' ');
    if (!fields[2]?.includes('master')) continue;
    for (const range of fields.slice(8)) {
      const [from, to = from] = range.split('-').map(Number);
      if (slot >= from && slot <= to) return Number(fields[1].split('@')[0].split(':').pop());
    }
  }
  throw new Error(`no master serves slot ${slot}`);
}
