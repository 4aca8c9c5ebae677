import { gzip } from 'node:zlib';
import { writeBody } from './http-reply';
import { CONTENT_TYPE } from './metrics/format';
import type { PwsMetrics } from './metrics/pws-metrics';
import type { HttpResponse, TemplatedApp } from './uws';

// Below this size gzip saves the scraper less than it costs us.
const GZIP_MIN_BYTES = 4096;

/**
 * `GET /metrics`: text format 0.0.4 always (never OpenMetrics, which would rename the seed's
 * counters), gzipped on zlib's thread pool when the scraper accepts it and the body is large.
 */
export function registerMetricsEndpoint(uws: TemplatedApp, metrics: PwsMetrics): void {
  uws.get('/metrics', (res, req) => {
    const acceptsGzip = /\bgzip\b/.test(req.getHeader('accept-encoding'));
    const body = metrics.render();
    if (!acceptsGzip || body.length < GZIP_MIN_BYTES) {
      writeBody(res, 200, CONTENT_TYPE, body);
      return;
    }
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    gzip(body, (err, zipped) => {
      if (aborted) return;
      if (err) writeBody(res, 200, CONTENT_TYPE, body);
      else writeBody(res, 200, CONTENT_TYPE, zipped, { 'Content-Encoding': 'gzip', Vary: 'Accept-Encoding' });
    });
  });
}

/** Answers 404 on /metrics when metrics are off, like any unknown route. */
export function metricsDisabled(res: HttpResponse): void {
  writeBody(res, 404, 'application/json', '{"error":"Metrics are disabled: start with METRICS_ENABLED=true"}');
}
