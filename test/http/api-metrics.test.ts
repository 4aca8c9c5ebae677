// The REST API families, to the byte: every call to /apps/<known id>/… counts once in
// http_calls_received_total of that app, its request body in http_received_bytes and its
// response body in http_transmitted_bytes, whatever the outcome. Expected values are the
// bytes this test sent and got back with fetch, never the server's own arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type Pusher from 'pusher';
import { appValues, scrape } from '../helpers/exposition';
import { APP, startServer, type TestServer } from '../helpers/server';
import { freePort } from '../helpers/services';

const APP_TWO = { id: 'app-two', key: 'key-two', secret: 'secret-two' };
const UTF8 = 'é€😀';

interface Ledger {
  calls: number;
  received: number;
  transmitted: number;
}

interface Answer {
  status: number;
  body: Buffer;
}

function configFile(t: { after(fn: () => void): void }, apps: object[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pws-http-metrics-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ apps }));
  return file;
}

/** REST calls signed by the real SDK and sent with fetch, each booked in its app's ledger. */
class RestClient {
  readonly ledgers = new Map<string, Ledger>();

  constructor(readonly s: TestServer) {}

  ledger(appId: string): Ledger {
    let ledger = this.ledgers.get(appId);
    if (ledger === undefined) this.ledgers.set(appId, (ledger = { calls: 0, received: 0, transmitted: 0 }));
    return ledger;
  }

  /**
   * `method /apps/<app.id><sub>` with `body` as is. Signed unless `signWith` is null; booked
   * under `bookAs` (the app the server should count it for), or nowhere when that is null.
   */
  async call(
    app: { id: string; key: string; secret: string },
    method: 'GET' | 'POST',
    sub: string,
    options: { body?: string; params?: Record<string, string>; signWith?: Pusher | null; bookAs?: string | null } = {},
  ): Promise<Answer> {
    const fullPath = `/apps/${encodeURIComponent(app.id)}${sub}`;
    const signer = options.signWith === undefined ? this.s.sdk(app) : options.signWith;
    const query = signer === null ? '' : signer.createSignedQueryString({ method, path: fullPath, body: options.body, params: options.params });
    const res = await fetch(this.s.url(`${fullPath}?${query}`), {
      method,
      body: options.body,
      headers: options.body === undefined ? {} : { 'Content-Type': 'application/json' },
    });
    const body = Buffer.from(await res.arrayBuffer());
    const bookAs = options.bookAs === undefined ? app.id : options.bookAs;
    if (bookAs !== null) {
      const ledger = this.ledger(bookAs);
      ledger.calls++;
      ledger.received += options.body === undefined ? 0 : Buffer.byteLength(options.body);
      ledger.transmitted += body.length;
    }
    return { status: res.status, body };
  }

  /** The three http families of `appId` from a fresh scrape, as a ledger. */
  async counted(appId: string): Promise<Ledger> {
    const v = appValues(await scrape(this.s.url('/metrics')), `pws_${this.s.port}_`, appId);
    return { calls: v.http_calls_received_total, received: v.http_received_bytes, transmitted: v.http_transmitted_bytes };
  }

  /** Asserts that every app's counts equal its ledger. */
  async check(what: string): Promise<void> {
    for (const [appId, ledger] of this.ledgers) assert.deepEqual(await this.counted(appId), ledger, `${appId} after ${what}`);
  }
}

