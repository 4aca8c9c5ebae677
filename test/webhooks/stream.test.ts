// One (app, URL) stream against a real receiver, with its timings shortened so that the
// 5-minute give-up, the request timeout and the queue bound can be watched in a test.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Apps } from '../../src/apps/apps';
import type { AppState } from '../../src/apps/app-state';
import { loadOptions } from '../../src/options';
import { Log } from '../../src/log';
import { PwsMetrics } from '../../src/metrics/pws-metrics';
import { WebhookSender } from '../../src/webhooks/sender';
import { WebhookStream, type DeliveryTimings } from '../../src/webhooks/stream';
import { clientEvent } from '../../src/webhooks/webhook-events';
import { DROP_REASONS, WebhookMetrics } from '../../src/webhooks/webhook-metrics';
import { eventually } from '../helpers/server';
import { WebhookReceiver } from '../helpers/webhook-receiver';

/** A Log that keeps warnings and info lines instead of printing them. */
class RecordingLog extends Log {
  readonly warnings: string[] = [];
  readonly infos: string[] = [];
  constructor() {
    super(false, true);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
  info(message: string): void {
    this.infos.push(message);
  }
}

const SHORT: DeliveryTimings = { requestTimeoutMs: 5000, firstRetryMs: 20, maxRetryMs: 100, retryForMs: 600, queueLimit: 1000 };

interface Setup {
  app: AppState;
  stream: WebhookStream;
  metrics: WebhookMetrics;
  log: RecordingLog;
  sender: WebhookSender;
  value(family: keyof WebhookMetrics): number;
}

function setup(receiver: WebhookReceiver, timings: Partial<DeliveryTimings> = {}, batching = true): Setup {
  const apps = new Apps([{ ...loadOptions({}).apps[0], enableClientMessages: true }]);
  const pws = new PwsMetrics({ prefix: 'pws_', port: 0 });
  const app = apps.findById('app-id')!;
  app.metricsSlot = pws.appSlot('app-id');
  const metrics = new WebhookMetrics(pws, apps);
  const log = new RecordingLog();
  const sender = new WebhookSender();
  const stream = new WebhookStream(app, new URL(receiver.url()), {}, { sender, batching, batchingMs: 10, timings: { ...SHORT, ...timings }, metrics, log, console: null });
  pws.stop();
  const value = (family: keyof WebhookMetrics): number =>
    // Dropped events are counted by reason: the total of all reasons.
    family === 'eventsDropped'
      ? DROP_REASONS.reduce((sum, reason) => sum + metrics.eventsDropped.get(metrics.dropSlot(app, reason)), 0)
      : (metrics[family] as { values: Float64Array }).values[app.metricsSlot];
  return { app, stream, metrics, log, sender, value };
}

const event = (i: number) => clientEvent('private-c', 'client-n', { i }, '1.1', undefined);
const indices = (events: any[]) => events.map((e) => JSON.parse(e.data).i);

describe('a webhook stream', () => {
  test('events undelivered after retryForMs are given up with one log line and counted; the outage is logged once when it starts and once when it ends', async () => {
    const receiver = await WebhookReceiver.start();
    receiver.answer = () => 500;
    const s = setup(receiver);
    try {
      for (let i = 0; i < 3; i++) s.stream.push(event(i));
      await eventually(() => s.value('eventsDropped') === 3, 10000, 'the three events given up');
      assert.equal(s.log.warnings.length, 2, s.log.warnings.join('\n'));
      assert.match(s.log.warnings[0], /^webhooks: app app-id to http:\/\/127\.0\.0\.1:\d+\/hook: POST failed \(HTTP 500\); retrying with backoff, later events wait in order$/);
      assert.match(s.log.warnings[1], /^webhooks: app app-id to http:\/\/127\.0\.0\.1:\d+\/hook: gave up on 3 events, undelivered after 0\.6 s of retries \(last failure: HTTP 500\)$/);
      assert.equal(s.value('queued'), 0);
      assert.ok(s.value('failed') >= 2 && s.value('retried') === s.value('failed') - 1);
      assert.equal(s.value('sent'), 0);

      receiver.answer = () => 200;
      s.stream.push(event(3));
      await receiver.waitForEvents(1);
      assert.deepEqual(indices(receiver.events()), [3]);
      // The receiver records its answer before the stream has read it.
      await eventually(() => s.value('eventsSent') === 1 && s.value('queued') === 0, 5000, 'the delivery counted');
      assert.equal(s.log.warnings.length, 2);
      assert.deepEqual(s.log.infos.map((l) => l.replace(/^.*hook: /, '')), [`delivering again after ${s.value('failed')} failed attempts`]);
    } finally {
      s.sender.close();
      await receiver.close();
    }
  });

  test('a POST not answered within requestTimeoutMs fails and is retried with the same bytes', async () => {
    const receiver = await WebhookReceiver.start();
    let first = true;
    receiver.answer = () => (first ? ((first = false), 'hang') : 200);
    const s = setup(receiver, { requestTimeoutMs: 200 });
    try {
      s.stream.push(event(0));
      await receiver.waitForEvents(1);
      assert.equal(receiver.requests.length, 2);
      assert.equal(receiver.requests[1].body, receiver.requests[0].body);
      assert.equal(receiver.requests[1].headers['x-pusher-signature'], receiver.requests[0].headers['x-pusher-signature']);
      await eventually(() => s.value('sent') === 1, 5000, 'the delivery counted');
      assert.deepEqual([s.value('failed'), s.value('retried')], [1, 1]);
      assert.deepEqual(s.log.warnings.map((l) => l.replace(/^.*hook: /, '')), ['POST failed (no answer within 200 ms); retrying with backoff, later events wait in order']);
    } finally {
      s.sender.close();
      await receiver.close();
    }
  });

  test('the queue is bounded: beyond queueLimit new events are dropped, with one log line, until it drains', async () => {
    const receiver = await WebhookReceiver.start();
    receiver.answer = () => 'hang';
    const s = setup(receiver, { queueLimit: 5 }, false);
    try {
      s.stream.push(event(0));
      await eventually(() => receiver.hangingCount === 1, 5000, 'the first POST');
      for (let i = 1; i <= 7; i++) s.stream.push(event(i));
      assert.equal(s.value('eventsDropped'), 2);
      assert.equal(s.value('queued'), 6);
      assert.equal(s.log.warnings.length, 1);
      assert.match(s.log.warnings[0], /dropping new events: 5 events wait already, until the receiver catches up$/);

      receiver.answer = () => 200;
      receiver.release();
      await receiver.waitForEvents(6);
      assert.deepEqual(indices(receiver.events()), [0, 1, 2, 3, 4, 5]);
      s.stream.push(event(8));
      await receiver.waitForEvents(7);
      await eventually(() => s.value('queued') === 0, 5000, 'an empty queue');
    } finally {
      s.sender.close();
      await receiver.close();
    }
  });

  test('finish gives what is left one attempt before the deadline, then gives up the rest', async () => {
    const receiver = await WebhookReceiver.start();
    receiver.answer = () => 'hang';
    const s = setup(receiver, {}, false);
    try {
      s.stream.push(event(0));
      s.stream.push(event(1));
      await eventually(() => receiver.hangingCount === 1, 5000, 'the first POST');
      await s.stream.finish(performance.now() + 300);
      assert.equal(receiver.requests.length, 1, 'no time was left for the second event');
      assert.equal(s.value('eventsDropped'), 2);
      assert.equal(s.value('queued'), 0);
      assert.deepEqual(s.log.warnings.map((w) => w.replace(/^.*: gave up/, 'gave up')), [
        'gave up on 1 event, their last attempt at shutdown failed (the server is shutting down)',
        'gave up on 1 event, the server shut down before they could be sent',
      ]);
      s.stream.push(event(2));
      assert.equal(s.value('eventsDropped'), 3, 'an event after the end is dropped too');
    } finally {
      s.sender.close();
      await receiver.close();
    }
  });
});
