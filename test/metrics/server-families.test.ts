// The families an operator's dashboard and alerts read, beyond the ten per-app ones: the build,
// the memory threshold, channels and presence members per app, fan-out, connections refused and
// closed by code, and REST request durations. Expected values come from what real clients did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { scrape, sampleValue, type Exposition } from '../helpers/exposition';
import { loaded } from '../../src/uws';
import { APP, connected, eventually, startServer, subscribed, type TestServer } from '../helpers/server';

const APP_TWO = { id: 'app-two', key: 'key-two', secret: 'secret-two', enableClientMessages: true };
const APP_CLOSED = { id: 'app-closed', key: 'key-closed', secret: 'secret-closed', enabled: false };
const APP_SMALL = { id: 'app-small', key: 'key-small', secret: 'secret-small', maxConnections: 1 };

function configFile(t: { after(fn: () => void): void }, apps: object[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pws-server-families-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ apps }));
  return file;
}

/** Every series of `family` as `labels → value`, labels written `k=v,…` in body order. */
function series(exposition: Exposition, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of exposition.samples) {
    if (s.name === name) out[Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(',')] = s.value;
  }
  return out;
}

/** The codes of `family` ({code} series) that are not 0. */
async function nonZeroCodes(s: TestServer, family: string): Promise<Record<string, number>> {
  const all = series(await scrape(s.url('/metrics')), family);
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== 0));
}

test('build_info carries the versions of pws-server, Node.js and uWebSockets.js; the memory threshold is in bytes', async (t) => {
  const s = await startServer({ METRICS_ENABLED: '1', HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD: '50' });
  t.after(() => s.stop());
  const exposition = await scrape(s.url('/metrics'));
  const version = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')).version;
  const uws = loaded.build.version;
  assert.deepEqual(series(exposition, 'pws_build_info'), { [`version=${version},nodejs_version=${process.version},uws_version=${uws}`]: 1 });
  assert.equal(exposition.families.get('pws_build_info')!.type, 'gauge');
  assert.equal(sampleValue(exposition, 'pws_memory_threshold_bytes'), Math.round(os.totalmem() / 2));
});

test('channels, subscriptions and presence members per app follow pusher-js clients up and down', async (t) => {
  const s = await startServer({ METRICS_ENABLED: '1' }, configFile(t, [APP, APP_TWO]));
  t.after(() => s.stop());
  const gauges = async (appId: string) => {
    const exposition = await scrape(s.url('/metrics'));
    return ['pws_channels', 'pws_channel_subscriptions', 'pws_presence_members'].map((name) => sampleValue(exposition, name, { app_id: appId }));
  };
  assert.deepEqual(await gauges(APP.id), [0, 0, 0]);

  const [a, b, c] = [s.client({ presence: { user_id: 'ua' } }), s.client({ presence: { user_id: 'ub' } }), s.client({ presence: { user_id: 'ua' } })];
  await Promise.all([a, b, c].map(connected));
  for (const client of [a, b, c]) await subscribed(client, 'news');
  await subscribed(a, 'private-room');
  // Two users in the lobby, one of them with two connections: two members, three subscriptions.
  for (const client of [a, b, c]) await subscribed(client, 'presence-lobby');
  await subscribed(b, 'presence-other');
  const other = s.client({ app: APP_TWO });
  await connected(other);
  await subscribed(other, 'news');

  assert.deepEqual(await gauges(APP.id), [4, 8, 3]);
  assert.deepEqual(await gauges(APP_TWO.id), [1, 1, 0]);

  a.unsubscribe('presence-lobby');
  await eventually(async () => (await gauges(APP.id))[1] === 7, 5000, 'one subscription fewer');
  assert.deepEqual(await gauges(APP.id), [4, 7, 3]);
  b.disconnect();
  await eventually(async () => (await gauges(APP.id))[1] === 4, 5000, "b's three subscriptions gone");
  assert.deepEqual(await gauges(APP.id), [3, 4, 1]);
  a.disconnect();
  c.disconnect();
  await eventually(async () => (await gauges(APP.id))[0] === 0, 5000, 'every channel empty');
  assert.deepEqual(await gauges(APP.id), [0, 0, 0]);
  assert.deepEqual(await gauges(APP_TWO.id), [1, 1, 0]);
});