test('http families to the byte: every call of each route and outcome, two apps apart, unknown apps nowhere', async (t) => {
  const port = await freePort();
  const s = await startServer(
    { METRICS_ENABLED: '1', PORT: String(port), EVENT_MAX_SIZE_IN_KB: '1', HTTP_MAX_REQUEST_SIZE: '4' },
    configFile(t, [APP, APP_TWO]),
  );
  t.after(() => s.stop());
  const rest = new RestClient(s);
  rest.ledger(APP.id);
  rest.ledger(APP_TWO.id);
  await rest.check('start');

  // A presence member with a multi-byte id (so responses carry multi-byte UTF-8) and a signed-in user.
  const member = await s.raw();
  const memberId = await member.socketId();
  const presence = s.sdk().authorizeChannel(memberId, 'presence-lobby', { user_id: UTF8, user_info: { name: UTF8 } });
  await member.request(
    { event: 'pusher:subscribe', data: { channel: 'presence-lobby', auth: presence.auth, channel_data: presence.channel_data } },
    (f) => f.event === 'pusher_internal:subscription_succeeded',
  );
  const user = await s.raw();
  const userSocketId = await user.socketId();
  await user.request({ event: 'pusher:signin', data: s.sdk().authenticateUser(userSocketId, { id: 'u1' }) }, (f) => f.event === 'pusher:signin_success');
  await rest.check('socket traffic only');

  const steps: Array<[string, () => Promise<Answer>, number]> = [
    ['trigger', () => rest.call(APP, 'POST', '/events', { body: JSON.stringify({ name: 'greet', channel: 'presence-lobby', data: `${UTF8} hello` }) }), 200],
    [
      'trigger with info',
      () =>
        rest.call(APP, 'POST', '/events', {
          body: JSON.stringify({ name: 'greet', channels: ['presence-lobby', 'empty'], data: UTF8, info: 'subscription_count' }),
        }),
      200,
    ],
    [
      'batch',
      () =>
        rest.call(APP, 'POST', '/batch_events', {
          body: JSON.stringify({ batch: [{ name: 'a', channel: 'x', data: UTF8 }, { name: 'b', channel: 'presence-lobby', data: '{}', info: 'user_count' }] }),
        }),
      200,
    ],
    ['channel list', () => rest.call(APP, 'GET', '/channels', { params: { filter_by_prefix: 'presence-', info: 'user_count' } }), 200],
    ['channel', () => rest.call(APP, 'GET', '/channels/presence-lobby', { params: { info: 'user_count,subscription_count' } }), 200],
    ['users', () => rest.call(APP, 'GET', '/channels/presence-lobby/users'), 200],
    ['terminate', () => rest.call(APP, 'POST', '/users/u1/terminate_connections', { body: '{}' }), 200],
    ['bad signature', () => rest.call(APP, 'POST', '/events', { body: '{"name":"x","channel":"c","data":"é"}', signWith: s.sdk(APP_TWO) }), 401],
    ['unsigned GET', () => rest.call(APP, 'GET', '/channels', { signWith: null }), 401],
    ['invalid JSON', () => rest.call(APP, 'POST', '/events', { body: `{"name": ${UTF8}` }), 400],
    ['invalid event', () => rest.call(APP, 'POST', '/events', { body: JSON.stringify({ name: '', channel: 'c', data: UTF8 }) }), 400],
    ['event data too large', () => rest.call(APP, 'POST', '/events', { body: JSON.stringify({ name: 'big', channel: 'c', data: UTF8.repeat(200) }) }), 413],
    ['user_count on a public channel', () => rest.call(APP, 'GET', '/channels/public', { params: { info: 'user_count' } }), 400],
    ['other app', () => rest.call(APP_TWO, 'POST', '/events', { body: JSON.stringify({ name: 'two', channel: 'chat', data: UTF8.repeat(5) }) }), 200],
    ['other app list', () => rest.call(APP_TWO, 'GET', '/channels'), 200],
    // An unknown app id is nobody's call.
    ['unknown app', () => rest.call({ id: 'no-such-app', key: 'k', secret: 's' }, 'POST', '/events', { body: '{}', bookAs: null }), 404],
    ['unknown app GET', () => rest.call({ id: 'no-such-app', key: 'k', secret: 's' }, 'GET', '/channels', { bookAs: null }), 404],
  ];
  for (const [what, step, status] of steps) {
    const answer = await step();
    assert.equal(answer.status, status, `${what}: ${answer.body.toString()}`);
    await rest.check(what);
  }
  // The multi-byte member id came back in the users listing: response bytes ≠ characters.
  const users = await rest.call(APP, 'GET', '/channels/presence-lobby/users');
  assert.equal(users.body.toString('utf8'), JSON.stringify({ users: [{ id: UTF8 }] }));
  assert.notEqual(users.body.length, users.body.toString('utf8').length);
  await rest.check('users again');
  assert.equal((await user.closed).code, 4009);
  t.diagnostic(`ledgers: ${JSON.stringify(Object.fromEntries(rest.ledgers))}`);
});

test('a body over HTTP_MAX_REQUEST_SIZE is refused by its Content-Length unread: the call and the 413 count, its bytes do not', async (t) => {
  const port = await freePort();
  const s = await startServer({ METRICS_ENABLED: '1', PORT: String(port), HTTP_MAX_REQUEST_SIZE: '1' });
  t.after(() => s.stop());
  const rest = new RestClient(s);
  const body = JSON.stringify({ name: 'big', channel: 'c', data: 'x'.repeat(2000) });
  const answer = await rest.call(APP, 'POST', '/events', { body });
  assert.equal(answer.status, 413);
  // Booked as sent; the server read none of it.
  rest.ledger(APP.id).received -= Buffer.byteLength(body);
  await rest.check('413 by Content-Length');
});

test(
  'a call with the wrong method to a known app (405) counts like any other call',
  async (t) => {
    const port = await freePort();
    const s = await startServer({ METRICS_ENABLED: '1', PORT: String(port) });
    t.after(() => s.stop());
    const rest = new RestClient(s);
    const answer = await rest.call(APP, 'GET', '/events');
    assert.equal(answer.status, 405);
    const post = await rest.call(APP, 'POST', '/channels');
    assert.equal(post.status, 405);
    await rest.check('405');
  },
);
