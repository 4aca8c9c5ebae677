import type { Apps } from '../apps/apps';
import type { Log } from '../log';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { RedisLink } from '../cluster/redis-link';
import { addTotals, localTotals, type Totals } from './figures';
import type { ConsoleTap, RowSink } from './tap';
import type { LogRow } from './web/wire';

/** The Redis names the relay uses (from the cluster's Keys). */
export interface RelayKeys {
  /** Set, with a short TTL, while some node has a console open. */
  open: string;
  /** The pub/sub channel every node's rows and totals go out on while it is set. */
  channel: string;
}

// A node with an open console renews the key this often; it lives a little over twice that.
const RENEW_MS = 3000;
const OPEN_TTL_MS = 7000;
// Every node with CONSOLE_ENABLED looks at the key this often: the log starts at most this late on other nodes.
const WATCH_MS = 2000;
const FLUSH_MS = 250;
const TOTALS_EVERY = 4;
/** Rows one node publishes per flush at most; the rest are counted, as on the streams. */
const MAX_ROWS_PER_FLUSH = 100;
// A node's totals older than this are of a node that left or lost Redis: left out of the sums.
const TOTALS_FRESH_MS = 3000;

interface Batch {
  node: string;
  rows: LogRow[];
  dropped: number;
  totals: Record<string, Totals> | null;
}

/**
 * The console across a cluster (ADAPTER_DRIVER=redis). Nothing goes to Redis while no console is
 * open anywhere: a node serving a console keeps a key alive, every node with CONSOLE_ENABLED checks
 * it on a slow timer, and only while it is there do nodes publish their log rows (batched) and
 * totals on one channel, which only nodes serving a console subscribe to.
 */
export class ConsoleRelay {
  /** True while some node (this one included) has a console open, as last read. */
  openElsewhere = false;
  private here = false;
  private deliver: RowSink = () => {};
  private skipped: (rows: number) => void = () => {};
  private changed: () => void = () => {};
  private watchTimer: NodeJS.Timeout | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private ticks = 0;
  private rows: LogRow[] = [];
  private dropped = 0;
  private readonly remote = new Map<string, { totals: Record<string, Totals>; at: number }>();
  private readonly listener = (message: string) => this.received(message);

  constructor(
    private readonly link: RedisLink,
    private readonly keys: RelayKeys,
    private readonly node: string,
    private readonly apps: Apps,
    private readonly metrics: PwsMetrics | null,
    private readonly tap: ConsoleTap,
    private readonly log: Log,
  ) {}

  /** Where rows for this node's streams go (its own and the other nodes'), and the counts of rows other nodes skipped. */
  deliverTo(sink: RowSink, skipped: (rows: number) => void): void {
    this.deliver = sink;
    this.skipped = skipped;
  }

  /** Starts watching for consoles open anywhere; `changed` is told when that flips. */
  start(changed: () => void): void {
    this.changed = changed;
    this.watchTimer = setInterval(() => void this.watch(), WATCH_MS);
    this.watchTimer.unref();
    void this.watch();
  }

  async stop(): Promise<void> {
    for (const timer of [this.watchTimer, this.renewTimer, this.flushTimer]) if (timer !== null) clearInterval(timer);
    this.watchTimer = this.renewTimer = this.flushTimer = null;
    if (this.here) await this.link.unsubscribe(this.keys.channel, this.listener).catch(() => undefined);
  }

  /** A row from this node: to its own streams, and to the other nodes' while a console is open anywhere. */
  local(row: LogRow): void {
    row.node = this.node;
    if (this.here) this.deliver(row);
    if (!this.openElsewhere) return;
    if (this.rows.length < MAX_ROWS_PER_FLUSH) this.rows.push(row);
    else this.dropped++;
  }

  /** Other nodes' latest totals for an app, summed; null when none is known. */
  totals(appId: string): Totals | null {
    const now = Date.now();
    let sum: Totals | null = null;
    for (const [node, entry] of this.remote) {
      if (now - entry.at > TOTALS_FRESH_MS) {
        this.remote.delete(node);
        continue;
      }
      const totals = entry.totals[appId];
      if (totals !== undefined) sum = sum === null ? totals : addTotals(sum, totals);
    }
    return sum;
  }

  /** Redis lost this node's subscriptions (a reconnection): subscribe again while a console is open here. */
  resubscribe(): void {
    if (this.here) this.link.subscribe(this.keys.channel, this.listener).catch((err) => this.log.warn(`console: not receiving other nodes' events: ${(err as Error)?.message ?? err}`));
  }

  /** This node opened its first console or closed its last. */
  openHere(open: boolean): void {
    if (open === this.here) return;
    this.here = open;
    if (open) {
      this.link.subscribe(this.keys.channel, this.listener).catch((err) => this.log.warn(`console: not receiving other nodes' events: ${(err as Error)?.message ?? err}`));
      this.renewTimer = setInterval(() => void this.renew(), RENEW_MS);
      this.renewTimer.unref();
      void this.renew();
      this.setOpen(true);
      return;
    }
    if (this.renewTimer !== null) clearInterval(this.renewTimer);
    this.renewTimer = null;
    this.remote.clear();
    this.link.unsubscribe(this.keys.channel, this.listener).catch(() => undefined);
  }

  private async renew(): Promise<void> {
    try {
      await this.link.command(this.keys.open, ['SET', this.keys.open, this.node, 'PX', String(OPEN_TTL_MS)]);
    } catch (err) {
      this.log.warn(`console: cannot mark a console open: ${(err as Error)?.message ?? err}`);
    }
  }

  private async watch(): Promise<void> {
    try {
      const open = Number(await this.link.command(this.keys.open, ['EXISTS', this.keys.open])) === 1;
      this.setOpen(open || this.here);
    } catch {
      // Redis is away: the log stays as it was until the next look; the cluster code reports the outage.
    }
  }

  private setOpen(open: boolean): void {
    if (open === this.openElsewhere) return;
    this.openElsewhere = open;
    if (open) {
      this.flushTimer = setInterval(() => this.flush(), FLUSH_MS);
      this.flushTimer.unref();
    } else {
      if (this.flushTimer !== null) clearInterval(this.flushTimer);
      this.flushTimer = null;
      this.rows = [];
      this.dropped = 0;
    }
    this.changed();
  }

  private flush(): void {
    const withTotals = ++this.ticks % TOTALS_EVERY === 0;
    if (this.rows.length === 0 && this.dropped === 0 && !withTotals) return;
    const batch: Batch = { node: this.node, rows: this.rows, dropped: this.dropped, totals: withTotals ? this.ownTotals() : null };
    this.rows = [];
    this.dropped = 0;
    this.link.publish(this.keys.channel, JSON.stringify(batch)).catch(() => undefined);
  }

  private ownTotals(): Record<string, Totals> {
    const out: Record<string, Totals> = {};
    for (const app of this.apps.all()) out[app.config.id] = localTotals(app, this.metrics, this.tap);
    return out;
  }

  private received(message: string): void {
    let batch: Batch;
    try {
      batch = JSON.parse(message) as Batch;
    } catch {
      return;
    }
    if (batch.node === this.node) return;
    if (batch.totals !== null) this.remote.set(batch.node, { totals: batch.totals, at: Date.now() });
    for (const row of batch.rows) this.deliver(row);
    if (batch.dropped > 0) this.skipped(batch.dropped);
  }
}
