// The console across a cluster (ADAPTER_DRIVER=redis, a real Redis): the node serving it shows
// another node's connections in its figures and that node's events in its log, tagged by node;
// and nothing is marked or subscribed in Redis for the console until one is open.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { connected, eventually, startServer, subscribed, type TestServer } from '../helpers/server';
import { redisSkip, startRedis, type RedisInstance } from '../helpers/redis';
import { chromiumSkip, launchChromium, logIn, screenshot, watchedPage } from '../helpers/browser';

const PASSWORD = 'correct horse battery staple';
const skip = redisSkip() || chromiumSkip();

describe('the console on two nodes of one Redis', { skip }, () => {
  let browser: Browser;
  let redis: RedisInstance;
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    browser = await launchChromium();
    redis = await startRedis();
    const env = { ADAPTER_DRIVER: 'redis', REDIS_URL: redis.url, ADAPTER_NODE_TIMEOUT: '4000', CONSOLE_ENABLED: 'true', CONSOLE_PASSWORD: PASSWORD, METRICS_ENABLED: 'true' };
    a = await startServer(env);
    b = await startServer(env);
  });

  after(async () => {
    await browser?.close();
    await a?.stop();
    await b?.stop();
    await redis?.stop();
  });

  test("the console on one node shows the other node's connection in its figures and its events in the log", async () => {
    // No console open anywhere: no key, no subscriber.
    assert.equal((await redis.cli('EXISTS', 'pws:console:open')).trim(), '0');
    assert.match(await redis.cli('PUBSUB', 'SHARDNUMSUB', 'pws:console'), /pws:console\s+0/);

    const { page, errors } = await watchedPage(browser);
    await logIn(page, a.url(''), PASSWORD);
    await eventually(async () => (await page.getByTestId('stream-status').textContent()) === 'live', 3000, 'the stream');
    await eventually(async () => (await redis.cli('EXISTS', 'pws:console:open')).trim() === '1', 3000, 'the open-console key');
    assert.match(await redis.cli('PUBSUB', 'SHARDNUMSUB', 'pws:console'), /pws:console\s+1/);
    // The other node looks at the key every 2 s.
    await new Promise((r) => setTimeout(r, 2500));

    const onB = b.client();
    const socketId = await connected(onB);
    await subscribed(onB, 'presence-room');
    await b.sdk().trigger('presence-room', 'hello', { from: 'b' });
    const rows = page.getByTestId('event-log');
    const connection = rows.locator('li[data-event-type="connection"]', { hasText: socketId });
    await connection.waitFor({ timeout: 5000 });
    assert.match((await connection.textContent())!, /\[[^\]]+-\d+-[0-9a-f]{8}\]/, 'tagged with its node');
    await rows.locator('li[data-event-type="subscribed"]', { hasText: 'presence-room' }).waitFor({ timeout: 5000 });
    await rows.locator('li[data-event-type="api_message"]', { hasText: 'event=hello' }).waitFor({ timeout: 5000 });
    // Connections reach the other nodes with the heartbeat (every second here); channels at once.
    await page.getByTestId('stat-connections').filter({ hasText: /^1$/ }).waitFor({ timeout: 5000 });
    await page.getByTestId('channel-list').locator('tr[data-channel="presence-room"]').waitFor({ timeout: 5000 });
    assert.equal(await page.getByTestId('stat-members').textContent(), '1');
    await screenshot(page, 'console-cluster');
    onB.disconnect();
    await rows.locator('li[data-event-type="disconnection"]', { hasText: socketId }).waitFor({ timeout: 5000 });
    assert.deepEqual(errors, []);
    await page.context().close();
  });
});
