import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Hex HMAC-SHA256 of `data` under `secret`, as Pusher signs everything. */
export function sign(secret: string, data: string): string {
  return createHmac('sha256', secret).update(data).digest('hex');
}

/** Constant-time comparison of two hex signatures, so timing reveals nothing about the expected one. */
export function signaturesEqual(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Hex MD5 of a request body (`body_md5`). */
export function md5(body: Buffer): string {
  return createHash('md5').update(body).digest('hex');
}

/**
 * Checks a socket-side `auth` string (`key:signature`) against `signedText`:
 * `socket_id:channel[:channel_data]` for channels, `socket_id::user::user_data` for sign-in.
 */
export function socketAuthValid(appKey: string, secret: string, auth: string, signedText: string): boolean {
  const colon = auth.indexOf(':');
  if (colon < 0 || auth.slice(0, colon) !== appKey) return false;
  return signaturesEqual(sign(secret, signedText), auth.slice(colon + 1));
}
