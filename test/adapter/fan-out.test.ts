// The socket families, counted to the unit against what real clients sent and received:
// connected, new_connections_total, new_disconnections_total, socket_received_bytes,
// socket_transmitted_bytes, ws_messages_received_total and ws_messages_sent_total.
// Expected values come from the raw sockets' own records (bytes as sent, frames as received),
// never from the server's code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type Pusher from 'pusher';
import { appValues, sampleValue, scrape, type AppFamily } from '../helpers/exposition';
import { APP, connected, eventually, startServer, type RawSocket, type TestServer } from '../helpers/server';
import { freePort } from '../helpers/services';

const APP_ONE = { ...APP, enableClientMessages: true };
const APP_TWO = { id: 'app-two', key: 'key-two', secret: 'secret-two', enableClientMessages: true, maxConnections: 2 };

// Multi-byte UTF-8: 2, 3 and 4 bytes per character.
const UTF8 = 'é€😀';

type SocketFamily = Exclude<AppFamily, 'http_received_bytes' | 'http_transmitted_bytes' | 'http_calls_received_total'>;
const SOCKET_FAMILIES: readonly SocketFamily[] = [
  'connected',
  'new_connections_total',
  'new_disconnections_total',
  'socket_received_bytes',
  'socket_transmitted_bytes',
  'ws_messages_received_total',
  'ws_messages_sent_total',
];

function configFile(t: { after(fn: () => void): void }, apps: object[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pws-fan-out-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ apps }));
  return file;
}

/**
 * One app's accepted raw sockets and every frame they sent, so the expected counts are sums over
 * what the clients themselves saw: bytes as sent, and `.texts` as received.
 */
class AppTraffic {
  readonly sockets: RawSocket[] = [];
  readonly sent: string[] = [];
  private closes = 0;

  constructor(
    readonly s: TestServer,
    readonly app: { id: string; key: string; secret: string },
  ) {}

  /** Opens a socket that the server accepts, and waits for connection_established. */
  async open(): Promise<{ raw: RawSocket; id: string }> {
    const raw = await this.s.raw(this.app.key);
    const id = await raw.socketId();
    this.sockets.push(raw);
    return { raw, id };
  }

  /** Sends a frame exactly as given (a string) or as JSON, and records its text. */
  send(raw: RawSocket, frame: unknown): void {
    const text = typeof frame === 'string' ? frame : JSON.stringify(frame);
    this.sent.push(text);
    raw.send(text);
  }

  /** Sends a frame and waits for the first frame after it that matches. */
  async request(raw: RawSocket, frame: unknown, predicate: (f: any) => boolean): Promise<any> {
    const from = raw.frames.length;
    this.send(raw, frame);
    return raw.next(predicate, from);
  }

  /** Subscribes, signing private and presence channels with the real SDK. */
  async subscribe(raw: RawSocket, id: string, channel: string, presence?: { user_id: string; user_info?: unknown }): Promise<void> {
    const data: Record<string, string> = { channel };
    if (!channel.startsWith('private-') && !channel.startsWith('presence-')) {
      // public: no auth
    } else {
      const signed = this.s.sdk(this.app).authorizeChannel(id, channel, presence as Pusher.PresenceChannelData);
      data.auth = signed.auth;
      if (signed.channel_data !== undefined) data.channel_data = signed.channel_data;
    }
    await this.request(raw, { event: 'pusher:subscribe', data }, (f) => f.channel === channel && f.event === 'pusher_internal:subscription_succeeded');
  }

  /** Closes a socket from the client side and waits until the server saw it go. */
  async close(raw: RawSocket): Promise<void> {
    raw.close();
    await raw.closed;
    this.closes++;
    await this.waitForDisconnections(this.closes);
  }

  /** Counts a close that the server started (the socket is already closed on the server side). */
  async closedByServer(raw: RawSocket): Promise<void> {
    await raw.closed;
    this.closes++;
    await this.waitForDisconnections(this.closes);
  }

  private async waitForDisconnections(n: number): Promise<void> {
    await eventually(async () => (await this.scrape()).new_disconnections_total === n, 5000, `${n} disconnections of ${this.app.id}`);
  }

