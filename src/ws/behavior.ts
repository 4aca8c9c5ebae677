import { AppState } from '../apps/app-state';
import type { Apps } from '../apps/apps';
import type { AppLookup } from '../apps/app-sync';
import type { Channels } from '../channels/channels';
import { relayClientEvent } from '../channels/client-events';
import { ErrorCode, PusherError, SubscriptionError } from '../protocol/errors';
import type { Broadcaster, ChannelState } from '../adapter/adapter';
import type { FanOut } from '../adapter/fan-out';
import type { ChannelEvents } from '../channels/events';
import type { ConsoleTap } from '../console/tap';
import type { Refusals } from '../limits/refusals';
import type { Log } from '../log';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { Options } from '../options';
import { PONG_FRAME, connectionEstablished, decodeFrame, errorFrame, subscriptionErrorFrame } from '../protocol/frames';
import { SOCKET_CLOSED, idOf, randomNonce, socketId, type Socket, type SocketData } from './socket';
import { clock } from '../clock';
import type { Users } from '../channels/users';
import type { HttpRequest, HttpResponse, us_socket_context_t, WebSocketBehavior } from '../uws';

// Decodes frames straight from uWS's ArrayBuffer, without wrapping it in a Buffer first.
const UTF8 = new TextDecoder();

const NO_LIMITS = { maxPresenceMembersPerChannel: 1, maxPresenceMemberSizeInKb: 1, maxChannelNameLength: 1, maxEventChannelsAtOnce: 1, maxEventNameLength: 1, maxEventPayloadInKb: 1, maxEventBatchSize: 1 };
// Stands in for the app of a socket refused before it had one (unknown key); never counted.
const NO_APP = new AppState(
  { id: '', key: '', secret: '', maxConnections: 0, maxBackendEventsPerSecond: -1, maxClientEventsPerSecond: -1, maxReadRequestsPerSecond: -1, enableClientMessages: false, enabled: false, userAuthentication: false, enableSubscriptionCount: false, webhooks: [], enableWatchlistEvents: false, ...NO_LIMITS },
  -1,
);

/** The part of SocketData that upgrade hands to uWS (uWS runs open right inside res.upgrade). */
type UpgradeData = Pick<SocketData, 'app' | 'ended'>;

/** What the WebSocket side needs from the rest of the server. */
export interface WsContext {
  apps: Apps;
  /** Apps from a database: asked for a key memory does not know. Null with the config file's apps. */
  lookup: AppLookup | null;
  options: Options;
  fanOut: FanOut;
  broadcaster: Broadcaster;
  state: ChannelState;
  events: ChannelEvents | null;
  channels: Channels;
  users: Users;
  metrics: PwsMetrics | null;
  /** Counts quota and rate-limit refusals; null with metrics off. */
  refusals: Refusals | null;
  log: Log;
  /** The console's event log; null with CONSOLE_ENABLED off. */
  console: ConsoleTap | null;
  /** Why new connections are refused right now (shutting down, over memory), or null. */
  admissionRefusal(): PusherError | null;
}

/** The uWS behaviour for `/app/:key`: upgrade checks, then frames in, handlers, errors out. */
export function wsBehavior(ctx: WsContext): WebSocketBehavior<SocketData> {
  const { options, metrics } = ctx;
  const maxMessageBytes = options.wsMaxMessageSizeInKb * 1024;
  return {
    // uWS drops a connection over maxPayloadLength without a close frame, which clients see as 1006.
    // It gets twice the limit as a hard ceiling, and messages between the two are closed below with
    // 1009, so a client is told why; only a message over the ceiling is cut off unread.
    maxPayloadLength: maxMessageBytes * 2,
    // Silence is handled by the ActivityMonitor's Pusher-level pings, not by uWS's idle timer.
    idleTimeout: 0,
    // A socket more than 1 MB behind is closed rather than silently skipped by uWS publishes,
    // which would otherwise count as sent for as long as the client lags. What its buffer held at
    // the close is still counted: at most this much per slow socket (see docs/metrics.md).
    maxBackpressure: 1024 * 1024,
    closeOnBackpressureLimit: true,

    upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t) {
      const key = req.getParameter(0) ?? '';
      const app = ctx.apps.findByKey(key);
      if (app === undefined && ctx.lookup !== null) {
        upgradeAfterLookup(ctx, ctx.lookup, res, req, context, key);
        return;
      }
      // Only what open cannot know: uWS copies each field onto the socket through V8's generic
      // property API, which costs more per field than open's own stores.
      const data: UpgradeData = { app: app ?? NO_APP, ended: refusal(ctx, app, req.getQuery('protocol')) };
      res.upgrade(data, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },

    open(ws: Socket) {
      const socket = ws.getUserData();
      // The rest of SocketData, in the same order for every socket, so that all share one shape.
      socket.nonce = randomNonce();
      socket.slot = -1;
      socket.channels = null;
      socket.activity = clock();
      const refused = socket.ended;
      if (refused !== null) {
        // Refused sockets get Pusher's close code so clients know whether to retry; they were never accepted, so
        // they count only as refusals, by that code.
        const code = refused.code ?? ErrorCode.reconnect;
        metrics?.countRefusal(code);
        ws.send(errorFrame(refused.code, refused.message));
        ws.end(code, refused.message);
        return;
      }
      const app = socket.app;
      socket.slot = app.sockets.add(ws);
      app.awaitingSignin?.set(ws, socket.activity);
      app.clientEventBuckets?.reset(socket.slot, performance.now());
      if (metrics !== null) {
        metrics.connected.add(app.metricsSlot, 1);
        metrics.newConnections.add(app.metricsSlot, 1);
      }
      ctx.fanOut.send(ws, connectionEstablished(socketId(ws), options.activityTimeout));
      ctx.console?.connection(app, ws);
      if (ctx.log.debugEnabled) ctx.log.debug(`connected ${socketId(ws)} app=${app.config.id}`);
    },

    message(ws: Socket, message: ArrayBuffer, isBinary: boolean) {
      const socket = ws.getUserData();
      if (socket.ended !== null) return;
      socket.activity = clock();
      if (metrics !== null) {
        metrics.socketReceivedBytes.add(socket.app.metricsSlot, message.byteLength);
        metrics.wsMessagesReceived.add(socket.app.metricsSlot, 1);
      }
      if (message.byteLength > maxMessageBytes) {
        ws.end(1009, `Message larger than ${options.wsMaxMessageSizeInKb} KB`);
        return;
      }
      try {
        // The Pusher protocol is JSON text; a binary frame is a client bug, not something to guess at.
        if (isBinary) throw new PusherError(null, 'Binary messages are not supported: send JSON text frames');
        // A promise only when the cluster's state is consulted; reportError checks the socket is still open.
        handleFrame(ctx, ws, UTF8.decode(message))?.catch((err) => reportError(ctx, ws, socket, err));
      } catch (err) {
        reportError(ctx, ws, socket, err);
      }
    },

    close(ws: Socket, code: number) {
      const socket = ws.getUserData();
      const refused = socket.ended !== null;
      socket.ended = SOCKET_CLOSED;
      if (refused) return;
      const app = socket.app;
      app.sockets.remove(socket.slot);
      app.awaitingSignin?.delete(ws);
      ctx.channels.leaveAll(ws);
      ctx.users.forget(ws);
      if (metrics !== null) {
        metrics.connected.add(app.metricsSlot, -1);
        metrics.newDisconnections.add(app.metricsSlot, 1);
        metrics.countClose(code);
      }
      ctx.console?.disconnection(app, ws, code);
      if (ctx.log.debugEnabled) ctx.log.debug(`disconnected ${socketId(ws)}`);
    },
  };
}

