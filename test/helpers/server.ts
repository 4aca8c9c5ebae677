// Starts a real pws-server in this process and connects real clients to it: pusher-js for the
// browser side, the official `pusher` SDK for the backend side, and a raw `ws` socket for frames
// a well-behaved client would never send.
import { once } from 'node:events';
import Pusher from 'pusher';
import PusherJs from 'pusher-js';
import WebSocket from 'ws';
import { loadOptions, type Options } from '../../src/options';
import { Log } from '../../src/log';
import { Server } from '../../src/server';

export const APP = { id: 'app-id', key: 'app-key', secret: 'app-secret' };

/** A started server plus factories for clients pointed at it. */
export interface TestServer {
  server: Server;
  port: number;
  options: Options;
  /** http://127.0.0.1:<port><path> */
  url(path: string): string;
  /** The official backend SDK, signing with the given app's credentials. */
  sdk(app?: { id: string; key: string; secret: string }): Pusher;
  /** A pusher-js client whose channel authorization and user sign-in are signed by the SDK. */
  client(options?: ClientOptions): PusherJs;
  /** A raw WebSocket on /app/<key>. */
  raw(key?: string, query?: string): Promise<RawSocket>;
  stop(): Promise<void>;
}

export interface ClientOptions {
  key?: string;
  app?: { id: string; key: string; secret: string };
  /** Presence channel_data for this client; defaults to a user id derived from the socket id. */
  presence?: { user_id: string; user_info?: unknown };
  /** user_data for pusher:signin. */
  user?: { id: string; [k: string]: unknown };
}

/** Starts a server on a free loopback port; `env` holds option overrides by their variable names. */
export async function startServer(env: Record<string, string> = {}, configPath?: string): Promise<TestServer> {
  // No drain window by default, so every test's stop() is immediate; shutdown tests set their own.
  const options = loadOptions({ HOST: '127.0.0.1', PORT: '0', SHUTDOWN_GRACE_PERIOD: '0', ...env }, configPath);
  const server = new Server(options, new Log(options.debug, true));
  await server.start();
  const port = server.port;
  const clients: PusherJs[] = [];
  const raws: RawSocket[] = [];
  const sdk = (app = APP) => new Pusher({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(port), useTLS: false });
  return {
    server,
    port,
    options,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    sdk,
    client(opts = {}) {
      const app = opts.app ?? APP;
      const signer = sdk(app);
      const client = new PusherJs(opts.key ?? app.key, {
        cluster: 'local',
        wsHost: '127.0.0.1',
        wsPort: port,
        forceTLS: false,
        enabledTransports: ['ws'],
        disableStats: true,
        channelAuthorization: {
          customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: (err: Error | null, data: unknown) => void) => {
            try {
              const data = channelName.startsWith('presence-') ? (opts.presence ?? { user_id: `user-${socketId}` }) : undefined;
              callback(null, signer.authorizeChannel(socketId, channelName, data as Pusher.PresenceChannelData));
            } catch (err) {
              callback(err as Error, null);
            }
          },
        } as never,
        userAuthentication: {
          customHandler: ({ socketId }: { socketId: string }, callback: (err: Error | null, data: unknown) => void) => {
            try {
              callback(null, signer.authenticateUser(socketId, opts.user ?? { id: `user-${socketId}` }));
            } catch (err) {
              callback(err as Error, null);
            }
          },
        } as never,
      });
      clients.push(client);
      return client;
    },
    async raw(key = APP.key, query = 'protocol=7&client=js&version=8.6.0') {
      const socket = await RawSocket.connect(`ws://127.0.0.1:${port}/app/${key}?${query}`);
      raws.push(socket);
      return socket;
    },
    async stop() {
      for (const client of clients) client.disconnect();
      for (const raw of raws) raw.close();
      await server.stop();
    },
  };
}

/** Resolves when a pusher-js client is connected, with its socket id. */
export async function connected(client: PusherJs): Promise<string> {
  if (client.connection.state !== 'connected') {
    await new Promise<void>((resolve, reject) => {
      client.connection.bind('connected', () => resolve());
      client.connection.bind('failed', () => reject(new Error('pusher-js connection failed')));
    });
  }
  return client.connection.socket_id;
}

/** Subscribes and resolves with the subscription_succeeded data, or rejects with the subscription error. */
export function subscribed(client: PusherJs, name: string): Promise<any> {
  const channel = client.subscribe(name);
  return new Promise((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', (data: unknown) => resolve(data));
    channel.bind('pusher:subscription_error', (err: unknown) => reject(Object.assign(new Error(`subscription to ${name} failed: ${JSON.stringify(err)}`), { data: err })));
  });
}

/** Resolves with the next `event` on `channel` for a pusher-js client. */
export function nextEvent(client: PusherJs, channel: string, event: string): Promise<any> {
  return new Promise((resolve) => {
    const ch = client.channel(channel);
    const handler = (data: unknown) => {
      ch.unbind(event, handler);
      resolve(data);
    };
    ch.bind(event, handler);
  });
}

/** Waits until a pusher-js client has seen everything sent to it before now (a ping round trip). */
export function drained(client: PusherJs): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (m: { event: string }) => {
      if (m.event !== 'pusher:pong') return;
      client.connection.unbind('message', onMessage);
      resolve();
    };
    client.connection.bind('message', onMessage);
    client.connection.send_event('pusher:ping', {});
  });
}

/** A raw WebSocket client that records every frame, for exact protocol assertions. */
export class RawSocket {
  readonly frames: any[] = [];
  /** Frames as received, byte for byte. */
  readonly texts: string[] = [];
  private waiters: { predicate: (f: any) => boolean; resolve: (f: any) => void; from: number }[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString();
      this.texts.push(text);
      this.frames.push(JSON.parse(text));
      this.waiters = this.waiters.filter((w) => {
        const found = this.frames.slice(w.from).find(w.predicate);
        if (found !== undefined) w.resolve(found);
        return found === undefined;
      });
    });
    this.closed = once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
  }

  static async connect(url: string, options?: WebSocket.ClientOptions): Promise<RawSocket> {
    const ws = new WebSocket(url, options);
    const socket = new RawSocket(ws);
    await once(ws, 'open');
    return socket;
  }

  /** The socket id from pusher:connection_established (waits for it). */
  async socketId(): Promise<string> {
    const frame = await this.next((f) => f.event === 'pusher:connection_established');
    return JSON.parse(frame.data).socket_id;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The first frame received (so far or later) matching `predicate`, counting from frame index `from`. */
  next(predicate: (f: any) => boolean, from = 0, timeoutMs = 5000): Promise<any> {
    const found = this.frames.slice(from).find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`)), timeoutMs);
      this.waiters.push({ predicate, from, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  /** Sends `frame` and waits for the next frame matching `predicate` after it. */
  async request(frame: unknown, predicate: (f: any) => boolean): Promise<any> {
    const from = this.frames.length;
    this.send(frame);
    return this.next(predicate, from);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}

/** Polls `check` until it returns true (for server-side state that settles asynchronously). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
