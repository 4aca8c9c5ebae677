import { createHmac } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';

/** How one POST ended: answered 2xx, or why not (`HTTP 503`, `ECONNREFUSED`, `timed out`…). */
export type Outcome = { ok: true } | { ok: false; reason: string };

/** X-Pusher-Signature: the hex HMAC-SHA256 of the exact body bytes with the app secret. */
export function signature(secret: string, body: Buffer): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * POSTs signed webhook bodies with node:http(s). Connections are kept alive per receiver, and
 * never shared by two requests at once: a receiver that hangs holds only its own connection.
 * Redirects are not followed (a 3xx is a failure like any non-2xx, as for Pusher).
 */
export class WebhookSender {
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent = new https.Agent({ keepAlive: true });

  /**
   * Sends one body; never rejects. `webhookId` is the same for every attempt of one POST, on
   * any node, so a receiver can drop a duplicate. `signal` ends the request early (request
   * timeout, shutdown): the outcome is then a failure with the signal's reason.
   */
  post(url: URL, key: string, secret: string, extraHeaders: Record<string, string>, body: Buffer, webhookId: string, signal: AbortSignal): Promise<Outcome> {
    const secure = url.protocol === 'https:';
    const headers = {
      ...extraHeaders,
      'Content-Type': 'application/json',
      'Content-Length': String(body.length),
      'X-Pusher-Key': key,
      'X-Pusher-Signature': signature(secret, body),
      'X-Pusher-Webhook-Id': webhookId,
    };
    return new Promise((resolve) => {
      let settled = false;
      const finish = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', abort);
        resolve(outcome);
      };
      const request = (secure ? https : http).request(url, { method: 'POST', headers, agent: secure ? this.httpsAgent : this.httpAgent });
      request.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, reason: err.code ?? err.message }));
      const abort = () => {
        finish({ ok: false, reason: String(signal.reason ?? 'aborted') });
        request.destroy();
      };
      if (signal.aborted) return abort();
      signal.addEventListener('abort', abort, { once: true });
      request.on('response', (response) => {
        const status = response.statusCode ?? 0;
        // Read the answer to its end so the connection can carry the next request.
        response.on('error', () => finish({ ok: false, reason: `HTTP ${status}, answer cut off` }));
        response.on('end', () => finish(status >= 200 && status < 300 ? { ok: true } : { ok: false, reason: `HTTP ${status}` }));
        response.resume();
      });
      request.end(body);
    });
  }

  /** Closes the idle kept-alive connections. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