// A key memory does not know, with apps from a database: the upgrade waits for the store's
// answer (bounded, and remembered when there is no such app), then goes on as for a known key.
function upgradeAfterLookup(ctx: WsContext, lookup: AppLookup, res: HttpResponse, req: HttpRequest, context: us_socket_context_t, key: string): void {
  const protocol = req.getQuery('protocol');
  const secKey = req.getHeader('sec-websocket-key');
  const secProtocol = req.getHeader('sec-websocket-protocol');
  const secExtensions = req.getHeader('sec-websocket-extensions');
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  void lookup.byKey(key).then((found) => {
    if (aborted) return;
    const app = found === null || found === 'unavailable' ? undefined : found;
    const ended = found === 'unavailable' ? new PusherError(ErrorCode.reconnect, 'The app store does not answer: try again', true) : refusal(ctx, app, protocol);
    const data: UpgradeData = { app: app ?? NO_APP, ended };
    res.cork(() => res.upgrade(data, secKey, secProtocol, secExtensions, context));
  });
}

function refusal(ctx: WsContext, app: AppState | undefined, protocol: string | undefined): PusherError | null {
  if (app === undefined) return new PusherError(ErrorCode.unknownApp, 'App key does not exist', true);
  if (!app.config.enabled) return new PusherError(ErrorCode.appDisabled, 'App is disabled', true);
  if (protocol !== undefined && protocol !== '' && !/^[5-7]$/.test(protocol)) {
    return new PusherError(ErrorCode.unsupportedProtocol, `Unsupported protocol version ${protocol}: this server speaks 5 to 7`, true);
  }
  const max = app.config.maxConnections;
  if (max >= 0 && ctx.state.connections(app) >= max) {
    ctx.refusals?.count(app, 'connection_quota');
    return new PusherError(ErrorCode.overConnectionQuota, 'The app has reached its connection quota', true);
  }
  return ctx.admissionRefusal();
}

function handleFrame(ctx: WsContext, ws: Socket, text: string): void | Promise<void> {
  const frame = decodeFrame(text);
  switch (frame.event) {
    case 'pusher:ping':
      ctx.fanOut.send(ws, PONG_FRAME);
      return;
    case 'pusher:pong':
      return;
    case 'pusher:subscribe':
      return ctx.channels.subscribe(ws, frame.data);
    case 'pusher:unsubscribe':
      return ctx.channels.unsubscribe(ws, frame.data);
    case 'pusher:signin':
      return ctx.users.signIn(ws, frame.data);
  }
  if (frame.event.startsWith('client-')) {
    relayClientEvent(ctx, ws, frame.event, frame.channel, frame.data);
    return;
  }
  throw new PusherError(null, `Unsupported event "${frame.event.slice(0, 100)}"`);
}

// The one place a WebSocket handler failure becomes a frame; nothing escapes to uWS.
function reportError(ctx: WsContext, ws: Socket, socket: SocketData, err: unknown): void {
  if (socket.ended !== null) return;
  if (err instanceof SubscriptionError) {
    ctx.fanOut.send(ws, subscriptionErrorFrame(err.channel, err.type, err.message, err.status));
    return;
  }
  if (err instanceof PusherError) {
    if (err.close) ctx.fanOut.close(ws, err.code ?? ErrorCode.reconnect, err.message);
    else ctx.fanOut.send(ws, errorFrame(err.code, err.message));
    return;
  }
  ctx.log.error(`unexpected error handling a frame from ${idOf(socket)}: ${(err as Error)?.stack ?? err}`);
  ctx.fanOut.send(ws, errorFrame(null, 'Internal server error'));
}
