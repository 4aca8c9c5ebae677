// The console in a real browser (headless chromium): log in, live figures, the event log with
// REST and client traffic, the event sender reaching a pusher-js client, a wrong password, and no
// console error on any page. Screenshots of each page go to test-artifacts/console/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { APP, connected, eventually, nextEvent, startServer, subscribed, type TestServer } from '../helpers/server';
import { chromiumSkip, launchChromium, logIn, screenshot, watchedPage } from '../helpers/browser';

const PASSWORD = 'correct horse battery staple';
const skip = chromiumSkip();

/** The log rows of one type shown right now, as text. */
async function logRows(page: Page, type: string): Promise<string[]> {
  return page.getByTestId('event-log').locator(`li[data-event-type="${type}"]`).allTextContents();
}

describe('the console in chromium', { skip }, () => {
  let browser: Browser;
  let s: TestServer;

  before(async () => {
    browser = await launchChromium();
    s = await startServer({ CONSOLE_ENABLED: 'true', CONSOLE_PASSWORD: PASSWORD, METRICS_ENABLED: 'true', DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true' });
  });

  after(async () => {
    await browser?.close();
    await s?.stop();
  });

  test('a wrong password is refused: the login page again, with a message, and no session', async () => {
    const { page, errors } = await watchedPage(browser);
    await logIn(page, s.url(''), 'not the password');
    await page.getByTestId('login-error').waitFor();
    assert.equal(await page.getByTestId('app-select').count(), 0);
    assert.deepEqual(await page.context().cookies(), []);
    assert.deepEqual(errors, []);
    await page.context().close();
  });

  test('log in, watch a connection and traffic live, send an event from the form', async () => {
    const { page, errors } = await watchedPage(browser);
    await page.goto(s.url('/console'));
    await screenshot(page, 'login');
    await logIn(page, s.url(''), PASSWORD);
    // The page fills the list from the API, then opens the first app.
    await eventually(async () => (await page.getByTestId('app-select').inputValue()) === APP.id, 3000, 'the app list');
    const cookie = (await page.context().cookies()).find((c) => c.name === 'pws_console')!;
    assert.deepEqual([cookie.httpOnly, cookie.sameSite, cookie.path], [true, 'Strict', '/console']);
    await eventually(async () => (await page.getByTestId('stream-status').textContent()) === 'live', 3000, 'the stream');
    assert.equal(await page.getByTestId('stat-connections').textContent(), '0');

    // A pusher-js client connects: the figure shows it within 2 s.
    const client = s.client();
    const socketId = await connected(client);
    const shownAt = Date.now();
    await page.getByTestId('stat-connections').filter({ hasText: /^1$/ }).waitFor({ timeout: 2000 });
    assert.ok(Date.now() - shownAt <= 2000);
    await subscribed(client, 'orders');
    await subscribed(client, 'presence-lobby');
    await page.getByTestId('channel-list').locator('tr[data-channel="orders"]').waitFor({ timeout: 3000 });
    assert.equal(await page.getByTestId('stat-channels').textContent(), '2');

    // A REST trigger appears in the log, as Pusher's debug console shows an API message.
    await s.sdk().trigger('orders', 'created', { id: 42 });
    await eventually(async () => (await logRows(page, 'api_message')).some((r) => r.includes('channel=orders') && r.includes('event=created') && r.includes('{"id":42}')), 3000, 'the api_message row');
    assert.ok((await logRows(page, 'connection')).some((r) => r.includes(socketId)));
    assert.ok((await logRows(page, 'subscribed')).some((r) => r.includes('channel=orders')));

    // A client event on the presence channel.
    client.channel('presence-lobby').trigger('client-typing', { who: 'me' });
    await eventually(async () => (await logRows(page, 'client_event')).some((r) => r.includes('event=client-typing')), 3000, 'the client_event row');

    // The presence channel's members.
    await page.getByTestId('channel-list').locator('tr[data-channel="presence-lobby"] td').first().click();
    await page.getByTestId('member-list').locator('li', { hasText: `user-${socketId}` }).waitFor({ timeout: 3000 });

    // The sender publishes through the REST API's path: the pusher-js client receives it.
    const received = nextEvent(client, 'orders', 'shipped');
    await page.getByTestId('send-channel').fill('orders');
    await page.getByTestId('send-event').fill('shipped');
    await page.getByTestId('send-data').fill('{"id": 42, "carrier": "post"}');
    await page.getByTestId('send-submit').click();
    assert.deepEqual(await received, { id: 42, carrier: 'post' });
    await page.getByTestId('send-result').filter({ hasText: 'Sent.' }).waitFor();
    await eventually(async () => (await logRows(page, 'api_message')).some((r) => r.includes('event=shipped')), 3000, 'the sent event in the log');

    // Filter by type, then pause: rows arriving meanwhile are held.
    await page.getByTestId('log-filter-type').selectOption('api_message');
    assert.ok((await logRows(page, 'connection')).length === 0);
    await page.getByTestId('log-filter-type').selectOption('');
    await page.getByTestId('log-pause').click();
    await s.sdk().trigger('orders', 'while-paused', {});
    await new Promise((r) => setTimeout(r, 600));
    assert.ok(!(await logRows(page, 'api_message')).some((r) => r.includes('while-paused')), 'held while paused');
    await page.getByTestId('log-pause').click();
    assert.ok((await logRows(page, 'api_message')).some((r) => r.includes('while-paused')), 'shown on resume');

    client.disconnect();
    await eventually(async () => (await logRows(page, 'disconnection')).some((r) => r.includes(socketId) && r.includes('code=')), 3000, 'the disconnection row');
    await page.getByTestId('stat-connections').filter({ hasText: /^0$/ }).waitFor({ timeout: 3000 });

    // A second client, so the screenshot shows a live app.
    const other = s.client();
    await subscribed(other, 'presence-lobby');
    await s.sdk().trigger('presence-lobby', 'announcement', { text: 'welcome' });
    await page.getByTestId('stat-connections').filter({ hasText: /^1$/ }).waitFor({ timeout: 3000 });
    await screenshot(page, 'console');
    other.disconnect();
    assert.deepEqual(errors, []);
    await page.context().close();
  });
});
