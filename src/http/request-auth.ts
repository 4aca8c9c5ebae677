import type { AppConfig } from '../options';
import { HttpError } from '../protocol/errors';
import { md5, sign, signaturesEqual } from '../protocol/signatures';

/** How far `auth_timestamp` may be from this server's clock, as Pusher allows. */
export const MAX_CLOCK_SKEW_SECONDS = 600;

/**
 * Verifies Pusher's REST request signing: `auth_key`, `auth_timestamp`, `auth_version`,
 * `body_md5`, and `auth_signature` = HMAC-SHA256(secret, "METHOD\nPATH\nsorted query").
 * Throws HttpError(401) naming what is wrong.
 */
export function verifyRequest(app: AppConfig, method: string, path: string, query: URLSearchParams, body: Buffer, nowSeconds = Date.now() / 1000): void {
  const key = query.get('auth_key');
  const timestamp = query.get('auth_timestamp');
  const signature = query.get('auth_signature');
  if (key === null || timestamp === null || signature === null) {
    throw new HttpError(401, 'Missing auth_key, auth_timestamp or auth_signature');
  }
  if (key !== app.key) throw new HttpError(401, 'auth_key does not match the app');
  const version = query.get('auth_version');
  if (version !== null && version !== '1.0') throw new HttpError(401, 'auth_version must be 1.0');
  const ts = Number(timestamp);
  if (!Number.isFinite(ts) || Math.abs(nowSeconds - ts) > MAX_CLOCK_SKEW_SECONDS) {
    throw new HttpError(401, `auth_timestamp is more than ${MAX_CLOCK_SKEW_SECONDS} seconds away from the server time; check the clock`);
  }
  if (body.length > 0) {
    const bodyMd5 = query.get('body_md5');
    if (bodyMd5 === null || bodyMd5 !== md5(body)) throw new HttpError(401, 'body_md5 does not match the request body');
  }
  const params: [string, string][] = [];
  for (const [name, value] of query) if (name !== 'auth_signature') params.push([name.toLowerCase(), value]);
  params.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const signed = `${method}\n${path}\n${params.map(([n, v]) => `${n}=${v}`).join('&')}`;
  if (!signaturesEqual(sign(app.secret, signed), signature)) throw new HttpError(401, 'Invalid auth_signature');
}