test('fan-out: each channel message counts once, each copy handed to a subscriber once', async (t) => {
  const s = await startServer({ METRICS_ENABLED: '1' }, configFile(t, [APP, APP_TWO]));
  t.after(() => s.stop());
  const counts = async (appId: string) => {
    const exposition = await scrape(s.url('/metrics'));
    return [sampleValue(exposition, 'pws_channel_messages_total', { app_id: appId }), sampleValue(exposition, 'pws_channel_deliveries_total', { app_id: appId })];
  };
  const raws = await Promise.all([s.raw(APP_TWO.key), s.raw(APP_TWO.key), s.raw(APP_TWO.key)]);
  const ids = await Promise.all(raws.map((raw) => raw.socketId()));
  const sdk = s.sdk(APP_TWO);
  for (const [i, raw] of raws.entries()) {
    const auth = sdk.authorizeChannel(ids[i], 'private-chat');
    await raw.request({ event: 'pusher:subscribe', data: { channel: 'private-chat', auth: auth.auth } }, (f) => f.event === 'pusher_internal:subscription_succeeded');
  }
  assert.deepEqual(await counts(APP_TWO.id), [0, 0]);

  await sdk.trigger('private-chat', 'to-all', {});
  await Promise.all(raws.map((raw) => raw.next((f) => f.event === 'to-all')));
  assert.deepEqual(await counts(APP_TWO.id), [1, 3]);
  await sdk.trigger('private-chat', 'not-to-0', {}, { socket_id: ids[0] });
  // A client event reaches the others only.
  raws[1].send({ event: 'client-typing', channel: 'private-chat', data: {} });
  await Promise.all([raws[0], raws[2]].map((raw) => raw.next((f) => f.event === 'client-typing')));
  await raws[2].next((f) => f.event === 'not-to-0');
  // A message to a channel nobody listens to is still a message, delivered to no one.
  await sdk.trigger('empty', 'void', {});
  assert.deepEqual(await counts(APP_TWO.id), [4, 7]);
  assert.deepEqual(await counts(APP.id), [0, 0]);
});

test('refused connections count by their close code, whatever refused them', async (t) => {
  const s = await startServer({ METRICS_ENABLED: '1', SHUTDOWN_GRACE_PERIOD: '2000' }, configFile(t, [APP, APP_CLOSED, APP_SMALL]));
  let stopped: Promise<void> | null = null;
  t.after(() => stopped ?? s.stop());
  const refusedWith = async (key: string, query?: string) => (await (await s.raw(key, query)).closed).code;

  assert.deepEqual(await nonZeroCodes(s, 'pws_connection_refusals_total'), {});
  assert.equal(await refusedWith('no-such-key'), 4001);
  assert.equal(await refusedWith('no-such-key'), 4001);
  assert.equal(await refusedWith(APP_CLOSED.key), 4003);
  await (await s.raw(APP_SMALL.key)).socketId();
  assert.equal(await refusedWith(APP_SMALL.key), 4004);
  assert.equal(await refusedWith(APP.key, 'protocol=3'), 4007);
  assert.deepEqual(await nonZeroCodes(s, 'pws_connection_refusals_total'), { 'code=4001': 2, 'code=4003': 1, 'code=4004': 1, 'code=4007': 1 });
  // Every code has its series from the start, so a rate sees the first refusal too.
  assert.deepEqual(Object.keys(series(await scrape(s.url('/metrics')), 'pws_connection_refusals_total')), ['code=4001', 'code=4003', 'code=4004', 'code=4007', 'code=4100', 'code=4200']);

  // Shutting down: new connections get 4200 while /metrics still answers.
  stopped = s.server.stop();
  assert.equal(await refusedWith(APP.key), 4200);
  assert.equal((await nonZeroCodes(s, 'pws_connection_refusals_total'))['code=4200'], 1);
  await stopped;

  const full = await startServer({ METRICS_ENABLED: '1', HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD: '0.001' });
  t.after(() => full.stop());
  assert.equal(await (await full.raw()).closed.then((c) => c.code), 4100);
  assert.deepEqual(await nonZeroCodes(full, 'pws_connection_refusals_total'), { 'code=4100': 1 });
  // Refused connections are no connections: nothing else counted them.
  assert.deepEqual(await nonZeroCodes(full, 'pws_connection_closes_total'), {});
});

