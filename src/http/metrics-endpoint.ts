import { gzip } from 'node:zlib';
import { statusLine, writeBody } from './reply';
import { CONTENT_TYPE, GZIP_MIN_BYTES } from '../metrics/format';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { HttpResponse, TemplatedApp } from '../uws';

/**
 * `GET /metrics`: text format 0.0.4 always (never OpenMetrics, which would rename the seed's
 * counters), gzipped on zlib's thread pool when the scraper accepts it and the body is large.
 * `HEAD /metrics`, for probes: the same status and type, no body.
 */
export function registerMetricsEndpoint(uws: TemplatedApp, metrics: PwsMetrics): void {
  // Nothing is rendered: a probe learns the endpoint answers, and the length a render would give
  // may be left out of a HEAD answer (RFC 9110 §9.3.2).
  uws.head('/metrics', (res) => {
    res.cork(() => {
      res.writeStatus(statusLine(200)).writeHeader('Content-Type', CONTENT_TYPE).endWithoutBody();
    });
  });
  uws.get('/metrics', (res, req) => {
    const acceptsGzip = gzipAccepted(req.getHeader('accept-encoding'));
    const body = metrics.render();
    // Bytes, not UTF-16 units: app ids may be non-ASCII.
    if (!acceptsGzip || Buffer.byteLength(body) < GZIP_MIN_BYTES) {
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

/** True when Accept-Encoding lists gzip with a non-zero weight (`gzip;q=0` means "not acceptable", RFC 9110 §12.5.3). */
function gzipAccepted(header: string): boolean {
  for (const part of header.split(',')) {
    const [coding, ...params] = part.split(';');
    if (coding.trim().toLowerCase() !== 'gzip') continue;
    const q = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}

/** Answers 404 on /metrics on a port that serves none: metrics are off, or on METRICS_SERVER_PORT. */
export function noMetricsHere(res: HttpResponse): void {
  writeBody(res, 404, 'application/json', '{"error":"No metrics on this port: they are off (METRICS_ENABLED) or served on METRICS_SERVER_PORT"}');
}
