import type { Counter } from '../metrics/counter';
import type { Gauge } from '../metrics/gauge';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { Log } from '../log';
import type { RedisLink } from './redis-link';

/** How much the outbox holds at most: whichever bound comes first. */
export interface OutboxBounds {
  maxAgeMs: number;
  maxFrames: number;
  maxBytes: number;
}

// While holding, Redis is tried this often (a PING on the first held message's shard).
const PROBE_MS = 500;
// Redis is back: the other nodes reconnect within 2 s (redis-link.ts caps their backoff there) and
// subscribe again; a message sent before they did would reach nobody. The backlog waits this long.
const SETTLE_MS = 3000;
// Held messages are published this many at a time, in order, each chunk awaited.
const CHUNK = 64;

/** A message for the other nodes, held while Redis cannot take it. */
interface Held {
  /** Its place in the order the node sent its messages (see next()). */
  seq: number;
  channel: string;
  message: string;
  bytes: number;
  /** performance.now() when it was held. */
  at: number;
}

/**
 * Messages for other nodes that Redis could not take, in order, while the link is down. The first
 * publish that fails starts holding: from then on every message is held behind it (a message sent
 * while older ones wait would overtake them) until Redis has answered for SETTLE_MS, and then they
 * are published in order before any newer one. Bounded by age, count and bytes: an expired message
 * is dropped (counted, one log line per outage), and when full a REST trigger is refused with 503
 * before it delivers anything (admits()), while other messages are dropped and counted.
 * While Redis is up it costs one boolean test per message.
 */
export class Outbox {
  /** True from a failed publish until everything held is published. */
  holding = false;
  /**
   * Counts reconnections and master changes. A publish sent before one and answered after it may
   * have been retried by the client on a server where the others had not subscribed yet: it is
   * held and sent again (a repeat, at worst).
   */
  generation = 0;
  private seq = 0;
  private readonly held: Held[] = [];
  private head = 0;
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private backSince = -1;
  private flushing = false;
  private dropped = { expired: 0, full: 0 };
  private readonly frames: Gauge | null = null;
  private readonly drops: Counter | null = null;

  constructor(
    private readonly link: RedisLink,
    private readonly bounds: OutboxBounds,
    metrics: PwsMetrics | null,
    private readonly log: Log,
  ) {
    if (metrics !== null) {
      const { registry, prefix } = metrics;
      this.frames = registry.gauge({ name: `${prefix}cluster_outbox_messages`, help: 'Messages for other nodes held while Redis is unreachable.' });
      this.frames.series([]);
      this.drops = registry.counter({ name: `${prefix}cluster_outbox_dropped_total`, help: 'Messages for other nodes dropped from the outbox: expired (older than its age bound) or full.', labelNames: ['reason'] });
      this.drops.series(['expired']);
      this.drops.series(['full']);
    }
  }

  /** Messages held now. */
  get size(): number {
    return this.held.length - this.head;
  }

  /**
   * Whether `count` more messages of `bytes` bytes would be kept: always while Redis is up. A REST
   * trigger asks first, and answers 503 (delivering nothing) when they would not.
   */
  admits(count: number, bytes: number): boolean {
    if (!this.holding) return true;
    this.expire();
    return this.size + count <= this.bounds.maxFrames && this.bytes + bytes <= this.bounds.maxBytes;
  }

  /** Seconds until the oldest held message expires, freeing room: a refused caller's Retry-After. */
  retryAfterSeconds(): number {
    if (this.size === 0) return 1;
    return Math.max(1, Math.ceil((this.held[this.head].at + this.bounds.maxAgeMs - performance.now()) / 1000));
  }

  /** The sequence number of the next message sent: held messages keep that order, whenever their publish failed. */
  next(): number {
    return ++this.seq;
  }

