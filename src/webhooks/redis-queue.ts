import { createHash } from 'node:crypto';
import type { AppState } from '../apps/app-state';
import type { Keys } from '../cluster/keys';
import type { RedisLink } from '../cluster/redis-link';
import { script } from '../cluster/scripts';
import type { Log } from '../log';
import type { SentBatch, StreamJournal } from './journal';
import type { DeliveryTimings, WebhookStream } from './stream';
import type { WebhookEvent } from './webhook-events';
import type { WebhookEventType } from './webhook-config';
import type { DropReason, WebhookMetrics } from './webhook-metrics';

/** The consumer group of every webhook queue: the node that takes a queue over reads through it. */
const GROUP = 'senders';
/** Entries a node that took a queue over reads at a time. */
const READ_COUNT = 100;
/** Entries removed by one script. */
const REMOVE_SLICE = 500;

// Adds one event under the id the node chose (its own queue, so ids only grow), after trimming
// the queue to its bounds: entries older than the 5-minute horizon and, when full, the oldest.
// Trimming only finds entries whose removal failed (Redis was away); it returns what it took.
// The first entry creates the queue, its consumer group and its line in the app's list.
const APPEND = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], '${GROUP}', '0', 'MKSTREAM')
  redis.call('HSET', KEYS[2], KEYS[1], ARGV[2])
end
local expired = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[4])
local full = 0
local limit = tonumber(ARGV[3])
if redis.call('XLEN', KEYS[1]) >= limit then full = redis.call('XTRIM', KEYS[1], 'MAXLEN', limit - 1) end
redis.call('XADD', KEYS[1], ARGV[1], 'e', ARGV[5], 't', ARGV[6])
return {expired, full}
`);

// Entries delivered or given up: acknowledged (for a queue read through the group) and deleted.
const REMOVE = script(`
redis.call('XACK', KEYS[1], '${GROUP}', unpack(ARGV))
return redis.call('XDEL', KEYS[1], unpack(ARGV))
`);

// Takes a queue over from a node that is gone, unless another node already did.
const CLAIM = script(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`);

