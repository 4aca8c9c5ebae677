// Webhooks end to end: a real server, real pusher-js clients, a real HTTP receiver, and the
// official `pusher` SDK checking signatures. Every event type with its exact body, filters,
// batching limits, a receiver that fails and comes back, one that hangs, the page-reload
// hold-back, and the last attempt at shutdown.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Pusher from 'pusher';
import type PusherJs from 'pusher-js';
import { HOLD_BACK_MS } from '../../src/webhooks/hold-back';
import { parseExposition, rawGet, sampleValue } from '../helpers/exposition';
import { APP, connected, eventually, nextEvent, startServer, subscribed, type TestServer } from '../helpers/server';
import { missingToolSkip, runPromtoolCheckMetrics } from '../helpers/services';
import { WebhookReceiver, type Received } from '../helpers/webhook-receiver';

const ALL = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event'];

/** DEFAULT_APP_WEBHOOKS for these entries. */
function webhooks(...entries: object[]): Record<string, string> {
  return { DEFAULT_APP_WEBHOOKS: JSON.stringify(entries) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends `count` client events named client-n with data {i} on `channel`. */
function triggerMany(client: PusherJs, channel: string, from: number, count: number): void {
  for (let i = from; i < from + count; i++) assert.equal(client.channel(channel).trigger('client-n', { i }), true);
}

/** The `i` of each client event received, in order. */
function indices(events: any[]): number[] {
  return events.map((e) => JSON.parse(e.data).i);
}

/** Whether the SDK, holding these credentials, accepts this request as a webhook of the app. */
function sdkAccepts(request: Received, app: { id: string; key: string; secret: string } = APP): boolean {
  const sdk = new Pusher({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1' });
  return sdk.webhook({ headers: request.headers, rawBody: request.body }).isValid();
}

async function metric(s: TestServer, name: string, labels: Record<string, string> = { app_id: APP.id }): Promise<number | undefined> {
  return sampleValue(parseExposition((await rawGet(s.url('/metrics'))).body), name, labels);
}

describe('events and their bodies', () => {
  test("every event type in Pusher's shape, one per POST without batching, signed so that the pusher SDK accepts it", async () => {
    const receiver = await WebhookReceiver.start();
    const s = await startServer({
      DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1',
      WEBHOOKS_BATCHING: 'false',
      ...webhooks({ url: receiver.url(), event_types: ALL, headers: { 'X-Api-Token': 'tok-1' } }),
    });
    try {
      const before = Date.now();
      const alice = s.client({ presence: { user_id: 'alice', user_info: { name: 'Alice' } } });
      const aliceId = await connected(alice);
      await subscribed(alice, 'presence-room');
      const bob = s.client();
      await subscribed(bob, 'private-chat');
      await subscribed(alice, 'private-chat');
      alice.channel('presence-room').trigger('client-typing', { typing: true });
      alice.channel('private-chat').trigger('client-note', 'plain text');
      await receiver.waitForEvents(5);
      alice.unsubscribe('presence-room');
      await receiver.waitForEvents(7);

      const expected = [
        '{"name":"channel_occupied","channel":"presence-room"}',
        '{"name":"member_added","channel":"presence-room","user_id":"alice"}',
        '{"name":"channel_occupied","channel":"private-chat"}',
        `{"name":"client_event","channel":"presence-room","event":"client-typing","data":"{\\"typing\\":true}","socket_id":"${aliceId}","user_id":"alice"}`,
        `{"name":"client_event","channel":"private-chat","event":"client-note","data":"plain text","socket_id":"${aliceId}"}`,
        '{"name":"member_removed","channel":"presence-room","user_id":"alice"}',
        '{"name":"channel_vacated","channel":"presence-room"}',
      ];
      assert.equal(receiver.requests.length, expected.length);
      receiver.requests.forEach((r, i) => {
        const t = r.json.time_ms;
        assert.ok(Number.isInteger(t) && t >= before && t <= Date.now(), `time_ms ${t}`);
        assert.equal(r.body, `{"time_ms":${t},"events":[${expected[i]}]}`);
        assert.equal(r.headers['content-type'], 'application/json');
        assert.equal(r.headers['x-pusher-key'], APP.key);
        assert.match(String(r.headers['x-pusher-signature']), /^[0-9a-f]{64}$/);
        assert.equal(r.headers['x-api-token'], 'tok-1');
        assert.equal(sdkAccepts(r), true, 'the SDK accepts the signature');
        assert.equal(sdkAccepts(r, { ...APP, secret: 'another-secret' }), false, 'and refuses it under another secret');
        assert.deepEqual(s.sdk().webhook({ headers: r.headers, rawBody: r.body }).getEvents(), [JSON.parse(expected[i])]);
      });
    } finally {
      await s.stop();
      await receiver.close();
    }
  });

  test('event_types and channel filters remove events: each URL gets only what its entries ask for', async () => {
    const all = await WebhookReceiver.start();
    const rooms = await WebhookReceiver.start();
    const s = await startServer({
      DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1',
      ...webhooks(
        { url: all.url(), event_types: ['channel_occupied'] },
        { url: rooms.url(), event_types: ['member_added'], filter: { channel_name_starts_with: 'presence-', channel_name_ends_with: '-room' } },
        // A second entry on the same URL: its events join the same stream.
        { url: rooms.url(), event_types: ['client_event'], filter: { channel_name_ends_with: '-room' } },
      ),
    });
    try {
      const a = s.client({ presence: { user_id: 'a' } });
      for (const channel of ['presence-room', 'presence-hall', 'private-room', 'news']) await subscribed(a, channel);
      a.channel('presence-hall').trigger('client-x', 1);
      a.channel('private-room').trigger('client-x', 2);
      const occupied = await all.waitForEvents(4);
      const got = await rooms.waitForEvents(2);
      // A marker on each stream: once it is in, nothing before it is still on its way.
      const b = s.client({ presence: { user_id: 'b' } });
      await subscribed(b, 'presence-last-room');
      await all.waitForEvents(5);
      await rooms.waitForEvents(3);
      assert.deepEqual(occupied.map((e) => e.channel), ['presence-room', 'presence-hall', 'private-room', 'news']);
      assert.ok(all.events().every((e) => e.name === 'channel_occupied'));
      assert.deepEqual(
        rooms.events().map((e) => [e.name, e.channel]),
        [
          ['member_added', 'presence-room'],
          ['client_event', 'private-room'],
          ['member_added', 'presence-last-room'],
        ],
      );
      assert.equal(got.length, 2);
    } finally {
      await s.stop();
      await all.close();
      await rooms.close();
    }
  });
});

describe('batching', () => {
  test('with batching, up to 20 events per POST: 45 events go as 20 + 20 + 5, in order', async () => {
    const receiver = await WebhookReceiver.start();
    const s = await startServer({ DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1', WEBHOOKS_BATCHING_DURATION: '1000', ...webhooks({ url: receiver.url(), event_types: ['client_event'] }) });
    try {
      const sender = s.client();
      await subscribed(sender, 'private-burst');
      triggerMany(sender, 'private-burst', 0, 45);
      const events = await receiver.waitForEvents(45);
      assert.deepEqual(receiver.requests.map((r) => r.json.events.length), [20, 20, 5]);
      assert.deepEqual(indices(events), Array.from({ length: 45 }, (_, i) => i));
      assert.ok(receiver.requests.every((r) => sdkAccepts(r)));
    } finally {
      await s.stop();
      await receiver.close();
    }
  });

  test('without batching, one event per POST, one POST at a time, in order', async () => {
    const receiver = await WebhookReceiver.start();
    let open = 0;
    let most = 0;
    receiver.answer = () => {
      most = Math.max(most, ++open);
      return 'hang';
    };
    const s = await startServer({ DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1', WEBHOOKS_BATCHING: 'false', ...webhooks({ url: receiver.url(), event_types: ['client_event'] }) });
    try {
      const sender = s.client();
      await subscribed(sender, 'private-burst');
      triggerMany(sender, 'private-burst', 0, 45);
      // Answer each request only once it is the one waiting; a second one in flight would show.
      await eventually(() => {
        if (receiver.hangingCount > 0) {
          open--;
          receiver.release();
        }
        return receiver.events().length === 45;
      }, 15000, '45 webhooks');
      assert.equal(most, 1, 'never two requests in flight');
      assert.deepEqual(receiver.requests.map((r) => r.json.events.length), Array(45).fill(1));
      assert.deepEqual(indices(receiver.events()), Array.from({ length: 45 }, (_, i) => i));
    } finally {
      await s.stop();
      await receiver.close();
    }
  });
});

describe('delivery', () => {
  test('a receiver answering 500, then down, then back gets every event once, in order; counted in the metrics (promtool clean)', async () => {
    const receiver = await WebhookReceiver.start();
    let failures = 2;
    receiver.answer = () => (failures-- > 0 ? 500 : 200);
    const s = await startServer({ DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1', METRICS_ENABLED: '1', ...webhooks({ url: receiver.url(), event_types: ['client_event'] }) });
    try {
      const sender = s.client();
      await subscribed(sender, 'private-orders');
      triggerMany(sender, 'private-orders', 0, 10);
      await eventually(() => receiver.requests.length === 2, 15000, 'two answers of 500');
      await receiver.close();
      await eventually(async () => (await metric(s, 'pws_webhooks_failed_total')) === 3, 15000, 'an attempt on the closed port');
      triggerMany(sender, 'private-orders', 10, 10);
      await receiver.open();
      const events = await receiver.waitForEvents(20);
      assert.deepEqual(indices(events), Array.from({ length: 20 }, (_, i) => i));
      // The retries resent the first batch byte for byte: same time_ms, same signature.
      assert.equal(receiver.requests[0].body, receiver.requests[2].body);
      assert.equal(receiver.requests[0].headers['x-pusher-signature'], receiver.requests[2].headers['x-pusher-signature']);

      await eventually(async () => (await metric(s, 'pws_webhook_events_queued')) === 0, 5000, 'an empty queue');
      const body = (await rawGet(s.url('/metrics'))).body;
      const m = parseExposition(body);
      const app = { app_id: APP.id };
      assert.equal(sampleValue(m, 'pws_webhook_events_sent_total', app), 20);
      assert.equal(sampleValue(m, 'pws_webhooks_sent_total', app), receiver.delivered().length);
      assert.equal(sampleValue(m, 'pws_webhooks_failed_total', app), 3);
      assert.equal(sampleValue(m, 'pws_webhooks_retried_total', app), 3);
      for (const reason of ['expired', 'full', 'shutdown']) assert.equal(sampleValue(m, 'pws_webhook_events_dropped_total', { ...app, reason }), 0);
      assert.equal(sampleValue(m, 'pws_webhook_events_queued_total', app), 20);
      assert.equal(sampleValue(m, 'pws_webhook_delivery_duration_seconds_count'), 20);
      if (!missingToolSkip('promtool', 'prometheus')) {
        const result = await runPromtoolCheckMetrics(body.toString('utf8'));
        assert.deepEqual(result.stderr.split('\n').filter((l) => /webhook/.test(l)), [], 'the webhook families follow the naming rules');
      }
    } finally {
      await s.stop();
      await receiver.close();
    }
  });

  test('a hanging receiver delays neither WebSocket clients nor other apps, and its own events wait in order', async () => {
    const hanging = await WebhookReceiver.start();
    hanging.answer = () => 'hang';
    const other = await WebhookReceiver.start();
    const dir = mkdtempSync(join(tmpdir(), 'pws-webhooks-'));
    const config = join(dir, 'config.json');
    const appA = { id: 'a', key: 'a-key', secret: 'a-secret' };
    const appB = { id: 'b', key: 'b-key', secret: 'b-secret' };
    writeFileSync(
      config,
      JSON.stringify({
        apps: [
          { ...appA, enableClientMessages: true, webhooks: [{ url: hanging.url(), event_types: ['client_event'] }] },
          { ...appB, enableClientMessages: true, webhooks: [{ url: other.url(), event_types: ['channel_occupied', 'client_event'] }] },
        ],
      }),
    );
    const s = await startServer({}, config);
    try {
      const a1 = s.client({ app: appA });
      const a2 = s.client({ app: appA });
      await subscribed(a1, 'private-a');
      await subscribed(a2, 'private-a');
      a1.channel('private-a').trigger('client-n', { i: 0 });
      await eventually(() => hanging.hangingCount === 1, 5000, "app a's first webhook to hang");

      // While it hangs: app a's clients still talk, and app b's webhooks go out.
      const relayed = nextEvent(a2, 'private-a', 'client-n');
      a1.channel('private-a').trigger('client-n', { i: 1 });
      assert.deepEqual(await relayed, { i: 1 });
      const triggered = nextEvent(a2, 'private-a', 'api');
      await s.sdk(appA).trigger('private-a', 'api', { ok: true });
      assert.deepEqual(await triggered, { ok: true });
      const b1 = s.client({ app: appB });
      await subscribed(b1, 'private-b');
      b1.channel('private-b').trigger('client-n', { i: 0 });
      const bEvents = await other.waitForEvents(2);
      assert.deepEqual(bEvents.map((e) => e.name), ['channel_occupied', 'client_event']);
      assert.equal(hanging.hangingCount, 1, "app a's webhook still hangs");
      assert.equal(hanging.requests.length, 1, "app a's second event waits behind its first");

      hanging.answer = () => 200;
      hanging.release();
      const aEvents = await hanging.waitForEvents(2);
      assert.deepEqual(indices(aEvents), [0, 1]);
      assert.ok(hanging.requests.every((r) => r.headers['x-pusher-key'] === appA.key && sdkAccepts(r, appA)));
      assert.ok(other.requests.every((r) => r.headers['x-pusher-key'] === appB.key && sdkAccepts(r, appB)));
    } finally {
      await s.stop();
      await hanging.close();
      await other.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('hold-back', () => {
  test('a page reload sends nothing: the member leaves and comes back within the hold-back; a real leave is sent after it', async () => {
    const receiver = await WebhookReceiver.start();
    const s = await startServer(webhooks({ url: receiver.url(), event_types: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed'] }));
    const occupied = async (channel: string) => ((await (await s.sdk().get({ path: `/channels/${channel}` })).json()) as { occupied: boolean }).occupied;
    try {
      const first = s.client({ presence: { user_id: 'alice' } });
      await subscribed(first, 'presence-room');
      await receiver.waitForEvents(2);

      first.disconnect();
      await eventually(async () => !(await occupied('presence-room')), 5000, 'the channel vacated');
      const reloaded = s.client({ presence: { user_id: 'alice' } });
      await subscribed(reloaded, 'presence-room');
      // The hold-back timer runs in this process and expires before this sleep ends, so had
      // it released anything, that would be queued ahead of the marker below.
      await sleep(HOLD_BACK_MS + 1000);
      const marker = s.client({ presence: { user_id: 'bob' } });
      await subscribed(marker, 'presence-marker');
      await receiver.waitForEvents(4);
      assert.deepEqual(
        receiver.events().map((e) => [e.name, e.channel, e.user_id]),
        [
          ['channel_occupied', 'presence-room', undefined],
          ['member_added', 'presence-room', 'alice'],
          ['channel_occupied', 'presence-marker', undefined],
          ['member_added', 'presence-marker', 'bob'],
        ],
      );

      reloaded.disconnect();
      await receiver.waitForEvents(6);
      assert.deepEqual(
        receiver.events().slice(4).map((e) => [e.name, e.channel, e.user_id]),
        [
          ['member_removed', 'presence-room', 'alice'],
          ['channel_vacated', 'presence-room', undefined],
        ],
      );
    } finally {
      await s.stop();
      await receiver.close();
    }
  });
});

describe('shutdown', () => {
  test('on stop, held and queued webhooks get one last attempt: delivered when the receiver answers, dropped and counted when it hangs', async () => {
    const receiver = await WebhookReceiver.start();
    let failures = 4;
    receiver.answer = () => (failures-- > 0 ? 500 : 200);
    const hanging = await WebhookReceiver.start();
    hanging.answer = () => 'hang';
    const s = await startServer({
      DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1',
      METRICS_ENABLED: '1',
      ...webhooks({ url: receiver.url(), event_types: ALL }, { url: hanging.url(), event_types: ['client_event'] }),
    });
    let stopped = false;
    try {
      const sender = s.client({ presence: { user_id: 'carol' } });
      await subscribed(sender, 'presence-end');
      sender.channel('presence-end').trigger('client-n', { i: 0 });
      // Four failures: the next retry is at least 2 s away, and stop() must not wait for it.
      await eventually(() => receiver.requests.length === 4 && hanging.hangingCount === 1, 15000, 'four failures and a hanging request');
      await s.stop();
      stopped = true;
      // The socket closed at stop: member_removed and channel_vacated were released from the hold-back.
      assert.deepEqual(
        receiver.events().map((e) => e.name),
        ['channel_occupied', 'member_added', 'client_event', 'member_removed', 'channel_vacated'],
      );
      const m = parseExposition(s.server.metrics!.render());
      assert.equal(sampleValue(m, 'pws_webhook_events_dropped_total', { app_id: APP.id, reason: 'shutdown' }), 1, 'the hanging URL gave up its event');
      assert.equal(sampleValue(m, 'pws_webhook_events_queued', { app_id: APP.id }), 0);
    } finally {
      if (!stopped) await s.stop();
      await receiver.close();
      await hanging.close();
    }
  });
});