test('accepted connections count by close code: the client\'s, the network\'s and the server\'s; unusual client codes as other', async (t) => {
  const s = await startServer({ METRICS_ENABLED: '1', WS_MAX_MESSAGE_SIZE: '1', ACTIVITY_TIMEOUT: '1', PONG_TIMEOUT: '200', SHUTDOWN_GRACE_PERIOD: '0' });
  let stopped = false;
  t.after(() => (stopped ? undefined : s.stop()));
  const open = async () => {
    const raw = await s.raw();
    await raw.socketId();
    return raw;
  };
  const closes = async (n: number) => {
    await eventually(async () => Object.values(await nonZeroCodes(s, 'pws_connection_closes_total')).reduce((a, b) => a + b, 0) === n, 5000, `${n} closes`);
    return nonZeroCodes(s, 'pws_connection_closes_total');
  };

  for (const code of [1000, 1001, 4321]) (await open()).ws.close(code);
  (await open()).ws.close();
  (await open()).ws.terminate();
  const large = await open();
  large.send('x'.repeat(1500));
  assert.equal((await large.closed).code, 1009);
  // Signed in, then terminated through the REST API: 4009.
  const user = await open();
  const id = await user.socketId();
  await user.request({ event: 'pusher:signin', data: s.sdk().authenticateUser(id, { id: 'u1' }) }, (f) => f.event === 'pusher:signin_success');
  await s.sdk().terminateUserConnections('u1');
  assert.equal((await user.closed).code, 4009);
  // Silent past the activity timeout and the pong timeout: 4201.
  const silent = await s.raw();
  assert.equal((await silent.closed).code, 4201);
  assert.deepEqual(await closes(8), { 'code=1000': 1, 'code=1001': 1, 'code=1005': 1, 'code=1006': 1, 'code=1009': 1, 'code=4009': 1, 'code=4201': 1, 'code=other': 1 });

  // Shutdown tells the sockets still open to reconnect elsewhere: 4200, each counted.
  const last = await Promise.all([s.raw(), s.raw()]);
  await Promise.all(last.map((raw) => raw.socketId()));
  const metrics = s.server.metrics!;
  stopped = true;
  await s.stop();
  assert.match(metrics.render(), /\npws_connection_closes_total\{code="4200"\} 2\n/);
});

test('REST request durations by route pattern and status class, every answer once', async (t) => {
  const s = await startServer({ METRICS_ENABLED: '1' });
  t.after(() => s.stop());
  const sdk = s.sdk();
  await sdk.trigger('news', 'a', {});
  await sdk.trigger('news', 'b', {});
  await sdk.triggerBatch([{ channel: 'news', name: 'c', data: '{}' }]);
  assert.equal((await sdk.get({ path: '/channels' })).status, 200);
  assert.equal((await sdk.get({ path: '/channels/news' })).status, 200);
  await assert.rejects(sdk.get({ path: '/channels/news/users' }), (err: { status?: number }) => err.status === 400);
  await sdk.terminateUserConnections('nobody');
  // Unsigned, the wrong method, an unknown app, a malformed app id: client errors of the events route.
  const post = (p: string, method = 'POST') => fetch(s.url(p), { method, body: method === 'POST' ? '{}' : undefined }).then((r) => r.status);
  assert.deepEqual(
    [await post('/apps/app-id/events'), await post('/apps/app-id/events', 'GET'), await post('/apps/nope/events'), await post('/apps/%E0%A4%A/events')],
    [401, 405, 404, 400],
  );

  const exposition = await scrape(s.url('/metrics'));
  assert.deepEqual(series(exposition, 'pws_http_request_duration_seconds_count'), {
    'route=/apps/:appId/events,status_class=2xx': 2,
    'route=/apps/:appId/batch_events,status_class=2xx': 1,
    'route=/apps/:appId/channels,status_class=2xx': 1,
    'route=/apps/:appId/channels/:channel,status_class=2xx': 1,
    'route=/apps/:appId/channels/:channel/users,status_class=4xx': 1,
    'route=/apps/:appId/users/:userId/terminate_connections,status_class=2xx': 1,
    'route=/apps/:appId/events,status_class=4xx': 4,
  });
  const sum = sampleValue(exposition, 'pws_http_request_duration_seconds_sum', { route: '/apps/:appId/events', status_class: '2xx' })!;
  assert.ok(sum > 0 && sum < 10, `${sum}`);
  assert.equal(exposition.families.get('pws_http_request_duration_seconds')!.type, 'histogram');
});
