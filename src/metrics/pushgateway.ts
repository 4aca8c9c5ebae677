// Pushing to a Prometheus Pushgateway, for setups where Prometheus cannot reach the nodes:
// every interval the node PUTs the same body GET /metrics serves to its own group,
// /metrics/job/<job>/instance/<instance>, so each push replaces the previous one.
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { OptionsError } from '../protocol/errors';
import type { Log } from '../log';
import type { Options } from '../options';
import type { Counter } from './counter';
import { CONTENT_TYPE, GZIP_MIN_BYTES } from './format';
import type { Histogram } from './histogram';
import type { PwsMetrics } from './pws-metrics';

const gzipAsync = promisify(gzip);

/** The options the driver reads, as validated by loadOptions. */
export type PushgatewayOptions = Pick<
  Options,
  'pushgatewayUrl' | 'pushgatewayIntervalMs' | 'pushgatewayJob' | 'pushgatewayInstance' | 'pushgatewayDeleteOnShutdown'
>;

// A push that takes longer than this counts as failed, whatever the interval.
const MAX_TIMEOUT_MS = 10_000;

// The shutdown push or delete gets less: exiting promptly matters more than one last figure.
const FINAL_TIMEOUT_MS = 2_000;

// From a gateway on loopback (a few ms) to the 10-second timeout.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

// Slot of each label-less family's only series.
const ONLY = 0;

// Longest part of a gateway's error answer quoted in the log.
const MAX_QUOTED_CHARS = 300;

/**
 * The path of the group `{job, instance}`: `/metrics/job/<job>/instance/<instance>`.
 * A value that is empty, holds a `/` (which the gateway splits on even as `%2F`) or is a
 * dot segment (which URL parsing would resolve away) goes in the gateway's `@base64` form,
 * URL-safe base64 with `=` for the empty value; any other value is percent-encoded, leaving
 * `:` readable so the usual `host:port` instance stays as it is.
 */
export function groupingPath(job: string, instance: string): string {
  return `/metrics/${pathLabel('job', job)}/${pathLabel('instance', instance)}`;
}

function pathLabel(name: string, value: string): string {
  if (value !== '' && value !== '.' && value !== '..' && !value.includes('/')) {
    try {
      return `${name}/${encodeURIComponent(value).replace(/%3A/g, ':')}`;
    } catch {
      // A lone surrogate: encodeURIComponent refuses it, base64 below turns it into U+FFFD.
    }
  }
  return `${name}@base64/${value === '' ? '=' : Buffer.from(value, 'utf8').toString('base64url')}`;
}

/**
 * The pushgateway driver: pushes every `pushgatewayIntervalMs`, counted from the end of the
 * previous push so two pushes never overlap, and on stop() pushes a last time or deletes the
 * group. A failed push is counted, logged once per outage, and retried at the next interval.
 */
export class PushgatewayDriver {
  /** `<prefix>pushgateway_pushes_total`: pushes made, and the shutdown delete. */
  readonly pushes: Counter;
  /** `<prefix>pushgateway_push_failures_total`: pushes (and the shutdown delete) that failed. */
  readonly failures: Counter;
  /** `<prefix>pushgateway_push_duration_seconds`: how long each push took, failed ones included. */
  readonly duration: Histogram;
  /** `<prefix>pushgateway_pushed_bytes_total`: body bytes sent, as sent (gzipped when large). */
  readonly bytes: Counter;
  /** Full URL of the node's group. */
  readonly target: string;
  /** How long one push may take before it counts as failed: min(interval, 10 s). */
  readonly timeoutMs: number;

  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<boolean> | null = null;
  // The request in flight, which stop() aborts so it stays within its budget. One controller per
  // request: a signal living as long as the process would keep one listener per push (Node 20
  // never drops the dependants of AbortSignal.any, nodejs/node#55351).
  private request: AbortController | null = null;
  private started = false;
  private running = false;
  private stopped: Promise<void> | null = null;
  // Failures since the last success; the outage's first one is logged, the rest only counted.
  private failuresInRow = 0;

  constructor(
    private readonly metrics: PwsMetrics,
    private readonly options: PushgatewayOptions,
    private readonly log: Log,
  ) {
    if (options.pushgatewayJob === '') {
      throw new OptionsError('METRICS_PUSHGATEWAY_JOB: must not be empty (the Pushgateway needs a job name)');
    }
    const { registry, prefix } = metrics;
    this.failures = registry.counter({
      name: `${prefix}pushgateway_push_failures_total`,
      help: 'Pushes to the Pushgateway that failed: gateway unreachable, non-2xx answer or timeout.',
    });
    // After the failures, which GET /metrics has always ended with.
    this.pushes = registry.counter({ name: `${prefix}pushgateway_pushes_total`, help: 'Pushes to the Pushgateway, and the delete at shutdown.' });
    this.duration = registry.histogram({
      name: `${prefix}pushgateway_push_duration_seconds`,
      help: 'Seconds each push to the Pushgateway took, failed ones included.',
      buckets: DURATION_BUCKETS,
    });
    this.bytes = registry.counter({ name: `${prefix}pushgateway_pushed_bytes_total`, help: 'Bytes of push bodies sent to the Pushgateway, gzipped when large.' });
    for (const family of [this.failures, this.pushes, this.duration, this.bytes]) family.series([]);
    this.target = options.pushgatewayUrl + groupingPath(options.pushgatewayJob, options.pushgatewayInstance);
    this.timeoutMs = Math.min(options.pushgatewayIntervalMs, MAX_TIMEOUT_MS);
  }

