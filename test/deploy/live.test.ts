// The monitoring kit against real data: a real Prometheus scrapes a pws-server carrying traffic
// of every kind (sockets, channels, presence, client events, REST calls, refusals, rate limits,
// webhooks to a receiver that works and one that fails, the Redis adapter, a Pushgateway that is
// down) plus a target that is down, loads deploy/prometheus/pws-alerts.yml, and answers every
// query of deploy/grafana/pws-server.json and every rule's expression through its HTTP API:
// each must parse and run, and return series unless listed below as expected empty, with why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dashboardPanels, RULES, rules } from '../helpers/deploy';
import { redisSkip, startRedis } from '../helpers/redis';
import { APP, connected, startServer, subscribed } from '../helpers/server';
import { freePort, missingToolSkip, startPrometheus } from '../helpers/services';
import { WebhookReceiver } from '../helpers/webhook-receiver';

const skip = missingToolSkip('prometheus', 'prometheus') || redisSkip();
const LIMITED = { id: 'app-limited', key: 'key-limited', secret: 'secret-limited' };

/** Alerting rules whose condition this traffic does not create, and why; their expressions must still run. */
const QUIET: Record<string, string> = {
  PwsEventLoopLagHigh: 'the event loop of a test server is far below 100 ms',
  PwsEventLoopLagCritical: 'the event loop of a test server is far below 500 ms',
  PwsMemoryNearThreshold: 'the test process holds a small share of memory; near the threshold it would refuse the traffic under test',
  PwsMemoryOverThreshold: 'as above',
  PwsOpenFilesNearLimit: 'a few hundred files are open, of thousands allowed',
  PwsRestServerErrors: 'the REST API answers 500 only on a bug',
  PwsRedisErrors: 'Redis stays up',
  PwsClusterOutboxDropping: 'Redis stays up, so nothing waits in the outbox',
  PwsClusterFenced: 'the node beats on time, so it is never taken for dead',
  PwsWebhookEventsDropped: 'an event is given up only after 5 minutes of retries or behind 10,000 queued ones',
};

// Grafana's variables as "All" and its rate interval, as a dashboard would send them.
function substitute(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*').replaceAll('$app_id', '.*');
}

