// The console's server side over plain HTTP (src/console): off by default and then absent, its
// password required at start, the session cookie's flags, CSRF, the login rate limit, the port it
// is served on, its event stream, and that no app secret ever leaves the server.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOptions } from '../../src/options';
import { OptionsError } from '../../src/protocol/errors';
import { BIN, ROOT } from '../helpers/nodes';
import { APP, connected, eventually, startServer, subscribed, type TestServer } from '../helpers/server';
import { freePort } from '../helpers/services';
import { WebhookReceiver } from '../helpers/webhook-receiver';

const PASSWORD = 'correct horse battery staple';
const ENABLED = { CONSOLE_ENABLED: 'true', CONSOLE_PASSWORD: PASSWORD };

function login(s: TestServer, password: string, base = s.url('')): Promise<Response> {
  return fetch(`${base}/console/login`, { method: 'POST', body: new URLSearchParams({ password }), redirect: 'manual' });
}

/** Reads a console's event stream as text, until stop(). */
async function readStream(s: TestServer, cookie: string, appId = APP.id): Promise<{ text(): string; stop(): Promise<void> }> {
  const controller = new AbortController();
  const stream = await fetch(s.url(`/console/api/stream?app=${appId}`), { headers: { cookie }, signal: controller.signal });
  assert.equal(stream.headers.get('content-type'), 'text/event-stream');
  let text = '';
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream.body!) text += decoder.decode(chunk as Uint8Array);
  })().catch(() => undefined);
  return {
    text: () => text,
    stop: async () => {
      controller.abort();
      await reading;
    },
  };
}

/** Logs in; returns the Cookie header to send and the page's CSRF token. */
async function session(s: TestServer): Promise<{ cookie: string; csrf: string }> {
  const res = await login(s, PASSWORD);
  assert.equal(res.status, 303);
  const cookie = res.headers.get('set-cookie')!.split(';')[0];
  const page = await (await fetch(s.url('/console'), { headers: { cookie } })).text();
  return { cookie, csrf: /name="csrf-token" content="([^"]+)"/.exec(page)![1] };
}

test('with CONSOLE_ENABLED off (the default), /console and its API are 404', async () => {
  const s = await startServer();
  try {
    for (const path of ['/console', '/console/assets/main.js', '/console/api/apps']) assert.equal((await fetch(s.url(path))).status, 404, path);
    assert.equal((await login(s, PASSWORD)).status, 404);
  } finally {
    await s.stop();
  }
});

