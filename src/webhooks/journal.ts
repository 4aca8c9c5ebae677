import type { WebhookEvent } from './webhook-events';

/** The POST a stream is sending, recorded so that a node taking the stream over sends the same bytes under the same id. */
export interface SentBatch {
  /** The X-Pusher-Webhook-Id of the POST. */
  webhookId: string;
  /** The body's time_ms. */
  timeMs: number;
  /** Entry ids of its first and last event. */
  firstId: string;
  lastId: string;
}

/**
 * A durable copy of one stream's events, outside this process (the Redis queue, redis-queue.ts).
 * A stream keeps working from memory; the copy is what another node sends when this one is gone.
 * Streams of ADAPTER_DRIVER=local have none.
 */
export interface StreamJournal {
  /** Records a newly queued event (`timeMs`: wall clock); returns its entry id. Never throws. */
  append(event: WebhookEvent, timeMs: number): string;
  /** Records the POST about to be sent; resolves (never rejects) once it is recorded or could not be. */
  sending(batch: SentBatch): Promise<void>;
  /** Entries delivered or given up: removed for good. */
  remove(ids: string[]): void;
  /** The stream has nothing left to send (a taken-over stream then reads more). */
  idle?(): void;
}
