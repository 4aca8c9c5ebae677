import { randomUUID } from 'node:crypto';
import type { AppState } from '../apps/app-state';
import type { Log } from '../log';
import type { ConsoleTap } from '../console/tap';
import type { SentBatch, StreamJournal } from './journal';
import type { DropReason, WebhookMetrics } from './webhook-metrics';
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
  /** The console's figures and event log; null with CONSOLE_ENABLED off. */
  console: ConsoleTap | null;
}

/** An event another node queued at `timeMs` (wall clock), as its journal holds it. */
export interface TakenEntry {
  event: WebhookEvent;
  id: string;
  timeMs: number;
}

interface Queued {
  event: WebhookEvent;
  /** performance.now() when queued. */
  at: number;
  /** Its entry in the stream's journal; null without one. */
  id: string | null;
  /** On the first event of a POST another node was sending: the POST to send again, byte for byte. */
  resend?: SentBatch;
}

/** One POST's events and its exact bytes, kept across retries (same time_ms, same signature, same id). */
interface Batch {
  events: Queued[];
  body: Buffer;
  webhookId: string;
  attempts: number;
  /** Until the journal has recorded the POST (only then may it leave). */
  recorded: Promise<void> | null;
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
    /** Changed in place when the app's config gives its URL new headers. */
    public headers: Record<string, string>,
    private readonly ctx: StreamContext,
    /** The durable copy of the events (ADAPTER_DRIVER=redis); set before the first push. */
    public journal: StreamJournal | null = null,
  ) {}

  /** Queues one event and sends what is due. */
  push(event: WebhookEvent): void {
    if (this.refused()) return;
    this.ctx.metrics?.eventsQueued.add(this.app.metricsSlot, 1);
    this.add({ event, at: performance.now(), id: this.journal?.append(event, Date.now()) ?? null });
  }

  /**
   * Queues events another node queued and left in the journal, all before sending any (they
   * are late already, and batch together): `resend` is the POST that node was sending.
   */
  takeOver(entries: readonly TakenEntry[], resend?: SentBatch): void {
    for (const { event, id, timeMs } of entries) {
      if (this.refused()) continue;
      this.ctx.metrics?.eventsClaimed.add(this.app.metricsSlot, 1);
      this.queue.push({ event, at: performance.now() - Math.max(0, Date.now() - timeMs), id, resend: id === resend?.firstId ? resend : undefined });
      this.ctx.metrics?.queued.add(this.app.metricsSlot, 1);
    }
    this.pump();
  }

  /** Events this stream holds, in flight included. */
  get size(): number {
    return this.queue.length + (this.batch?.events.length ?? 0);
  }

  // True (and counted) when the event cannot be queued: the stream is full or has finished.
  private refused(): boolean {
    if (!this.finished && this.queue.length < this.ctx.timings.queueLimit) return false;
    this.count(this.finished ? 'shutdown' : 'full', 1);
    if (!this.overflowing) {
      this.overflowing = true;
      const why = this.finished ? 'the server has shut down' : `${this.queue.length} events wait already, until the receiver catches up`;
      this.ctx.log.warn(`webhooks: ${this.name()}: dropping new events: ${why}`);
    }
    return true;
  }

  private add(queued: Queued): void {
    this.queue.push(queued);
    this.ctx.metrics?.queued.add(this.app.metricsSlot, 1);
    this.pump();
  }

  // Starts the next POST if one is due: none is in flight or waiting for a retry, and the
  // events have waited their batching window (or fill a batch).
  private pump(): void {
    if (this.batch !== null || this.waiting === 'retry' || this.finishing) return;
    if (this.queue.length === 0) {
      this.journal?.idle?.();
      return;
    }
    const { batching, batchingMs } = this.ctx;
    if (batching && this.queue.length < MAX_BATCH && this.queue[0].resend === undefined) {
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

  // The next POST: the one another node was sending when its entries match, else a new one.
  private take(): void {
    const first = this.queue[0];
    const resend = first.resend;
    const count = resend !== undefined ? this.queue.findIndex((q) => q.id === resend.lastId) + 1 : 0;
    const events = this.queue.splice(0, count > 0 ? count : this.ctx.batching ? MAX_BATCH : 1);
    if (this.queue.length < this.ctx.timings.queueLimit) this.overflowing = false;
    const sent: SentBatch = count > 0 ? resend! : { webhookId: randomUUID(), timeMs: Date.now(), firstId: first.id ?? '', lastId: events[events.length - 1].id ?? '' };
    const recorded = this.journal !== null && first.id !== null && count === 0 ? this.journal.sending(sent) : null;
    this.batch = { events, body: webhookBody(sent.timeMs, events.map((q) => q.event)), webhookId: sent.webhookId, attempts: 0, recorded };
  }

  private attempt(timeoutMs = this.ctx.timings.requestTimeoutMs): Promise<void> {
    const batch = this.batch!;
    const recorded = batch.recorded;
    if (recorded !== null) {
      // In flight from here on: a shutdown waits for it like for a POST.
      batch.recorded = null;
      this.inFlight = recorded.then(() => (this.batch === batch ? this.attempt(timeoutMs) : undefined));
      return this.inFlight;
    }
    const { metrics } = this.ctx;
    if (batch.attempts++ > 0) metrics?.retried.add(this.app.metricsSlot, 1);
    const request = (this.request = new AbortController());
    const timeout = setTimeout(() => request.abort(`no answer within ${Math.round(timeoutMs)} ms`), timeoutMs);
    timeout.unref();
    const { key, secret } = this.app.config;
    this.inFlight = this.ctx.sender.post(this.url, key, secret, this.headers, batch.body, batch.webhookId, request.signal).then((outcome) => {
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
    this.journal?.remove(ids(batch.events));
    if (this.failures > 0) this.ctx.log.info(`webhooks: ${this.name()}: delivering again after ${this.failures} failed attempt${this.failures === 1 ? '' : 's'}`);
    this.failures = 0;
    this.ctx.console?.webhookSent(this.app, batch.events.length);
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
    this.ctx.console?.webhookFailed(this.app, reason);
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
      const given = this.batch!.events.concat(this.queue.splice(0, expired));
      this.batch = null;
      this.drop(given, 'expired', `undelivered after ${retryForMs / 1000} s of retries (last failure: ${reason})`);
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
    const left = (this.batch?.events ?? []).concat(this.queue);
    this.batch = null;
    this.queue.length = 0;
    if (left.length > 0) this.drop(left, 'shutdown', 'the server shut down before they could be sent');
  }

  /**
   * Shutdown with a journal: stops sending and leaves every event in it for the node that
   * takes the stream over. A POST in flight is cut off; that node sends it again, same id.
   */
  handOver(): void {
    this.finishing = true;
    this.finished = true;
    this.clearTimer();
    this.request?.abort('the server is shutting down');
    this.ctx.metrics?.queued.add(this.app.metricsSlot, -this.size);
    this.batch = null;
    this.queue.length = 0;
  }

  private giveUpBatch(): void {
    const events = this.batch!.events;
    this.batch = null;
    this.drop(events, 'shutdown', `their last attempt at shutdown failed (${this.lastFailure})`);
  }

  private drop(events: Queued[], reason: DropReason, why: string): void {
    const n = events.length;
    this.journal?.remove(ids(events));
    this.count(reason, n);
    this.ctx.metrics?.queued.add(this.app.metricsSlot, -n);
    this.ctx.log.warn(`webhooks: ${this.name()}: gave up on ${n} event${n === 1 ? '' : 's'}, ${why}`);
  }

  private count(reason: DropReason, n: number): void {
    const { metrics } = this.ctx;
    if (metrics !== null) metrics.eventsDropped.add(metrics.dropSlot(this.app, reason), n);
  }

  // Without credentials or query string, which may hold tokens.
  private name(): string {
    return `app ${this.app.config.id} to ${this.url.origin}${this.url.pathname}`;
  }
}

// The journal entries of these events (those that have one).
function ids(events: Queued[]): string[] {
  const out: string[] = [];
  for (const q of events) if (q.id !== null) out.push(q.id);
  return out;
}