  /** Starts pushing: the first push right away, then one per interval. Idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.running = true;
    this.log.info(`metrics: pushing to ${this.target} every ${this.options.pushgatewayIntervalMs} ms`);
    this.schedule(0);
  }

  /**
   * Stops pushing, waits for a push in flight, then pushes a last time (so the gateway keeps
   * the node's final counts) or deletes the group when METRICS_PUSHGATEWAY_DELETE_ON_SHUTDOWN
   * is set. Never rejects; a failure is logged. Call it after the sockets are closed.
   */
  stop(): Promise<void> {
    this.stopped ??= this.finish();
    return this.stopped;
  }

  private async finish(): Promise<void> {
    this.running = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.request?.abort();
    if (this.inFlight !== null) await this.inFlight;
    if (!this.started) return;
    const method = this.options.pushgatewayDeleteOnShutdown ? 'DELETE' : 'PUT';
    const problem = await this.send(method, Math.min(this.timeoutMs, FINAL_TIMEOUT_MS));
    if (problem === null) {
      this.log.info(`metrics: ${method === 'PUT' ? 'last push to' : 'deleted'} ${this.target}`);
    } else {
      this.failures.add(ONLY, 1);
      this.log.warn(`metrics: ${method === 'PUT' ? 'last push to' : 'deleting'} ${this.target} failed: ${problem}`);
    }
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.inFlight = this.push().finally(() => {
        this.inFlight = null;
        if (this.running) this.schedule(this.options.pushgatewayIntervalMs);
      });
    }, delayMs);
    // A pending push must not keep the process alive.
    this.timer.unref();
  }

  // One periodic push, with the failure accounting; true when it landed.
  private async push(): Promise<boolean> {
    const problem = await this.send('PUT', this.timeoutMs);
    // Cut short by stop(): the last push that follows is the one that counts.
    if (!this.running) return problem === null;
    if (problem === null) {
      if (this.failuresInRow > 0) {
        this.log.info(`metrics: pushes to ${this.target} work again, after ${this.failuresInRow} failed`);
      }
      this.failuresInRow = 0;
      return true;
    }
    this.failures.add(ONLY, 1);
    if (this.failuresInRow++ === 0) {
      this.log.warn(
        `metrics: push to ${this.target} failed: ${problem}; retrying every ${this.options.pushgatewayIntervalMs} ms ` +
          `(further failures are counted in ${this.failures.name}, and logged again once pushes work)`,
      );
    }
    return false;
  }

  // One request, counted and timed; null on a 2xx answer, else what went wrong. Never rejects.
  private async send(method: 'PUT' | 'DELETE', timeoutMs: number): Promise<string | null> {
    const request = new AbortController();
    this.request = request;
    const timer = setTimeout(() => request.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    // A push waiting for its answer must not keep the process alive.
    timer.unref();
    const start = performance.now();
    try {
      const init: RequestInit = { method, signal: request.signal };
      if (method === 'PUT') {
        const text = this.metrics.render();
        const zip = Buffer.byteLength(text) >= GZIP_MIN_BYTES;
        const body = zip ? await gzipAsync(text) : text;
        init.body = body;
        init.headers = zip ? { 'Content-Type': CONTENT_TYPE, 'Content-Encoding': 'gzip' } : { 'Content-Type': CONTENT_TYPE };
        this.bytes.add(ONLY, typeof body === 'string' ? Buffer.byteLength(body) : body.length);
      }
      const res = await fetch(this.target, init);
      // Read the answer in full, so the connection can be reused, and quote it on failure.
      const text = await res.text();
      if (res.ok) return null;
      const quoted = text.trim().replace(/\s+/g, ' ');
      return `HTTP ${res.status}` + (quoted ? `: ${quoted.slice(0, MAX_QUOTED_CHARS)}` : '');
    } catch (err) {
      return describe(err, timeoutMs);
    } finally {
      clearTimeout(timer);
      if (this.request === request) this.request = null;
      this.pushes.add(ONLY, 1);
      this.duration.observe(ONLY, (performance.now() - start) / 1000);
    }
  }
}

// A fetch failure in words: undici hides the socket error behind `fetch failed`.
function describe(err: unknown, timeoutMs: number): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
    const cause = (err as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) return cause.message;
    return err.message;
  }
  return String(err);
}