// Metric names an expression reads (recording rules' names aside): pws_… and up.
function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/(?<![\w:"])(?:pws_[a-z0-9_]*[a-z0-9]|up)(?![\w:])/g) ?? [])];
}

test('Prometheus runs every dashboard query and every rule against a server carrying traffic', { skip, timeout: 180_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const good = await WebhookReceiver.start();
  t.after(() => good.close());
  const bad = await WebhookReceiver.start();
  bad.answer = () => 500;
  t.after(() => bad.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pws-live-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'apps.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      apps: [
        {
          ...APP,
          enableClientMessages: true,
          enableSubscriptionCount: true,
          enableWatchlistEvents: true,
          webhooks: [{ url: good.url(), event_types: ['channel_occupied', 'member_added', 'client_event'] }],
        },
        { ...LIMITED, maxBackendEventsPerSecond: 1, webhooks: [{ url: bad.url(), event_types: ['channel_occupied'] }] },
      ],
    }),
  );
  const [gatewayPort, downPort] = [await freePort(), await freePort()];
  const s = await startServer(
    {
      METRICS_ENABLED: '1',
      ADAPTER_DRIVER: 'redis',
      REDIS_URL: redis.url,
      DB_REDIS_KEY_PREFIX: `live${process.pid}`,
      METRICS_DRIVER: 'pushgateway',
      METRICS_PUSHGATEWAY_URL: `http://127.0.0.1:${gatewayPort}`,
      METRICS_PUSHGATEWAY_INTERVAL: '500',
    },
    config,
  );
  t.after(() => s.stop());
  const prometheus = await startPrometheus({ scrapeTargets: [`127.0.0.1:${s.port}`, `127.0.0.1:${downPort}`], ruleFiles: [RULES] });
  t.after(() => prometheus.stop());
  const nonEmpty = (r: unknown[]) => r.length > 0;
  // A series of the REST histogram appears with the first answer of its route and status class:
  // one call of each kind first, then a sample from before the traffic, so that rates see it grow.
  const sdk = s.sdk();
  await sdk.trigger('news', 'tick', {});
  await fetch(s.url(`/apps/${APP.id}/events`), { method: 'POST', body: '{}' });
  // The cache families too appear with their first hit and miss.
  const cacheMiss = s.client();
  await new Promise<void>((resolve) => cacheMiss.subscribe('cache-board').bind('pusher:cache_miss', () => resolve()));
  await sdk.trigger('cache-board', 'score', {});
  const cacheHit = s.client();
  await new Promise<void>((resolve) => cacheHit.subscribe('cache-board').bind('score', () => resolve()));
  await prometheus.waitForValue(`up{instance="127.0.0.1:${s.port}"} == 1`, nonEmpty, 30_000);

  // Sockets: channels, presence, a client event, a disconnect.
  const clients = [s.client({ presence: { user_id: 'u1' } }), s.client({ presence: { user_id: 'u2' } }), s.client({ presence: { user_id: 'u2' } })];
  await Promise.all(clients.map(connected));
  for (const client of clients) {
    await subscribed(client, 'news');
    await subscribed(client, 'presence-lobby');
  }
  await subscribed(clients[0], 'private-chat');
  await subscribed(clients[1], 'private-chat');
  clients[0].channel('private-chat').trigger('client-typing', {});
  const leaving = s.client();
  await connected(leaving);
  leaving.disconnect();
  // Pusher features: more cache hits, a signed-in user with a watchlist (subscription counts
  // come with the subscribes above).
  const cacheHitAgain = s.client();
  await new Promise<void>((resolve) => cacheHitAgain.subscribe('cache-board').bind('score', () => resolve()));
  const watcher = s.client({ user: { id: 'watcher', watchlist: ['u1'] } });
  await connected(watcher);
  const watching = new Promise<void>((resolve) => watcher.connection.bind('message', (m: { event: string }) => m.event === 'pusher_internal:watchlist_events' && resolve()));
  watcher.signin();
  await watching;
  // An app whose webhook receiver fails.
  const limited = s.client({ app: LIMITED });
  await connected(limited);
  await subscribed(limited, 'news');
  // REST: events, a batch, reads; an app over its rate limit (429); unsigned calls (401).
  for (let i = 0; i < 5; i++) await sdk.trigger('news', 'tick', { i });
  await sdk.triggerBatch([{ channel: 'private-chat', name: 'batch', data: '{}' }]);
  await sdk.get({ path: '/channels' });
  const overLimit = s.sdk(LIMITED);
  for (let i = 0; i < 30; i++) await overLimit.trigger('news', 'tick', { i }).catch(() => undefined);
  for (let i = 0; i < 30; i++) await fetch(s.url(`/apps/${APP.id}/events`), { method: 'POST', body: '{}' });
  // Refused connections: an unknown key.
  for (let i = 0; i < 40; i++) await (await s.raw('no-such-key')).closed;

  await prometheus.waitForValue(`up{instance="127.0.0.1:${downPort}"} == 0`, nonEmpty, 30_000);
  await prometheus.waitForValue('pws_connection_refusals_total{code="4001"} == 40', nonEmpty, 30_000);
  await prometheus.waitForValue(`pws_webhooks_failed_total{app_id="${LIMITED.id}"} > 0`, nonEmpty, 30_000);
  await prometheus.waitForValue(`pws_webhooks_sent_total{app_id="${APP.id}"} > 0`, nonEmpty, 30_000);
  await prometheus.waitForValue('pws_pushgateway_push_failures_total > 0', nonEmpty, 30_000);
  // The rules have been evaluated on that data.
  await prometheus.waitForValue('instance:pws_connection_attempts:rate5m > 0', nonEmpty, 30_000);

  const problems: string[] = [];
  const run = async (what: string, expr: string, mayBeEmpty: boolean): Promise<number | null> => {
    try {
      const result = await prometheus.query(expr);
      if (result.length === 0 && !mayBeEmpty) problems.push(`${what}: no series for ${expr}`);
      return result.length;
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
      return null;
    }
  };

  // Every query of every panel, collapsed rows included: valid and non-empty.
  let queries = 0;
  for (const panel of dashboardPanels()) {
    for (const target of panel.targets ?? []) {
      queries++;
      await run(`panel "${panel.title}" ${target.refId}`, substitute(target.expr), false);
    }
  }

  // Every rule: Prometheus evaluated it without error, and its expression answers now.
  const loaded = new Map<string, { health: string; lastError?: string }>();
  const api = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> } };
  for (const group of api.data.groups) for (const rule of group.rules) loaded.set(rule.name, rule);
  const quietNow: string[] = [];
  for (const rule of rules()) {
    const state = loaded.get(rule.name);
    if (state === undefined) problems.push(`${rule.name}: not loaded by Prometheus`);
    else if (state.health !== 'ok') problems.push(`${rule.name}: health ${state.health} ${state.lastError ?? ''}`);
    const quiet = rule.kind === 'alert' && rule.name in QUIET;
    const found = await run(`${rule.kind} ${rule.name}`, rule.expr, quiet);
    if (quiet) {
      if (found === 0) quietNow.push(rule.name);
      // What it reads exists, so it would fire when its condition comes.
      for (const name of metricNames(rule.expr)) await run(`${rule.name} reads ${name}`, `count({__name__="${name}"})`, false);
    }
  }
  for (const name of Object.keys(QUIET)) assert.ok(rules().some((r) => r.name === name), `QUIET names an unknown rule ${name}`);

  t.diagnostic(`${queries} dashboard queries and ${rules().length} rules run; expected empty and empty now: ${quietNow.join(', ')}`);
  assert.deepEqual(problems, []);
  assert.ok(queries >= 40, `${queries} queries`);
});