  /**
   * Pings every open socket and waits for each pong: frames to one socket arrive in order, so
   * after its pong every frame the server counted for it has arrived. The pings count too.
   */
  async settle(): Promise<void> {
    const open = this.sockets.filter((raw) => raw.ws.readyState === raw.ws.OPEN);
    await Promise.all(open.map((raw) => this.request(raw, { event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong')));
  }

  /** The socket families as the clients' own records say they must be. */
  expected(): Record<SocketFamily, number> {
    const received = this.sockets.flatMap((raw) => raw.texts);
    const open = this.sockets.filter((raw) => raw.ws.readyState === raw.ws.OPEN).length;
    return {
      connected: open,
      new_connections_total: this.sockets.length,
      new_disconnections_total: this.sockets.length - open,
      socket_received_bytes: this.sent.reduce((n, text) => n + Buffer.byteLength(text), 0),
      socket_transmitted_bytes: received.reduce((n, text) => n + Buffer.byteLength(text), 0),
      ws_messages_received_total: this.sent.length,
      ws_messages_sent_total: received.length,
    };
  }

  /** The app's ten values from a fresh scrape. */
  async scrape(): Promise<Record<AppFamily, number>> {
    return appValues(await scrape(this.s.url('/metrics')), `pws_${this.s.port}_`, this.app.id);
  }

  /** The socket families from a fresh scrape. */
  async socketValues(): Promise<Record<SocketFamily, number>> {
    const all = await this.scrape();
    return Object.fromEntries(SOCKET_FAMILIES.map((f) => [f, all[f]])) as Record<SocketFamily, number>;
  }
}

test('socket bytes and messages to the byte: multi-byte frames, fan-out to N, socket_id exclusion, client events not echoed, two apps apart', async (t) => {
  const port = await freePort();
  const s = await startServer({ METRICS_ENABLED: '1', PORT: String(port) }, configFile(t, [APP_ONE, APP_TWO]));
  t.after(() => s.stop());
  const one = new AppTraffic(s, APP_ONE);
  const two = new AppTraffic(s, APP_TWO);

  const { raw: a, id: aId } = await one.open();
  const { raw: b, id: bId } = await one.open();
  const { raw: c, id: cId } = await one.open();
  const { raw: d, id: dId } = await two.open();
  for (const [raw, id] of [[a, aId], [b, bId], [c, cId]] as const) {
    await one.subscribe(raw, id, 'chat');
    await one.subscribe(raw, id, 'private-room');
  }
  // Same channel name in the other app: must never see app one's events.
  await two.subscribe(d, dId, 'chat');
  await one.settle();
  await two.settle();
  assert.deepEqual(await one.socketValues(), one.expected());
  assert.deepEqual(await two.socketValues(), two.expected());

  // Frames in, with 2-, 3- and 4-byte characters; a frame that is not JSON still counts as received.
  await one.request(a, { event: 'pusher:ping', data: { note: UTF8 } }, (f) => f.event === 'pusher:pong');
  await one.request(a, `${UTF8} is not JSON`, (f) => f.event === 'pusher:error');
  await one.request(b, `{"event":"pusher:ping","data":"${UTF8.repeat(100)}"}`, (f) => f.event === 'pusher:pong');

  // One API event fanned out to the three subscribers: three frames of one length.
  const sdk = s.sdk(APP_ONE);
  await sdk.trigger('chat', 'greet', { text: `${UTF8} to all` });
  await Promise.all([a, b, c].map((raw) => raw.next((f) => f.event === 'greet')));
  const greet = a.texts.find((text) => text.includes('"greet"'))!;
  assert.equal(b.texts.filter((text) => text === greet).length, 1);
  assert.equal(c.texts.filter((text) => text === greet).length, 1);

  // Excluded by socket_id: only b and c.
  await sdk.trigger(['chat', 'private-room'], 'not-for-a', { text: UTF8 }, { socket_id: aId });
  await Promise.all([b, c].map((raw) => raw.next((f) => f.event === 'not-for-a' && f.channel === 'private-room')));

  // A client event reaches the others, never its sender.
  one.send(a, { event: 'client-typing', channel: 'private-room', data: { who: UTF8 } });
  await Promise.all([b, c].map((raw) => raw.next((f) => f.event === 'client-typing')));
  // A refused client event (public channel) answers its sender alone.
  await one.request(c, { event: 'client-typing', channel: 'chat', data: {} }, (f) => f.event === 'pusher:error');

  // Events to no one: an empty channel, and a channel whose only subscriber is excluded.
  await one.subscribe(a, aId, 'lonely');
  await sdk.trigger('nobody-here', 'void', {});
  await sdk.trigger('lonely', 'void', {}, { socket_id: aId });

  // A batch of two events.
  await sdk.triggerBatch([
    { channel: 'chat', name: 'batch-1', data: UTF8 },
    { channel: 'private-room', name: 'batch-2', data: `${UTF8}${UTF8}` },
  ]);
  await Promise.all([a, b, c].map((raw) => raw.next((f) => f.event === 'batch-2')));

  // Presence: member_added goes to the members already there, not to the one joining.
  await one.subscribe(a, aId, 'presence-room', { user_id: 'ua', user_info: { name: UTF8 } });
  await one.subscribe(b, bId, 'presence-room', { user_id: 'ub' });
  await one.subscribe(c, cId, 'presence-room', { user_id: 'uc' });
  await a.next((f) => f.event === 'pusher_internal:member_added' && f.data.includes('"uc"'));
  one.send(b, { event: 'pusher:unsubscribe', data: { channel: 'presence-room' } });
  await Promise.all([a, c].map((raw) => raw.next((f) => f.event === 'pusher_internal:member_removed')));

  // A user's own channel: sign in, then an event sent to that user.
  const signin = sdk.authenticateUser(cId, { id: 'user-c', name: UTF8 });
  await one.request(c, { event: 'pusher:signin', data: signin }, (f) => f.event === 'pusher:signin_success');
  await sdk.sendToUser('user-c', 'for-you', { text: UTF8 });
  await c.next((f) => f.event === 'for-you');

  // App two's own traffic, and its own fan-out, on a channel of the same name.
  await two.request(d, { event: 'pusher:ping', data: { note: UTF8.repeat(3) } }, (f) => f.event === 'pusher:pong');
  await s.sdk(APP_TWO).trigger('chat', 'greet', { text: 'two' });
  await d.next((f) => f.event === 'greet');

  await one.settle();
  await two.settle();
  assert.ok(!d.texts.some((text) => text.includes(UTF8 + ' to all')), 'app two saw app one\'s event');
  assert.ok(!a.texts.some((text) => text.includes('not-for-a') || text.includes('client-typing') || text.includes('"void"')));
  const expectedOne = one.expected();
  assert.deepEqual(await one.socketValues(), expectedOne);
  assert.deepEqual(await two.socketValues(), two.expected());
  // The REST calls are counted as calls, not as socket traffic.
  assert.equal((await one.scrape()).http_calls_received_total, 6);
  assert.equal((await two.scrape()).http_calls_received_total, 1);
  t.diagnostic(`app one: ${JSON.stringify(expectedOne)}`);

  // Closes: a by its client (c sees member_removed for ua), b by the server after a bad sign-in.
  await one.close(a);
  await c.next((f) => f.event === 'pusher_internal:member_removed' && f.data.includes('"ua"'));
  const refused = await one.request(b, { event: 'pusher:signin', data: { auth: `${APP_ONE.key}:bad`, user_data: '{"id":"x"}' } }, (f) => f.event === 'pusher:error');
  assert.equal(refused.data.code, 4009);
  await one.closedByServer(b);
  await one.settle();
  const afterCloses = one.expected();
  assert.equal(afterCloses.connected, 1);
  assert.equal(afterCloses.new_disconnections_total, 2);
  assert.deepEqual(await one.socketValues(), afterCloses);
  assert.deepEqual(await two.socketValues(), two.expected());
});

test('refused connections count only as refusals: unknown key, over the app quota, and their frames', async (t) => {
  const port = await freePort();
  const s = await startServer({ METRICS_ENABLED: '1', PORT: String(port) }, configFile(t, [APP_ONE, APP_TWO]));
  t.after(() => s.stop());
  const one = new AppTraffic(s, APP_ONE);
  const two = new AppTraffic(s, APP_TWO);
  await one.open();
  await two.open();
  await two.open();

  // Over app two's quota of 2, and a key no app has: both get pusher:error and a close.
  const over = await s.raw(APP_TWO.key);
  const unknown = await s.raw('no-such-key');
  for (const [raw, code] of [[over, 4004], [unknown, 4001]] as const) {
    const error = await raw.next((f) => f.event === 'pusher:error');
    assert.equal(error.data.code, code);
    assert.equal((await raw.closed).code, code);
  }
  await one.settle();
  await two.settle();
  assert.deepEqual(await one.socketValues(), one.expected());
  assert.deepEqual(await two.socketValues(), two.expected());
  assert.equal((await two.socketValues()).new_connections_total, 2);
  assert.equal((await two.socketValues()).new_disconnections_total, 0);
  const exposition = await scrape(s.url('/metrics'));
  assert.equal(sampleValue(exposition, 'pws_connection_refusals_total', { code: '4004' }), 1);
  assert.equal(sampleValue(exposition, 'pws_connection_refusals_total', { code: '4001' }), 1);
  assert.equal(sampleValue(exposition, 'pws_connection_closes_total', { code: '4004' }), undefined);
});

test('connected follows pusher-js clients up and down; every accepted connection and close counts once', async (t) => {
  const port = await freePort();
  const s = await startServer({ METRICS_ENABLED: '1', PORT: String(port) }, configFile(t, [APP_ONE, APP_TWO]));
  t.after(() => s.stop());
  const base = `pws_${port}_`;
  const values = async (appId: string) => appValues(await scrape(s.url('/metrics')), base, appId);
  const counts = async (appId: string) => {
    const v = await values(appId);
    return [v.connected, v.new_connections_total, v.new_disconnections_total];
  };

  const clients = Array.from({ length: 5 }, () => s.client());
  await Promise.all(clients.map(connected));
  const other = s.client({ app: APP_TWO });
  await connected(other);
  assert.deepEqual(await counts(APP_ONE.id), [5, 5, 0]);
  assert.deepEqual(await counts(APP_TWO.id), [1, 1, 0]);

  clients[0].disconnect();
  clients[1].disconnect();
  await eventually(async () => (await counts(APP_ONE.id))[0] === 3, 5000, 'two disconnections');
  assert.deepEqual(await counts(APP_ONE.id), [3, 5, 2]);

  // A client that reconnects is a new connection.
  clients[0].connect();
  await connected(clients[0]);
  assert.deepEqual(await counts(APP_ONE.id), [4, 6, 2]);

  // A presence channel with pusher-js: subscribing adds frames, not connections.
  await Promise.all(
    clients.slice(2).map(
      (client) =>
        new Promise<void>((resolve) => {
          client.subscribe('presence-lobby').bind('pusher:subscription_succeeded', () => resolve());
        }),
    ),
  );
  assert.deepEqual(await counts(APP_ONE.id), [4, 6, 2]);

  for (const client of clients) client.disconnect();
  other.disconnect();
  await eventually(async () => (await counts(APP_ONE.id))[0] === 0 && (await counts(APP_TWO.id))[0] === 0, 5000, 'all closed');
  assert.deepEqual(await counts(APP_ONE.id), [0, 6, 6]);
  assert.deepEqual(await counts(APP_TWO.id), [0, 1, 1]);
  // Nothing was counted as REST traffic.
  const v = await values(APP_ONE.id);
  assert.deepEqual([v.http_calls_received_total, v.http_received_bytes, v.http_transmitted_bytes], [0, 0, 0]);
});

test('a receiver more than 1 MB behind is closed, and the others keep receiving', async (t) => {
  const port = await freePort();
  const s = await startServer({ METRICS_ENABLED: '1', PORT: String(port) });
  t.after(() => s.stop());
  const one = new AppTraffic(s, APP);
  const slow = await one.open();
  const fast = await one.open();
  await one.subscribe(slow.raw, slow.id, 'chat');
  await one.subscribe(fast.raw, fast.id, 'chat');
  // Stop reading: the kernel buffers fill, then uWS's backpressure passes maxBackpressure.
  const socket = (slow.raw.ws as unknown as { _socket: { pause(): void } })._socket;
  socket.pause();
  const sdk = s.sdk();
  const data = 'x'.repeat(90 * 1024);
  for (let i = 0; i < 60; i++) await sdk.trigger('chat', 'big', data);
  await eventually(() => s.server.apps.findById(APP.id)!.sockets.size === 1, 5000, 'the slow socket to be closed');
  assert.equal(fast.raw.texts.filter((text) => text.includes('"big"')).length, 60);
  const exposition = await scrape(s.url('/metrics'));
  const v = appValues(exposition, `pws_${port}_`, APP.id);
  assert.deepEqual([v.connected, v.new_disconnections_total], [1, 1]);
  // uWS drops it without a close frame.
  assert.equal(sampleValue(exposition, 'pws_connection_closes_total', { code: '1006' }), 1);
});
