import { totalmem } from 'node:os';
import { writeBody, writeJson } from './http-reply';
import type { TemplatedApp } from './uws';

/** Share of system memory held by this process, in percent (what /accept-traffic compares). */
export function memoryUsedPercent(): number {
  return (process.memoryUsage.rss() / totalmem()) * 100;
}

/**
 * Samples memory once a second so the upgrade path can refuse connections above the threshold
 * without reading /proc on every connect.
 */
export class MemoryWatch {
  over = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly thresholdPercent: number) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  private sample(): void {
    this.over = memoryUsedPercent() > this.thresholdPercent;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Registers `/`, `/ready`, `/accept-traffic` and `/usage` for load balancers and orchestrators. */
export function registerHealth(uws: TemplatedApp, state: { closing(): boolean; memoryThresholdPercent: number }): void {
  uws.get('/', (res) => {
    writeBody(res, 200, 'text/plain', 'OK');
  });
  uws.get('/ready', (res) => {
    if (state.closing()) writeBody(res, 503, 'text/plain', 'Shutting down');
    else writeBody(res, 200, 'text/plain', 'OK');
  });
  uws.get('/accept-traffic', (res) => {
    if (state.closing()) writeBody(res, 503, 'text/plain', 'Shutting down');
    else if (memoryUsedPercent() > state.memoryThresholdPercent) writeBody(res, 503, 'text/plain', 'Over the memory threshold');
    else writeBody(res, 200, 'text/plain', 'OK');
  });
  uws.get('/usage', (res) => {
    const usage = process.memoryUsage();
    const total = totalmem();
    writeJson(res, 200, {
      memory: { ...usage, systemTotal: total, percent: (usage.rss / total) * 100 },
    });
  });
  // Like the REST API: a known path asked with the wrong method is a 405, not the catch-all 404.
  for (const path of ['/', '/ready', '/accept-traffic', '/usage']) {
    uws.any(path, (res) => {
      writeJson(res, 405, { error: 'Method not allowed: use GET' });
    });
  }
}
