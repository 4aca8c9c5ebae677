import type { AppState } from '../apps';
import type { Log } from '../log';
import type { WebhookMetrics } from './webhook-metrics';
import { webhookBody, type WebhookEvent } from './webhook-events';
import type { WebhookSender } from './sender';

/** Events per POST with batching on, as Pusher batches. */
export const MAX_BATCH = 20;

/** How a stream waits, retries and gives up (the server uses DELIVERY; tests shorten it). */
export interface DeliveryTimings {
  /** A POST not answered within this is a failure (and its connection is closed). */
  requestTimeoutMs: number;
  /** Wait after the first failure; each further failure doubles it, up to maxRetryMs (then ±50% jitter). */
  firstRetryMs: number;
  maxRetryMs: number;
  /** An event still undelivered this long after it was queued is given up, as Pusher retries for 5 minutes. */
  retryForMs: number;
  /** Events a stream holds at most; more are dropped until it drains. */
  queueLimit: number;
}

export const DELIVERY: DeliveryTimings = {
  requestTimeoutMs: 10_000,
  firstRetryMs: 500,
  maxRetryMs: 30_000,
  retryForMs: 5 * 60_000,
  queueLimit: 10_000,
};

/** What a stream needs besides its own URL and headers. */
export interface StreamContext {
  sender: WebhookSender;
  /** Up to MAX_BATCH events per POST, each waiting up to batchingMs for company; else one per POST. */
  batching: boolean;
  batchingMs: number;
  timings: DeliveryTimings;
  metrics: WebhookMetrics | null;
  log: Log;
}

interface Queued {
  event: WebhookEvent;
  /** performance.now() when queued. */
  at: number;
}

/** One POST's events and its exact bytes, kept across retries (same time_ms, same signature). */
interface Batch {
  events: Queued[];
  body: Buffer;
  attempts: number;
}

/**
 * The webhooks of one app to one URL, in order: one POST in flight at a time, so a receiver
 * sees events in the order they happened, and a slow or failing receiver holds back only its
 * own stream. A failed POST is retried with exponential backoff and jitter; while it fails,
 * the events behind it wait (order is kept) and each is given up retryForMs after it was queued.
 */
export class WebhookStream {
  private readonly queue: Queued[] = [];
  private batch: Batch | null = null;
  private inFlight: Promise<void> | null = null;
  private request: AbortController | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** What the timer waits for: the batching window, or the backoff after a failure. */
  private waiting: 'batch' | 'retry' | null = null;
  private failures = 0;
  private lastFailure = '';
  private overflowing = false;
  /** Set by finish(): no more waiting, each batch gets one attempt before the deadline. */
  private finishing = false;
  private finished = false;

  constructor(
    private readonly app: AppState,
    private readonly url: URL,
    private readonly headers: Record<string, string>,
    private readonly ctx: StreamContext,
  ) {}

  /** Queues one event and sends what is due. */
  push(event: WebhookEvent): void {
    if (this.finished || this.queue.length >= this.ctx.timings.queueLimit) {
      this.ctx.metrics?.eventsDropped.add(this.app.metricsSlot, 1);
      if (!this.overflowing) {
        this.overflowing = true;
        const why = this.finished ? 'the server has shut down' : `${this.queue.length} events wait already, until the receiver catches up`;
        this.ctx.log.warn(`webhooks: ${this.name()}: dropping new events: ${why}`);
      }
      return;
    }
    this.queue.push({ event, at: performance.now() });
    this.ctx.metrics?.queued.add(this.app.metricsSlot, 1);
    this.pump();
  }

  // Starts the next POST if one is due: none is in flight or waiting for a retry, and the
  // events have waited their batching window (or fill a batch).
  private pump(): void {
    if (this.batch !== null || this.waiting === 'retry' || this.finishing || this.queue.length === 0) return;
    const { batching, batchingMs } = this.ctx;
    if (batching && this.queue.length < MAX_BATCH) {
      const wait = this.queue[0].at + batchingMs - performance.now();
      if (wait > 0) {
        if (this.waiting === null) this.wait('batch', wait);
        return;
      }
    }
    this.clearTimer();
    this.take();
    void this.attempt();
  }

  private take(): void {
    const events = this.queue.splice(0, this.ctx.batching ? MAX_BATCH : 1);
    if (this.queue.length < this.ctx.timings.queueLimit) this.overflowing = false;
    this.batch = { events, body: webhookBody(Date.now(), events.map((q) => q.event)), attempts: 0 };
  }

