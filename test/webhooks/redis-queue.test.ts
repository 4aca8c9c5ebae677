// A node's webhook queue in a real Redis, bounded like its stream in memory: entries whose
// removal never reached Redis are trimmed, by age and by length, counted and logged.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Apps } from '../../src/apps/apps';
import { Keys } from '../../src/cluster/keys';
import { connectRedis, type RedisLink } from '../../src/cluster/redis-link';
import { Log } from '../../src/log';
import { PwsMetrics } from '../../src/metrics/pws-metrics';
import { loadOptions } from '../../src/options';
import { RedisWebhookQueues } from '../../src/webhooks/redis-queue';
import { clientEvent } from '../../src/webhooks/webhook-events';
import { WebhookMetrics } from '../../src/webhooks/webhook-metrics';
import { redisSkip, startRedis, type RedisInstance } from '../helpers/redis';
import { eventually } from '../helpers/server';

const skip = redisSkip();

/** A Log that keeps its warnings. */
class RecordingLog extends Log {
  readonly warnings: string[] = [];
  constructor() {
    super(false, true);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
}

describe('a webhook queue in Redis', { skip }, () => {
  let redis: RedisInstance;
  let link: RedisLink;
  before(async () => {
    redis = await startRedis();
    link = connectRedis(loadOptions({ REDIS_URL: redis.url }), new Log(false, true), { reconnected() {}, error() {} });
    assert.ok(await link.connected(5000));
  });
  after(async () => {
    await link?.close();
    await redis?.stop();
  });

  test('entries beyond the length bound or older than the horizon are trimmed, counted by reason and logged', async () => {
    const options = loadOptions({});
    const apps = new Apps(options.apps);
    const pws = new PwsMetrics({ prefix: 'pws_', port: 0 });
    pws.addApps(apps);
    pws.stop();
    const metrics = new WebhookMetrics(pws, apps);
    const app = apps.findById('app-id')!;
    const log = new RecordingLog();
    const keys = new Keys('q');
    const queues = new RedisWebhookQueues({ link, keys, node: 'n1', nodeTimeoutMs: 60_000, timings: { queueLimit: 3, retryForMs: 60_000 }, log });
    queues.start(metrics);
    const journal = queues.journal(app, 'http://127.0.0.1:1/hook');
    const event = (i: number) => clientEvent('private-c', 'client-n', { i }, '1.1', undefined);
    const key = (await redis.cli('--scan', '--pattern', 'q:*')).trim();
    assert.equal(key, '', 'nothing in Redis before the first event');

    const t = Date.now();
    for (let i = 0; i < 5; i++) journal.append(event(i), t + i);
    await queues.handOver();
    const queue = (await redis.cli('--scan', '--pattern', 'q:{app-id}:webhooks:n1:*')).trim();
    assert.equal(await redis.cli('XLEN', queue), '3\n');
    assert.equal(metrics.eventsDropped.get(metrics.dropSlot(app, 'full')), 2);
    assert.deepEqual(log.warnings, ['webhooks: app app-id: Redis dropped 1 queued event beyond the bound of 3', 'webhooks: app app-id: Redis dropped 1 queued event beyond the bound of 3']);

    // An hour later: the three left are past the horizon.
    journal.append(event(5), t + 3_600_000);
    await eventually(() => metrics.eventsDropped.get(metrics.dropSlot(app, 'expired')) === 3, 5000, 'three expired');
    assert.equal(await redis.cli('XLEN', queue), '1\n');
    assert.equal(log.warnings[2], 'webhooks: app app-id: Redis dropped 3 queued events older than 60 s');
    assert.equal(await redis.cli('HGET', 'q:{app-id}:webhooks', queue), 'n1\n', 'the queue is listed under its node');
  });
});
