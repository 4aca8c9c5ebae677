import type { Apps } from '../apps/apps';
import type { PwsMetrics } from '../metrics/pws-metrics';
import { localTotals, type Totals } from './figures';
import type { ConsoleTap } from './tap';
import type { Sample } from './web/wire';

/** Milliseconds between samples; the chart spans SAMPLES of them (15 minutes). */
const SAMPLE_INTERVAL_MS = 5000;
const SAMPLES = (15 * 60 * 1000) / SAMPLE_INTERVAL_MS;

/**
 * The last 15 minutes of each app's figures on this node, sampled in-process, so the chart needs
 * no Prometheus. Its timer exists only with CONSOLE_ENABLED; it reads counters and map sizes only.
 */
export class SampleRings {
  private readonly rings = new Map<string, { samples: Sample[]; last: Totals }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly apps: Apps,
    private readonly metrics: PwsMetrics | null,
    private readonly tap: ConsoleTap,
    /** Told of each new sample, for the open streams. */
    private readonly sampled: (appId: string, sample: Sample) => void,
  ) {}

  start(): void {
    this.take(Date.now());
    this.timer = setInterval(() => this.take(Date.now()), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** The app's samples, oldest first. */
  of(appId: string): Sample[] {
    return this.rings.get(appId)?.samples ?? [];
  }

  private take(now: number): void {
    const seen = new Set<string>();
    // The app set may change at run time: read it afresh every time.
    for (const app of this.apps.all()) {
      const id = app.config.id;
      seen.add(id);
      const totals = localTotals(app, this.metrics, this.tap);
      let ring = this.rings.get(id);
      if (ring === undefined) this.rings.set(id, (ring = { samples: [], last: totals }));
      let members = 0;
      for (const channel of app.channels.values()) members += channel.members?.size ?? 0;
      const seconds = SAMPLE_INTERVAL_MS / 1000;
      const sample: Sample = {
        t: now,
        connections: app.sockets.size,
        channels: app.channels.size,
        members,
        messagesIn: rate(totals.messagesIn, ring.last.messagesIn, seconds),
        messagesOut: rate(totals.messagesOut, ring.last.messagesOut, seconds),
        webhooksSent: rate(totals.webhooksSent, ring.last.webhooksSent, seconds)!,
        webhooksFailed: rate(totals.webhooksFailed, ring.last.webhooksFailed, seconds)!,
      };
      ring.last = totals;
      ring.samples.push(sample);
      if (ring.samples.length > SAMPLES) ring.samples.shift();
      this.sampled(id, sample);
    }
    for (const id of this.rings.keys()) if (!seen.has(id)) this.rings.delete(id);
  }
}

/** Per second between two totals; a node that left (totals went down) reads as 0, not negative. */
export function rate(now: number | null, before: number | null, seconds: number): number | null {
  if (now === null || before === null) return null;
  return Math.max(0, (now - before) / seconds);
}
