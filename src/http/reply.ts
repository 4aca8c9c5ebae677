import type { HttpResponse } from '../uws';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

/** The status line uWS expects, e.g. `404 Not Found`. */
export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? String(status);
}

/** Writes a complete HTTP answer in one corked write; returns the body's byte length. */
export function writeBody(res: HttpResponse, status: number, contentType: string, body: string | Buffer, headers?: Record<string, string>): number {
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('Content-Type', contentType);
    if (headers !== undefined) for (const name in headers) res.writeHeader(name, headers[name]);
    res.end(body);
  });
  return typeof body === 'string' ? Buffer.byteLength(body) : body.length;
}

/** Writes `body` as JSON with `status`; returns the body's byte length. */
export function writeJson(res: HttpResponse, status: number, body: unknown): number {
  return writeBody(res, status, 'application/json', JSON.stringify(body));
}
