import type { ChannelState } from '../adapter/adapter';
import type { Session } from './sessions';
import type { Apps } from '../apps/apps';
import type { Log } from '../log';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { HttpResponse } from '../uws';
import { addTotals, localTotals, occupancy, type Totals } from './figures';
import { rate } from './samples';
import type { ConsoleTap } from './tap';
import type { Figures, LogRow, Sample } from './web/wire';

/** Log rows go out at most this often, figures every FIGURES_EVERY flushes (once a second). */
const FLUSH_MS = 250;
const FIGURES_EVERY = 4;
/** Rows one flush carries at most; the rest are counted as dropped, so a busy app cannot flood the browser. */
const MAX_ROWS_PER_FLUSH = 100;

/** Other nodes' totals for an app (ADAPTER_DRIVER=redis), or null on one node. */
export type RemoteTotals = (appId: string) => Totals | null;

/** One browser's open event stream (server-sent events) for one app. */
interface Stream {
  res: HttpResponse;
  /** Its login: the stream ends when it is logged out or expires. */
  session: Session;
  appId: string;
  rows: LogRow[];
  dropped: number;
  /** The socket's buffer is full: rows are dropped (and counted) until it drains. */
  congested: boolean;
  closed: boolean;
  last: { totals: Totals; at: number } | null;
}

/**
 * The open consoles' event streams on this node. The flush timer exists only while a stream is
 * open; rows are batched into it, never written one by one.
 */
export class ConsoleStreams {
  private readonly streams = new Set<Stream>();
  private timer: NodeJS.Timeout | null = null;
  private ticks = 0;
  private figuring = false;

  constructor(
    private readonly apps: Apps,
    private readonly state: ChannelState,
    private readonly metrics: PwsMetrics | null,
    private readonly tap: ConsoleTap,
    private readonly log: Log,
    /** Told when the first stream opens and the last closes. */
    private readonly openChanged: (open: boolean) => void,
    private readonly remote: RemoteTotals = () => null,
  ) {}

  get open(): number {
    return this.streams.size;
  }

  /** Starts streaming an app's figures and log on `res` (the route checked the session and the app). */
  add(res: HttpResponse, session: Session, appId: string, history: Sample[]): void {
    const stream: Stream = { res, session, appId, rows: [], dropped: 0, congested: false, closed: false, last: null };
    res.onAborted(() => this.remove(stream));
    res.cork(() => {
      res.writeStatus('200 OK').writeHeader('Content-Type', 'text/event-stream').writeHeader('Cache-Control', 'no-store').writeHeader('X-Content-Type-Options', 'nosniff');
      res.write(`retry: 2000\n\n${message('samples', history)}`);
    });
    this.streams.add(stream);
    if (this.streams.size > 1) return;
    // The first stream gets its figures at once; later ones with the next round, so that every
    // stream's rates span a whole second.
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.openChanged(true);
    this.figures();
  }

  /** Queues a log row for the streams of its app. */
  push(row: LogRow): void {
    for (const stream of this.streams) {
      if (stream.appId !== row.app) continue;
      if (stream.rows.length < MAX_ROWS_PER_FLUSH && !stream.congested) stream.rows.push(row);
      else stream.dropped++;
    }
  }

  /** Rows another node skipped (over its own per-flush bound): counted on every stream, as the browser shows. */
  skipped(rows: number): void {
    for (const stream of this.streams) stream.dropped += rows;
  }

  /** A new chart point for an app. */
  sampled(appId: string, sample: Sample): void {
    for (const stream of this.streams) if (stream.appId === appId) this.write(stream, message('sample', sample));
  }

  /** Ends every stream (shutdown). */
  closeAll(): void {
    for (const stream of this.streams) {
      stream.closed = true;
      stream.res.cork(() => stream.res.end());
    }
    this.streams.clear();
    this.stopTimer();
  }

  private remove(stream: Stream): void {
    stream.closed = true;
    if (!this.streams.delete(stream) || this.streams.size > 0) return;
    this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
    this.openChanged(false);
  }

  private flush(): void {
    const now = Date.now();
    for (const stream of this.streams) {
      if (stream.session.closed === true || stream.session.expiresAt <= now) {
        this.remove(stream);
        stream.res.cork(() => stream.res.end());
        continue;
      }
      if (stream.rows.length === 0 && stream.dropped === 0) continue;
      if (stream.congested) continue;
      const batch = { rows: stream.rows, dropped: stream.dropped };
      stream.rows = [];
      stream.dropped = 0;
      this.write(stream, message('rows', batch));
    }
    if (++this.ticks % FIGURES_EVERY === 0) this.figures();
  }

  // One snapshot per app with an open stream, at most one round at a time (on Redis it is a read).
  private figures(): void {
    if (this.figuring) return;
    this.figuring = true;
    const ids = new Set<string>();
    for (const stream of this.streams) ids.add(stream.appId);
    const rounds = [...ids].map(async (id) => {
      const app = this.apps.findById(id);
      if (app === undefined) {
        for (const stream of this.streams) if (stream.appId === id) this.write(stream, message('gone', { app: id }));
        return;
      }
      const local = localTotals(app, this.metrics, this.tap);
      const others = this.remote(id);
      const totals = others === null ? local : addTotals(local, others);
      const now = performance.now();
      const occupied = await occupancy(app, this.state);
      for (const stream of this.streams) {
        if (stream.appId !== id) continue;
        // A new stream's first figures have no second before them: its rates read 0 (or null).
        const before = stream.last ?? { totals, at: now - 1000 };
        const seconds = (now - before.at) / 1000;
        const rates = { messagesIn: rate(totals.messagesIn, before.totals.messagesIn, seconds), messagesOut: rate(totals.messagesOut, before.totals.messagesOut, seconds) };
        stream.last = { totals, at: now };
        const figures: Figures = { ...occupied, webhooksSent: totals.webhooksSent, webhooksFailed: totals.webhooksFailed, rates };
        this.write(stream, message('figures', figures));
      }
    });
    Promise.all(rounds)
      .catch((err) => this.log.warn(`console: figures not read: ${(err as Error)?.message ?? err}`))
      .finally(() => {
        this.figuring = false;
      });
  }

  private write(stream: Stream, text: string): void {
    if (stream.closed) return;
    const { res } = stream;
    res.cork(() => {
      if (res.write(text) || stream.congested) return;
      stream.congested = true;
      res.onWritable(() => {
        stream.congested = false;
        return true;
      });
    });
  }
}

function message(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
