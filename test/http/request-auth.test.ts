// REST request signing (src/request-auth.ts): requests are signed here with node:crypto, apart
// from src/, and then altered one part at a time to prove each part is checked.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { startServer, type TestServer } from '../helpers/server';

interface Signing {
  method: 'GET' | 'POST';
  path: string;
  params?: Record<string, string>;
  body?: string;
  key?: string;
  secret?: string;
  /** Seconds since the epoch; now when omitted. */
  timestamp?: number;
  /** Replaces auth_version; null leaves it out. */
  version?: string | null;
  /** Replaces the computed body_md5; null leaves it out. */
  bodyMd5?: string | null;
  /** Signs this text instead of the canonical one. */
  signedText?: (canonical: string) => string;
  /** Replaces the computed signature. */
  signature?: (computed: string) => string;
  /** Parameters sent after signing, replacing signed ones. */
  sentParams?: Record<string, string>;
  /** Sends the query in this key order instead of the signing order. */
  sendOrder?: string[];
  /** Leaves these parameters out of the sent query. */
  omit?: string[];
}

/** Sends a request signed as Pusher documents: HMAC-SHA256(secret, "METHOD\nPATH\nsorted query"). */
async function send(s: TestServer, o: Signing): Promise<{ status: number; contentType: string | null; body: any }> {
  const body = o.body ?? '';
  const query: Record<string, string> = { ...o.params, auth_key: o.key ?? 'app-key', auth_timestamp: String(o.timestamp ?? Math.floor(Date.now() / 1000)) };
  if (o.version !== null) query.auth_version = o.version ?? '1.0';
  if (body !== '' && o.bodyMd5 !== null) query.body_md5 = o.bodyMd5 ?? createHash('md5').update(body).digest('hex');
  const canonical = `${o.method}\n${o.path}\n${Object.keys(query)
    .sort()
    .map((k) => `${k}=${query[k]}`)
    .join('&')}`;
  const computed = createHmac('sha256', o.secret ?? 'app-secret')
    .update(o.signedText ? o.signedText(canonical) : canonical)
    .digest('hex');
  const sent: Record<string, string> = { ...query, ...o.sentParams, auth_signature: o.signature ? o.signature(computed) : computed };
  for (const name of o.omit ?? []) delete sent[name];
  const order = o.sendOrder ?? Object.keys(sent);
  const qs = order.map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(sent[k])}`).join('&');
  const res = await fetch(s.url(`${o.path}?${qs}`), { method: o.method, body: o.method === 'POST' ? body : undefined });
  return { status: res.status, contentType: res.headers.get('content-type'), body: await res.json() };
}

const EVENT = JSON.stringify({ name: 'ev', data: 'hello', channel: 'news' });
const POST_EVENT: Signing = { method: 'POST', path: '/apps/app-id/events', body: EVENT };
const GET_CHANNELS: Signing = { method: 'GET', path: '/apps/app-id/channels' };

function unauthorized(error: string) {
  return { status: 401, contentType: 'application/json', body: { error } };
}

const STALE = unauthorized('auth_timestamp is more than 600 seconds away from the server time; check the clock');

async function withServer(fn: (s: TestServer) => Promise<void>): Promise<void> {
  const s = await startServer();
  try {
    await fn(s);
  } finally {
    await s.stop();
  }
}

describe('a correctly signed request', () => {
  test('is accepted for a POST with a body and for a GET with parameters', () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, POST_EVENT), { status: 200, contentType: 'application/json', body: {} });
      assert.deepEqual(await send(s, { ...GET_CHANNELS, params: { filter_by_prefix: 'presence-', info: 'user_count' } }), {
        status: 200,
        contentType: 'application/json',
        body: { channels: {} },
      });
    }));

  test('is accepted whatever order the query is sent in: the server sorts before checking', () =>
    withServer(async (s) => {
      const sendOrder = ['info', 'auth_signature', 'filter_by_prefix', 'auth_version', 'auth_timestamp', 'auth_key'];
      assert.equal((await send(s, { ...GET_CHANNELS, params: { filter_by_prefix: 'presence-', info: 'user_count' }, sendOrder })).status, 200);
    }));

  test('keeps "+" a plus sign in query values, as the pusher SDK signs them raw', () =>
    withServer(async (s) => {
      // Percent-encoded, and raw as the SDK sends it: both must verify.
      assert.equal((await send(s, { ...GET_CHANNELS, params: { filter_by_prefix: 'a b+c' } })).status, 200);
      const res = await s.sdk().get({ path: '/channels', params: { filter_by_prefix: 'a b+c' } });
      assert.deepEqual([res.status, await res.json()], [200, { channels: {} }]);
    }));

  test('is accepted without auth_version, which defaults to 1.0', () =>
    withServer(async (s) => {
      assert.equal((await send(s, { ...POST_EVENT, version: null })).status, 200);
    }));

  test('is accepted with an auth_timestamp 599 s in the past or in the future', () =>
    withServer(async (s) => {
      const now = Math.floor(Date.now() / 1000);
      assert.equal((await send(s, { ...POST_EVENT, timestamp: now - 599 })).status, 200);
      assert.equal((await send(s, { ...GET_CHANNELS, timestamp: now + 599 })).status, 200);
    }));
});

describe('a request is refused with 401 and a JSON error when', () => {
  test('auth_timestamp is 601 s old', () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, { ...POST_EVENT, timestamp: Math.floor(Date.now() / 1000) - 601 }), STALE);
    }));

  test('auth_timestamp is 601 s ahead', () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, { ...GET_CHANNELS, timestamp: Math.ceil(Date.now() / 1000) + 601 }), STALE);
    }));

  test('auth_timestamp is not a number', () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, { ...GET_CHANNELS, sentParams: { auth_timestamp: 'soon' } }), STALE);
    }));

  test('it is signed with the wrong secret', () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, { ...POST_EVENT, secret: 'not-the-secret' }), unauthorized('Invalid auth_signature'));
    }));

  test("auth_key is not the app's key", () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, { ...POST_EVENT, key: 'other-key' }), unauthorized('auth_key does not match the app'));
    }));

  for (const name of ['auth_key', 'auth_timestamp', 'auth_signature']) {
    test(`${name} is missing`, () =>
      withServer(async (s) => {
        assert.deepEqual(await send(s, { ...GET_CHANNELS, omit: [name] }), unauthorized('Missing auth_key, auth_timestamp or auth_signature'));
      }));
  }

  test('auth_version is not 1.0', () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, { ...POST_EVENT, version: '2.0' }), unauthorized('auth_version must be 1.0'));
    }));

  test('the body was altered after signing (body_md5 no longer matches)', () =>
    withServer(async (s) => {
      const tampered = await send(s, { ...POST_EVENT, bodyMd5: createHash('md5').update(EVENT.replace('hello', 'HELLO')).digest('hex') });
      assert.deepEqual(tampered, unauthorized('body_md5 does not match the request body'));
    }));

  test('a body is sent without body_md5', () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, { ...POST_EVENT, bodyMd5: null }), unauthorized('body_md5 does not match the request body'));
    }));

  test('a signed parameter is changed after signing', () =>
    withServer(async (s) => {
      const res = await send(s, { ...GET_CHANNELS, params: { filter_by_prefix: 'presence-' }, sentParams: { filter_by_prefix: 'private-' } });
      assert.deepEqual(res, unauthorized('Invalid auth_signature'));
    }));

  test('an unsigned parameter is added', () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, { ...GET_CHANNELS, sentParams: { filter_by_prefix: 'x' } }), unauthorized('Invalid auth_signature'));
    }));

  test('the query was signed unsorted', () =>
    withServer(async (s) => {
      const unsorted = (canonical: string) => {
        const [method, path, query] = canonical.split('\n');
        return `${method}\n${path}\n${query.split('&').reverse().join('&')}`;
      };
      assert.deepEqual(await send(s, { ...GET_CHANNELS, params: { filter_by_prefix: 'a' }, signedText: unsorted }), unauthorized('Invalid auth_signature'));
    }));

  test('the signature was made for another path', () =>
    withServer(async (s) => {
      const otherPath = (canonical: string) => canonical.replace('/apps/app-id/channels', '/apps/app-id/channels/news');
      assert.deepEqual(await send(s, { ...GET_CHANNELS, signedText: otherPath }), unauthorized('Invalid auth_signature'));
    }));

  test('the signature was made for another method', () =>
    withServer(async (s) => {
      const asGet = (canonical: string) => canonical.replace(/^POST/, 'GET');
      assert.deepEqual(await send(s, { ...POST_EVENT, signedText: asGet }), unauthorized('Invalid auth_signature'));
    }));

  test('the signature differs in its last hex digit', () =>
    withServer(async (s) => {
      const flipLast = (sig: string) => sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
      assert.deepEqual(await send(s, { ...POST_EVENT, signature: flipLast }), unauthorized('Invalid auth_signature'));
    }));

  test('the signature has the wrong length (no 500 from the constant-time comparison)', () =>
    withServer(async (s) => {
      for (const signature of [(sig: string) => sig.slice(0, 10), (sig: string) => sig + '00', () => '']) {
        assert.deepEqual(await send(s, { ...POST_EVENT, signature }), unauthorized('Invalid auth_signature'));
      }
    }));

  test('the signature is in upper-case hex', () =>
    withServer(async (s) => {
      assert.deepEqual(await send(s, { ...POST_EVENT, signature: (sig) => sig.toUpperCase() }), unauthorized('Invalid auth_signature'));
    }));
});

test('a refused request delivers nothing', async () => {
  const s = await startServer();
  try {
    const raw = await s.raw();
    await raw.request({ event: 'pusher:subscribe', data: { channel: 'news' } }, (f) => f.event === 'pusher_internal:subscription_succeeded');
    assert.equal((await send(s, { ...POST_EVENT, secret: 'wrong' })).status, 401);
    assert.equal((await send(s, { ...POST_EVENT, body: EVENT.replace('hello', 'marker') })).status, 200);
    const event = await raw.next((f) => f.event === 'ev');
    assert.deepEqual(event, { event: 'ev', channel: 'news', data: 'marker' });
  } finally {
    await s.stop();
  }
});
