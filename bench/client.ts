// The benchmark's clients: many raw WebSockets in one process, driven over IPC by the runner
// (child_process.fork). It opens sockets in waves, optionally subscribes each to one channel,
// then only counts event frames, with one byte comparison per frame and no JSON.parse, so that
// on a small machine it leaves as much CPU as possible to the server being measured.
import { createHmac } from 'node:crypto';
import WebSocket from 'ws';

/** What the runner asks. */
export type ClientCommand =
  /**
   * Open `count` sockets, socket i to urls[i % urls.length] (at most `wave` handshakes at a
   * time); subscribe each to `channel` if given, signed with `auth` (the app's key and secret)
   * when it is a private channel.
   */
  | { op: 'open'; urls: string[]; count: number; channel: string | null; wave: number; auth?: { key: string; secret: string } }
  /** Every open socket sends `count` client events `event` on `channel`. */
  | { op: 'trigger'; event: string; channel: string; data: string; count: number }
  /** Reset the delivery count and report `delivered` once it reaches `total`. */
  | { op: 'expect'; total: number }
  /** Report the delivery count now. */
  | { op: 'count' }
  /**
   * Subscribe each open socket i to `channels` more channels, `<prefix><i>-<k>`, at most `wave`
   * of them in flight per socket, and report `subscribed` once every one is confirmed.
   */
  | { op: 'subscribe'; prefix: string; channels: number; wave: number }
  /** Close every socket and report `closed` once they are. */
  | { op: 'close' };

/** What the client reports. */
export type ClientReport =
  | { op: 'opened'; count: number; ms: number }
  | { op: 'delivered'; count: number }
  | { op: 'count'; count: number; sockets: number }
  | { op: 'subscribed'; count: number; ms: number }
  | { op: 'closed' }
  | { op: 'error'; message: string };

// Byte 10 of a frame is the first letter of its event name: `{"event":"…`. Benchmark events
// are named bench-…, or client-… when the clients send them; everything the server sends on its
// own is pusher:… or pusher_internal:….
const EVENT_NAME_AT = '{"event":"'.length;
const B = 'b'.charCodeAt(0);
const C = 'c'.charCodeAt(0);
const PING = '{"event":"pusher:ping"';
const SUCCEEDED = '{"event":"pusher_internal:subscription_succeeded"';
const PONG = '{"event":"pusher:pong","data":{}}';

const sockets: WebSocket[] = [];
let delivered = 0;
let target = Infinity;
let closing = false;
// The wave of subscriptions the 'subscribe' command awaits: confirmations left, and what to call at 0.
let awaiting: { left: number; done: () => void } | null = null;

function report(message: ClientReport): void {
  process.send!(message);
}

function fail(message: string): void {
  report({ op: 'error', message });
}

function onFrame(this: WebSocket, data: Buffer): void {
  const first = data[EVENT_NAME_AT];
  if (first === B || first === C) {
    if (++delivered === target) report({ op: 'delivered', count: delivered });
  } else if (data.length < 64 && data.toString().startsWith(PING)) {
    // Servers ping sockets that have been silent for their activity timeout; answer like pusher-js.
    this.send(PONG);
  } else if (awaiting !== null && data.toString('latin1', 0, SUCCEEDED.length) === SUCCEEDED) {
    if (--awaiting.left === 0) awaiting.done();
  }
}

// Resolves once the socket has had `pusher:connection_established`, and, when subscribing,
// `pusher_internal:subscription_succeeded`; rejects on anything else before that.
function openOne(url: string, channel: string | null, auth: { key: string; secret: string } | undefined): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    const setup = (data: Buffer): void => {
      const text = data.toString();
      if (text.startsWith('{"event":"pusher:connection_established"')) {
        if (channel === null) return ready();
        let signature: string | undefined;
        if (auth !== undefined && channel.startsWith('private-')) {
          const socketId = (JSON.parse(JSON.parse(text).data) as { socket_id: string }).socket_id;
          signature = `${auth.key}:${createHmac('sha256', auth.secret).update(`${socketId}:${channel}`).digest('hex')}`;
        }
        ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel, auth: signature } }));
      } else if (text.startsWith('{"event":"pusher_internal:subscription_succeeded"')) {
        ready();
      } else {
        reject(new Error(`unexpected frame while connecting: ${text.slice(0, 200)}`));
        ws.terminate();
      }
    };
    const ready = (): void => {
      ws.off('message', setup);
      ws.on('message', onFrame);
      resolve(ws);
    };
    ws.on('message', setup);
    ws.on('error', (err) => reject(err));
    ws.once('close', (code, reason) => {
      if (!closing) fail(`a socket closed unexpectedly: ${code} ${reason.toString()}`);
      reject(new Error(`closed while connecting: ${code} ${reason.toString()}`));
    });
  });
}

async function open(urls: string[], count: number, channel: string | null, wave: number, auth: { key: string; secret: string } | undefined): Promise<void> {
  const start = performance.now();
  closing = false;
  for (let done = 0; done < count; ) {
    const n = Math.min(wave, count - done);
    const batch: Array<Promise<WebSocket>> = [];
    for (let i = 0; i < n; i++) batch.push(openOne(urls[(done + i) % urls.length], channel, auth));
    sockets.push(...(await Promise.all(batch)));
    done += n;
  }
  report({ op: 'opened', count: sockets.length, ms: performance.now() - start });
}

// Waves of `wave` subscriptions per socket, so the confirmations queued on the server stay far
// below its 1 MB backpressure limit however many channels a socket takes.
async function subscribeAll(prefix: string, channels: number, wave: number): Promise<void> {
  const start = performance.now();
  for (let from = 0; from < channels; from += wave) {
    const n = Math.min(wave, channels - from);
    const done = new Promise<void>((resolve) => {
      awaiting = { left: n * sockets.length, done: resolve };
    });
    sockets.forEach((ws, i) => {
      for (let k = from; k < from + n; k++) ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: `${prefix}${i}-${k}` } }));
    });
    await done;
  }
  awaiting = null;
  report({ op: 'subscribed', count: channels * sockets.length, ms: performance.now() - start });
}

async function closeAll(): Promise<void> {
  closing = true;
  const closed = sockets.map((ws) => (ws.readyState === WebSocket.CLOSED ? null : new Promise((r) => ws.once('close', r))));
  for (const ws of sockets) ws.terminate();
  await Promise.all(closed);
  sockets.length = 0;
  report({ op: 'closed' });
}

process.on('message', (command: ClientCommand) => {
  switch (command.op) {
    case 'open':
      open(command.urls, command.count, command.channel, command.wave, command.auth).catch((err: Error) => fail(`opening sockets: ${err.message}`));
      return;
    case 'expect':
      delivered = 0;
      target = command.total;
      return;
    case 'count':
      report({ op: 'count', count: delivered, sockets: sockets.length });
      return;
    case 'trigger': {
      const frame = JSON.stringify({ event: command.event, channel: command.channel, data: command.data });
      for (let k = 0; k < command.count; k++) for (const ws of sockets) ws.send(frame);
      return;
    }
    case 'subscribe':
      subscribeAll(command.prefix, command.channels, command.wave).catch((err: Error) => fail(`subscribing: ${err.message}`));
      return;
    case 'close':
      closeAll().catch((err: Error) => fail(`closing sockets: ${err.message}`));
      return;
  }
});

// The runner going away takes the client with it.
process.on('disconnect', () => process.exit(0));