  /** Holds message number `seq` (a publish that failed, or any while holding), in order; drops it when full. */
  hold(seq: number, channel: string, message: string): void {
    const bytes = Buffer.byteLength(message);
    this.expire();
    if (this.size + 1 > this.bounds.maxFrames || this.bytes + bytes > this.bounds.maxBytes) {
      if (this.dropped.full === 0) this.log.warn(`cluster: Redis unreachable and the outbox full (${this.size} messages, ${this.bytes} bytes): dropping messages for other nodes (counted in cluster_outbox_dropped_total)`);
      this.drop('full', 1);
    } else {
      // A publish answered late (failed, or retried elsewhere) may come after newer held ones.
      let i = this.held.length;
      while (i > this.head && this.held[i - 1].seq > seq) i--;
      this.held.splice(i, 0, { seq, channel, message, bytes, at: performance.now() });
      this.bytes += bytes;
      this.frames?.set(0, this.size);
    }
    if (this.holding) return;
    this.backSince = -1;
    this.startHolding();
  }

  /**
   * The link is back after a loss, or on a new master after a failover: the other nodes may not
   * have subscribed there yet, so new messages wait SETTLE_MS from now, even if none failed.
   */
  reconnected(): void {
    this.generation++;
    this.startHolding();
    this.backSince = performance.now();
  }

  private startHolding(): void {
    if (this.holding) return;
    this.holding = true;
    this.timer = setInterval(() => void this.probe(), PROBE_MS);
    this.timer.unref();
  }

  /** Stops trying (shutdown); what is held is lost with the node, as any frame in flight. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async probe(): Promise<void> {
    if (this.flushing) return;
    this.expire();
    this.flushing = true;
    try {
      const first = this.size > 0 ? this.held[this.head].channel : '';
      await this.link.command(first, ['PING']);
      if (this.backSince < 0) this.backSince = performance.now();
      if (performance.now() - this.backSince >= SETTLE_MS) await this.flush();
    } catch {
      this.backSince = -1;
    } finally {
      this.flushing = false;
    }
  }

  // Publishes what is held, in order, a chunk at a time; stops at a failure (kept, to try again).
  private async flush(): Promise<void> {
    let sent = 0;
    while (this.size > 0) {
      const chunk = this.held.slice(this.head, this.head + CHUNK);
      const results = await Promise.allSettled(chunk.map((h) => this.link.publish(h.channel, h.message)));
      const failed = results.findIndex((r) => r.status === 'rejected');
      const done = failed < 0 ? chunk.length : failed;
      for (let i = 0; i < done; i++) this.bytes -= chunk[i].bytes;
      this.head += done;
      sent += done;
      this.compact();
      if (failed >= 0) {
        this.backSince = -1;
        return;
      }
    }
    const { expired, full } = this.dropped;
    this.log.info(`cluster: Redis is back; sent ${sent} held message${sent === 1 ? '' : 's'} to the other nodes` + (expired + full > 0 ? ` (${expired} expired and ${full} refused while it was away)` : ''));
    this.dropped = { expired: 0, full: 0 };
    this.holding = false;
    this.stop();
  }

  // Drops held messages past the age bound, oldest first.
  private expire(): void {
    const oldest = performance.now() - this.bounds.maxAgeMs;
    let n = 0;
    while (this.head + n < this.held.length && this.held[this.head + n].at < oldest) {
      this.bytes -= this.held[this.head + n].bytes;
      n++;
    }
    if (n === 0) return;
    this.head += n;
    this.compact();
    if (this.dropped.expired === 0) {
      this.log.warn(`cluster: Redis unreachable for more than ${this.bounds.maxAgeMs / 1000} s: dropping messages for other nodes older than that (counted in cluster_outbox_dropped_total)`);
    }
    this.drop('expired', n);
  }

  private drop(reason: 'expired' | 'full', n: number): void {
    this.dropped[reason] += n;
    this.drops?.add(reason === 'expired' ? 0 : 1, n);
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.held.length) {
      this.held.splice(0, this.head);
      this.head = 0;
    }
    if (this.head === this.held.length) {
      this.held.length = 0;
      this.head = 0;
    }
    this.frames?.set(0, this.size);
  }
}