  private attempt(timeoutMs = this.ctx.timings.requestTimeoutMs): Promise<void> {
    const batch = this.batch!;
    const { metrics } = this.ctx;
    if (batch.attempts++ > 0) metrics?.retried.add(this.app.metricsSlot, 1);
    const request = (this.request = new AbortController());
    const timeout = setTimeout(() => request.abort(`no answer within ${Math.round(timeoutMs)} ms`), timeoutMs);
    timeout.unref();
    const { key, secret } = this.app.config;
    this.inFlight = this.ctx.sender.post(this.url, key, secret, this.headers, batch.body, request.signal).then((outcome) => {
      clearTimeout(timeout);
      this.request = null;
      this.inFlight = null;
      if (outcome.ok) this.delivered(batch);
      else this.failed(outcome.reason);
    });
    return this.inFlight;
  }

  private delivered(batch: Batch): void {
    const { metrics } = this.ctx;
    this.batch = null;
    if (this.failures > 0) this.ctx.log.info(`webhooks: ${this.name()}: delivering again after ${this.failures} failed attempt${this.failures === 1 ? '' : 's'}`);
    this.failures = 0;
    if (metrics !== null) {
      const slot = this.app.metricsSlot;
      const now = performance.now();
      metrics.sent.add(slot, 1);
      metrics.eventsSent.add(slot, batch.events.length);
      metrics.queued.add(slot, -batch.events.length);
      for (const q of batch.events) metrics.deliverySeconds.observe(0, (now - q.at) / 1000);
    }
    this.pump();
  }

  private failed(reason: string): void {
    this.ctx.metrics?.failed.add(this.app.metricsSlot, 1);
    this.lastFailure = reason;
    if (this.finishing) return;
    // One line per outage (and one when it ends), not one per attempt.
    if (this.failures++ === 0) this.ctx.log.warn(`webhooks: ${this.name()}: POST failed (${reason}); retrying with backoff, later events wait in order`);
    const { firstRetryMs, maxRetryMs, retryForMs } = this.ctx.timings;
    const backoff = Math.min(maxRetryMs, firstRetryMs * 2 ** Math.min(this.failures - 1, 30));
    const delay = backoff * (0.5 + Math.random() / 2);
    // Events whose time would run out before the next attempt are given up now, in one go:
    // while a receiver is down, one line per backoff period rather than one per batch.
    const horizon = performance.now() + delay;
    if (this.batch!.events[0].at + retryForMs <= horizon) {
      let expired = 0;
      while (expired < this.queue.length && this.queue[expired].at + retryForMs <= horizon) expired++;
      const n = this.batch!.events.length + expired;
      this.queue.splice(0, expired);
      this.batch = null;
      this.drop(n, `undelivered after ${retryForMs / 1000} s of retries (last failure: ${reason})`);
    }
    this.wait('retry', delay);
  }

  private wait(what: 'batch' | 'retry', ms: number): void {
    this.clearTimer();
    this.waiting = what;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.waiting = null;
      if (this.batch !== null) void this.attempt();
      else this.pump();
    }, ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.waiting = null;
  }

  /**
   * Shutdown: stops waiting (batching window, backoff) and gives every batch left one attempt,
   * in order, until `deadline` (performance.now() time); what is left then is given up.
   * A POST in flight counts as its batch's last attempt.
   */
  async finish(deadline: number): Promise<void> {
    this.finishing = true;
    this.clearTimer();
    // A timer may fire a little before performance.now() reaches the deadline: `halted` is what ends the loop.
    let halted = false;
    const halt = setTimeout(() => {
      halted = true;
      this.request?.abort('the server is shutting down');
    }, Math.max(0, deadline - performance.now()));
    try {
      if (this.inFlight !== null) {
        await this.inFlight;
        if (this.batch !== null) this.giveUpBatch();
      }
      while ((this.batch !== null || this.queue.length > 0) && !halted && performance.now() < deadline) {
        if (this.batch === null) this.take();
        await this.attempt(Math.min(this.ctx.timings.requestTimeoutMs, deadline - performance.now()));
        if (this.batch !== null) this.giveUpBatch();
      }
    } finally {
      clearTimeout(halt);
    }
    this.finished = true;
    const left = (this.batch?.events.length ?? 0) + this.queue.length;
    this.batch = null;
    this.queue.length = 0;
    if (left > 0) this.drop(left, 'the server shut down before they could be sent');
  }

  private giveUpBatch(): void {
    const n = this.batch!.events.length;
    this.batch = null;
    this.drop(n, `their last attempt at shutdown failed (${this.lastFailure})`);
  }

  private drop(n: number, why: string): void {
    const { metrics } = this.ctx;
    if (metrics !== null) {
      metrics.eventsDropped.add(this.app.metricsSlot, n);
      metrics.queued.add(this.app.metricsSlot, -n);
    }
    this.ctx.log.warn(`webhooks: ${this.name()}: gave up on ${n} event${n === 1 ? '' : 's'}, ${why}`);
  }

  // Without credentials or query string, which may hold tokens.
  private name(): string {
    return `app ${this.app.config.id} to ${this.url.origin}${this.url.pathname}`;
  }
}