// A queue taken over and sent to its end: gone, unless yet another node took it since (0), or
// entries came in after its last read (2: a stopping node's last events, handed over).
const DONE = script(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('XLEN', KEYS[2]) > 0 then return 2 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1
`);

/** A URL of an app, as this node can send to it: how to make a stream for a queue taken over. */
export interface QueueRoute {
  app: AppState;
  url: string;
  stream(journal: StreamJournal): WebhookStream;
}

export interface RedisQueueContext {
  link: RedisLink;
  keys: Keys;
  /** This node's id. */
  node: string;
  /** A node whose heartbeat key is gone this long is dead: its queues are taken over. */
  nodeTimeoutMs: number;
  /** The bounds of a queue in Redis: queueLimit entries, none older than retryForMs. */
  timings: Pick<DeliveryTimings, 'queueLimit' | 'retryForMs'>;
  log: Log;
}

/**
 * Durable webhook queues (ADAPTER_DRIVER=redis). Each stream of this node writes every event to
 * a Redis Stream of its own, on the shard of its app, and deletes it once delivered or given
 * up; the stream itself keeps sending from memory. Every node looks for queues whose node's
 * heartbeat key is gone (stopped, or dead for the node timeout), takes each over with a
 * compare-and-set on the app's list of queues, and sends what is left, in order: what an
 * earlier taker had read is claimed from the consumer group (XAUTOCLAIM), the rest read with
 * XREADGROUP. The POST the gone node was sending is sent again with the same bytes and id.
 */
export class RedisWebhookQueues {
  private readonly routes = new Map<AppState, Map<string, QueueRoute>>();
  private readonly takenOver = new Map<string, TakenOver>();
  /** Commands not answered yet: a shutdown waits for them before closing the connection. */
  private readonly writing = new Set<Promise<unknown>>();
  private metrics: WebhookMetrics | null = null;
  private timer: NodeJS.Timeout | null = null;
  private started = false;
  private scanning: Promise<void> | null = null;
  // As for reaping (heartbeat.ts): no take-over until every live node has had a node timeout to
  // beat, at start and after Redis failed, when heartbeat keys of live nodes may have expired.
  private notBefore: number;

  constructor(readonly ctx: RedisQueueContext) {
    this.notBefore = performance.now() + ctx.nodeTimeoutMs;
  }

  /** The queue of this node's stream to `url`. */
  journal(app: AppState, url: string): StreamJournal {
    const { keys, node } = this.ctx;
    return new OwnQueue(this, app, keys.webhookQueue(app, node, digest(url)), keys.webhookQueues(app));
  }

  /** Takes over the queues of these URLs too, when their nodes stop or die. */
  addRoutes(routes: QueueRoute[]): void {
    for (const route of routes) {
      let byDigest = this.routes.get(route.app);
      if (byDigest === undefined) this.routes.set(route.app, (byDigest = new Map()));
      byDigest.set(digest(route.url), route);
    }
    this.scanWhenNeeded();
  }

  /** The app was removed: its queues are no longer taken over from nodes that die. */
  removeApp(app: AppState): void {
    this.routes.delete(app);
  }

  /** Starts looking for queues to take over, every quarter of the node timeout, once some app has a webhook URL. */
  start(metrics: WebhookMetrics | null): void {
    this.metrics = metrics;
    this.started = true;
    this.scanWhenNeeded();
  }

  // No timer while no app has a webhook (apps from a database may gain one later).
  private scanWhenNeeded(): void {
    if (!this.started || this.timer !== null || this.routes.size === 0) return;
    this.timer = setInterval(() => void this.scan(), Math.max(250, this.ctx.nodeTimeoutMs / 4));
    this.timer.unref();
  }

  /**
   * Shutdown: stops taking over, hands the queues taken over back (their entries stay in Redis
   * for the next node), and waits for the writes under way.
   */
  async handOver(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    await this.scanning;
    for (const queue of this.takenOver.values()) queue.handOver();
    this.takenOver.clear();
    await Promise.all(this.writing);
  }

  /** Runs a command whose failure only costs durability: counted in the debug log, never thrown. */
  write<T>(command: Promise<T>, what: string): Promise<T | null> {
    const done = command.then(
      (reply) => reply,
      (err) => {
        if (this.ctx.log.debugEnabled) this.ctx.log.debug(`webhooks: redis ${what} failed: ${(err as Error)?.message ?? err}`);
        return null;
      },
    );
    this.writing.add(done);
    void done.finally(() => this.writing.delete(done));
    return done;
  }

  /** Entries Redis trimmed from a queue: counted and logged as given up. */
  trimmed(app: AppState, reason: DropReason, n: number): void {
    const { metrics } = this;
    if (metrics !== null) metrics.eventsDropped.add(metrics.dropSlot(app, reason), n);
    const { queueLimit, retryForMs } = this.ctx.timings;
    const why = reason === 'expired' ? `older than ${retryForMs / 1000} s` : `beyond the bound of ${queueLimit}`;
    this.ctx.log.warn(`webhooks: app ${app.config.id}: Redis dropped ${n} queued event${n === 1 ? '' : 's'} ${why}`);
  }

  forget(queue: string): void {
    this.takenOver.delete(queue);
  }

  private scan(): Promise<void> {
    this.scanning ??= this.scanOnce().finally(() => (this.scanning = null));
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    if (performance.now() < this.notBefore) return;
    const { link, keys, node, log } = this.ctx;
    try {
      for (const [app, byDigest] of this.routes) {
        const list = keys.webhookQueues(app);
        for (const [queue, owner] of pairs(await link.command(list, ['HGETALL', list]))) {
          if (owner === node || this.takenOver.has(queue)) continue;
          if (Number(await link.command(keys.heartbeat(owner), ['EXISTS', keys.heartbeat(owner)])) === 1) continue;
          const route = byDigest.get(queue.slice(queue.lastIndexOf(':') + 1));
          if (route === undefined) continue;
          if (Number(await link.eval(CLAIM, [list], [queue, owner, node])) !== 1) continue;
          log.info(`webhooks: app ${app.config.id}: taking over the queue of node ${owner}, which stopped or died`);
          const taken = new TakenOver(this, route, queue, list);
          this.takenOver.set(queue, taken);
          taken.fetch();
        }
      }
    } catch (err) {
      this.notBefore = performance.now() + this.ctx.nodeTimeoutMs;
      if (log.debugEnabled) log.debug(`webhooks: looking for queues to take over failed: ${(err as Error)?.message ?? err}`);
    }
  }
}

/** What a queue of either kind does the same: record the POST being sent, remove entries. */
abstract class Queue implements StreamJournal {
  constructor(
    protected readonly queues: RedisWebhookQueues,
    protected readonly app: AppState,
    /** The Redis Stream's key. */
    protected readonly key: string,
    /** The app's list of queues. */
    protected readonly list: string,
  ) {}

  abstract append(event: WebhookEvent, timeMs: number): string;

  async sending(batch: SentBatch): Promise<void> {
    const key = this.queues.ctx.keys.webhookSending(this.key);
    const fields = ['id', batch.webhookId, 't', String(batch.timeMs), 'first', batch.firstId, 'last', batch.lastId];
    await this.queues.write(this.queues.ctx.link.command(key, ['HSET', key, ...fields]), 'HSET');
  }

  remove(ids: string[]): void {
    // In slices: Lua's unpack() fails on some thousands of arguments, and a backlog given up at once holds up to 10,000.
    for (let i = 0; i < ids.length; i += REMOVE_SLICE) {
      void this.queues.write(this.queues.ctx.link.eval(REMOVE, [this.key], ids.slice(i, i + REMOVE_SLICE)), 'XDEL');
    }
  }
}

/** This node's queue of one stream: written as events are queued, read only by a node taking it over. */
class OwnQueue extends Queue {
  private lastMs = 0;
  private seq = 0;

  // Ids are chosen here, so that the stream knows them at once: this node alone appends, and
  // they only grow (milliseconds of this clock, never backwards, then a sequence number).
  append(event: WebhookEvent, timeMs: number): string {
    const ms = Math.max(timeMs, this.lastMs);
    this.seq = ms === this.lastMs ? this.seq + 1 : 0;
    this.lastMs = ms;
    const id = `${ms}-${this.seq}`;
    const { link, node, timings } = this.queues.ctx;
    const args = [id, node, String(timings.queueLimit), `${timeMs - timings.retryForMs}-0`, event.json, String(timeMs)];
    void this.queues.write(link.eval(APPEND, [this.key, this.list], args), 'XADD').then((reply) => {
      if (!Array.isArray(reply)) return;
      const [expired, full] = reply.map(Number);
      if (expired > 0) this.queues.trimmed(this.app, 'expired', expired);
      if (full > 0) this.queues.trimmed(this.app, 'full', full);
    });
    return id;
  }
}

/** A gone node's queue, sent by this node to its end through the consumer group. */
class TakenOver extends Queue {
  readonly stream: WebhookStream;
  private claiming = true;
  private cursor = '0-0';
  private fetching = false;
  private first = true;
  /** Sent to its end, or handed over at shutdown: nothing more to read. */
  private over = false;

  constructor(queues: RedisWebhookQueues, route: QueueRoute, key: string, list: string) {
    super(queues, route.app, key, list);
    this.stream = route.stream(this);
  }

  append(): string {
    throw new Error('a queue taken over gets no new events');
  }

  idle(): void {
    this.fetch();
  }

  /** Shutdown: stops reading; what is left stays in Redis for the next node. */
  handOver(): void {
    this.over = true;
    this.stream.handOver();
  }

  /** Reads the next entries into the stream: first those an earlier taker had read, then the rest. */
  fetch(): void {
    if (this.fetching || this.over) return;
    this.fetching = true;
    this.read().then(
      (more) => {
        this.fetching = false;
        if (more) this.fetch();
      },
      (err) => {
        this.fetching = false;
        const { log } = this.queues.ctx;
        if (log.debugEnabled) log.debug(`webhooks: reading ${this.key} failed: ${(err as Error)?.message ?? err}`);
        setTimeout(() => this.fetch(), 1000).unref();
      },
    );
  }

  // True when it should read again at once (nothing read, but not at the end yet).
  private async read(): Promise<boolean> {
    const { link, node } = this.queues.ctx;
    let entries: Entry[];
    const claimed = this.claiming;
    if (claimed) {
      const reply = (await link.command(this.key, ['XAUTOCLAIM', this.key, GROUP, node, '0', this.cursor, 'COUNT', String(READ_COUNT)])) as [string, Entry[]];
      this.cursor = String(reply[0]);
      if (this.cursor === '0-0') this.claiming = false;
      entries = reply[1];
    } else {
      const reply = await link.command(this.key, ['XREADGROUP', 'GROUP', GROUP, node, 'COUNT', String(READ_COUNT), 'STREAMS', this.key, '>']);
      entries = pairs<Entry[]>(reply)[0]?.[1] ?? [];
    }
    // XAUTOCLAIM of Redis 6.2 names entries deleted meanwhile with no fields.
    entries = entries.filter((entry) => Array.isArray(entry[1]));
    if (entries.length === 0) {
      if (claimed) return true;
      await this.done();
      return false;
    }
    const resend = this.first ? await this.resend(entries[0][0]) : undefined;
    this.first = false;
    this.stream.takeOver(
      entries.map(([id, fields]) => ({ id, event: eventOf(field(fields, 'e')), timeMs: Number(field(fields, 't')) })),
      resend,
    );
    return false;
  }

  // The POST the gone node was sending, when it starts with the first entry left.
  private async resend(firstId: string): Promise<SentBatch | undefined> {
    const key = this.queues.ctx.keys.webhookSending(this.key);
    const record = new Map(pairs(await this.queues.ctx.link.command(key, ['HGETALL', key])));
    if (record.get('first') !== firstId) return undefined;
    return { webhookId: record.get('id')!, timeMs: Number(record.get('t')), firstId, lastId: record.get('last')! };
  }

  // Sent to its end: the queue goes, unless yet another node took it over since.
  private async done(): Promise<void> {
    const { link, node, keys } = this.queues.ctx;
    this.over = true;
    if (Number(await link.eval(DONE, [this.list, this.key, keys.webhookSending(this.key)], [this.key, node])) === 2) {
      // Entries came in after the last read: read on, from any left pending.
      this.over = false;
      this.claiming = true;
      this.cursor = '0-0';
      setTimeout(() => this.fetch(), 1000).unref();
      return;
    }
    this.queues.forget(this.key);
  }
}

/** A stream entry as Redis answers it: its id and its fields as [name, value, …]. */
type Entry = [string, string[]];

function field(fields: string[], name: string): string {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return '';
}

// Only the JSON text is sent; type and channel served the filters, on the node that queued it.
function eventOf(json: string): WebhookEvent {
  const { name, channel } = JSON.parse(json) as { name: WebhookEventType; channel: string };
  return { type: name, channel, json };
}

/** A URL's digest in queue keys: short, and free of the colons that separate the key's parts. */
function digest(url: string): string {
  return createHash('sha1').update(url).digest('hex').slice(0, 16);
}

// A map in a reply (HGETALL, XREADGROUP's streams), however the client shapes it: an object, a
// Map, [[key, value], …] or [key, value, …]; null is empty.
function pairs<T = string>(reply: unknown): [string, T][] {
  if (reply === null || reply === undefined) return [];
  if (reply instanceof Map) return [...reply].map(([k, v]) => [String(k), v as T]);
  if (!Array.isArray(reply)) return Object.entries(reply as Record<string, T>);
  if (reply.every((item) => Array.isArray(item) && item.length === 2)) return reply.map(([k, v]) => [String(k), v as T]);
  const out: [string, T][] = [];
  for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), reply[i + 1] as T]);
  return out;
}