test('CONSOLE_ENABLED without CONSOLE_PASSWORD is refused at start, with one line', async () => {
  assert.throws(() => loadOptions({ CONSOLE_ENABLED: 'true' }), new OptionsError('CONSOLE_PASSWORD: must be set when CONSOLE_ENABLED is on'));
  const child = spawn(process.execPath, [BIN, 'start'], { cwd: ROOT, env: { PATH: process.env.PATH, PORT: '0', CONSOLE_ENABLED: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const [code] = await once(child, 'close');
  assert.equal(code, 1);
  assert.equal(stderr, 'pws-server: CONSOLE_PASSWORD: must be set when CONSOLE_ENABLED is on\n');
});

test('the login page is served; a wrong password gets no cookie and the page says so', async () => {
  const s = await startServer(ENABLED);
  try {
    const page = await fetch(s.url('/console'));
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy')!, /default-src 'self'/);
    assert.match(await page.text(), /data-testid="console-password"/);
    const wrong = await login(s, 'guess');
    assert.equal(wrong.status, 303);
    assert.equal(wrong.headers.get('location'), '/console?login=failed');
    assert.equal(wrong.headers.get('set-cookie'), null);
    assert.match(await (await fetch(s.url('/console?login=failed'))).text(), /Wrong password/);
  } finally {
    await s.stop();
  }
});

test('a login sets an HttpOnly, SameSite=Strict cookie for /console only; the API needs it', async () => {
  const s = await startServer(ENABLED);
  try {
    const res = await login(s, PASSWORD);
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/console');
    const cookie = res.headers.get('set-cookie')!;
    assert.match(cookie, /^pws_console=[A-Za-z0-9_-]{43}; /);
    assert.match(cookie, /; HttpOnly/);
    assert.match(cookie, /; SameSite=Strict/);
    assert.match(cookie, /; Path=\/console/);
    assert.equal((await fetch(s.url('/console/api/apps'))).status, 401);
    const apps = await fetch(s.url('/console/api/apps'), { headers: { cookie: cookie.split(';')[0] } });
    assert.deepEqual(await apps.json(), { apps: [{ id: APP.id, key: APP.key }] });
  } finally {
    await s.stop();
  }
});

test('state-changing requests without the CSRF token are refused with 403, with it they work', async () => {
  const s = await startServer(ENABLED);
  try {
    const { cookie, csrf } = await session(s);
    const body = JSON.stringify({ app: APP.id, channel: 'news', event: 'flash', data: '{"n":1}' });
    const missing = await fetch(s.url('/console/api/send'), { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body });
    assert.equal(missing.status, 403);
    const wrong = await fetch(s.url('/console/api/send'), { method: 'POST', headers: { cookie, 'x-csrf-token': 'x'.repeat(43) }, body });
    assert.equal(wrong.status, 403);
    const logout = await fetch(s.url('/console/logout'), { method: 'POST', headers: { cookie }, redirect: 'manual' });
    assert.equal(logout.status, 403);
    const sent = await fetch(s.url('/console/api/send'), { method: 'POST', headers: { cookie, 'x-csrf-token': csrf }, body });
    assert.deepEqual([sent.status, await sent.json()], [200, { sent: true }]);
    const notJson = await fetch(s.url('/console/api/send'), { method: 'POST', headers: { cookie, 'x-csrf-token': csrf }, body: JSON.stringify({ app: APP.id, channel: 'news', event: 'flash', data: '{' }) });
    assert.equal(notJson.status, 400);
    const out = await fetch(s.url('/console/logout'), { method: 'POST', headers: { cookie, 'x-csrf-token': csrf }, redirect: 'manual' });
    assert.equal(out.status, 303);
    assert.equal((await fetch(s.url('/console/api/apps'), { headers: { cookie } })).status, 401, 'the session ended');
  } finally {
    await s.stop();
  }
});

test('after 5 failed logins from one address, the next is refused with 429 and Retry-After', async () => {
  const s = await startServer(ENABLED);
  try {
    for (let i = 0; i < 5; i++) assert.equal((await login(s, `guess ${i}`)).status, 303);
    const limited = await login(s, PASSWORD);
    assert.equal(limited.status, 429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    assert.equal(limited.headers.get('set-cookie'), null, 'not even the right password gets in meanwhile');
  } finally {
    await s.stop();
  }
});

test('with METRICS_SERVER_PORT set, the console is on that port and not on PORT', async () => {
  const metricsPort = await freePort();
  const t = await startServer({ ...ENABLED, METRICS_SERVER_PORT: String(metricsPort) });
  try {
    assert.equal((await fetch(t.url('/console'))).status, 404);
    const onMetrics = await fetch(`http://127.0.0.1:${metricsPort}/console`);
    assert.equal(onMetrics.status, 200);
    assert.equal((await login(t, PASSWORD, `http://127.0.0.1:${metricsPort}`)).status, 303);
  } finally {
    await t.stop();
  }
});

test('the event stream carries figures and log rows of the chosen app, and never a secret', async () => {
  const s = await startServer({ ...ENABLED, METRICS_ENABLED: 'true' });
  try {
    const { cookie } = await session(s);
    const stream = await readStream(s, cookie);
    const client = s.client();
    const socketId = await connected(client);
    await s.sdk().trigger('news', 'flash', { headline: 'hi' });
    await eventually(() => stream.text().includes(`"type":"connection","socket":"${socketId}"`) && stream.text().includes('"type":"api_message","channel":"news","event":"flash"'), 3000, 'the rows');
    await eventually(() => /"connections":1,/.test(stream.text()), 3000, 'a figure of one connection');
    assert.ok(!stream.text().includes(APP.secret), 'no secret in the stream');
    client.disconnect();
    await eventually(() => stream.text().includes('"type":"disconnection"'), 3000, 'the disconnection');
    await stream.stop();
    assert.equal((await fetch(s.url('/console/api/stream?app=no-such-app'), { headers: { cookie } })).status, 404);
  } finally {
    await s.stop();
  }
});

test('webhooks sent and failed are counted and logged without METRICS_ENABLED', async () => {
  const receiver = await WebhookReceiver.start();
  receiver.answer = () => (receiver.requests.length === 1 ? 500 : 200);
  const s = await startServer({ ...ENABLED, DEFAULT_APP_WEBHOOKS: JSON.stringify([{ url: receiver.url(), event_types: ['channel_occupied'] }]) });
  try {
    const { cookie } = await session(s);
    const stream = await readStream(s, cookie);
    const client = s.client();
    await subscribed(client, 'orders');
    await receiver.waitForEvents(1);
    await eventually(() => stream.text().includes('"type":"webhook_failed"') && stream.text().includes('"type":"webhook"'), 5000, 'the webhook rows');
    await eventually(() => /"webhooksSent":1,"webhooksFailed":1/.test(stream.text()), 3000, 'the webhook figures');
    assert.match(stream.text(), /"messagesIn":null,"messagesOut":null/, 'message rates need the metrics engine');
    await stream.stop();
  } finally {
    await s.stop();
    await receiver.close();
  }
});
