import { totalmem } from 'node:os';
import { statusLine, writeBody, writeJson } from './reply';
import type { TemplatedApp } from '../uws';

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

type Check = () => [status: number, contentType: string, body: string];

/** Registers `/`, `/ready`, `/accept-traffic` and `/usage` for load balancers and orchestrators. */
export function registerHealth(uws: TemplatedApp, state: { closing(): boolean; memoryThresholdPercent: number }): void {
  const text = (status: number, body: string): ReturnType<Check> => [status, 'text/plain', body];
  const checks: Record<string, Check> = {
    '/': () => text(200, 'OK'),
    '/ready': () => (state.closing() ? text(503, 'Shutting down') : text(200, 'OK')),
    '/accept-traffic': () =>
      state.closing() ? text(503, 'Shutting down') : memoryUsedPercent() > state.memoryThresholdPercent ? text(503, 'Over the memory threshold') : text(200, 'OK'),
    '/usage': () => {
      const usage = process.memoryUsage();
      const total = totalmem();
      return [200, 'application/json', JSON.stringify({ memory: { ...usage, systemTotal: total, percent: (usage.rss / total) * 100 } })];
    },
  };
  for (const [path, check] of Object.entries(checks)) {
    uws.get(path, (res) => {
      const [status, contentType, body] = check();
      writeBody(res, status, contentType, body);
    });
    // Load balancers often probe with HEAD: same status, no body.
    uws.head(path, (res) => {
      const [status] = check();
      res.cork(() => {
        res.writeStatus(statusLine(status)).endWithoutBody();
      });
    });
    // Like the REST API: a known path asked with the wrong method is a 405, not the catch-all 404.
    uws.any(path, (res) => {
      writeJson(res, 405, { error: 'Method not allowed: use GET' });
    });
  }
}
