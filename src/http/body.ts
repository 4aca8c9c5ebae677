import { HttpError } from '../protocol/errors';
import type { HttpResponse } from '../uws';

/**
 * Reads a request body of at most `limit` bytes. Over the limit (by Content-Length or by what
 * arrives) it rejects with 413 without buffering the rest. The caller registers onAborted first,
 * as uWS requires before any asynchronous work.
 */
export function readBody(res: HttpResponse, contentLength: string, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (contentLength !== '' && Number(contentLength) > limit) {
      reject(new HttpError(413, `Request body is larger than the limit of ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((chunk, isLast) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > limit) {
        failed = true;
        reject(new HttpError(413, `Request body is larger than the limit of ${limit} bytes`));
        return;
      }
      // uWS reuses the chunk's memory after this callback returns, so it must be copied.
      chunks.push(Buffer.from(chunk.slice(0)));
      if (isLast) resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    });
  });
}
