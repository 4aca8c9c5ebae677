import type { Broadcaster } from '../adapter/adapter';
import type { FanOut } from '../adapter/fan-out';
import { settle } from '../adapter/settle';
import { userChannel } from '../protocol/channel-names';
import { ErrorCode, PusherError } from '../protocol/errors';
import { requireString, signinSuccess } from '../protocol/frames';
import { socketAuthValid } from '../protocol/signatures';
import { socketId, type Socket } from '../ws/socket';
import type { Watchlist } from './watchlist';

/**
 * User sign-in (`pusher:signin`) and per-user delivery on the user's `#server-to-user-<id>` channel;
 * for apps with watchlist events, the user's online status and its watchlist (see Watchlist).
 */
export class Users {
  constructor(
    private readonly fanOut: FanOut,
    private readonly broadcaster: Broadcaster,
    private readonly watchlist: Watchlist,
  ) {}

  /** Handles `pusher:signin`: verifies `HMAC(secret, "socket_id::user::user_data")` and binds the user. */
  signIn(ws: Socket, data: unknown): void | Promise<void> {
    const socket = ws.getUserData();
    const app = socket.app;
    const auth = requireString(data, 'auth', 'pusher:signin');
    const userData = requireString(data, 'user_data', 'pusher:signin');
    if (!socketAuthValid(app.config.key, app.config.secret, auth, `${socketId(ws)}::user::${userData}`)) {
      throw new PusherError(ErrorCode.unauthorized, 'Invalid signature for pusher:signin', true);
    }
    let user: { id?: unknown; watchlist?: unknown } | null;
    try {
      user = JSON.parse(userData);
    } catch {
      throw new PusherError(ErrorCode.unauthorized, 'pusher:signin user_data must be a JSON object', true);
    }
    const id = user?.id;
    if (typeof id !== 'string' || id === '') throw new PusherError(ErrorCode.unauthorized, 'pusher:signin user_data must have a non-empty string id', true);

    this.forget(ws);
    app.signedIn.set(ws, id);
    let sockets = app.users.get(id);
    let listening: void | Promise<void> = undefined;
    if (sockets === undefined) {
      app.users.set(id, (sockets = new Set()));
      listening = this.broadcaster.listen(app, userChannel(id));
      if (app.watched !== null) this.watchlist.cameOnline(app, id);
    }
    sockets.add(ws);
    app.awaitingSignin?.delete(ws);
    this.fanOut.join(ws, app, userChannel(id));
    // Confirmed once events sent to the user from any node reach this one.
    const confirmed = settle(listening, () => {
      if (socket.ended === null) this.fanOut.send(ws, signinSuccess(userData));
    });
    return app.watchlists === null ? confirmed : this.watchlist.watch(ws, user!.watchlist, confirmed);
  }

  /** Drops a signed-in socket from its user's set (on close or re-sign-in). */
  forget(ws: Socket): void {
    const socket = ws.getUserData();
    const app = socket.app;
    const userId = app.signedIn.get(ws);
    if (userId === undefined) return;
    if (app.watchlists !== null) this.watchlist.unwatch(ws);
    app.signedIn.delete(ws);
    const sockets = app.users.get(userId);
    if (sockets !== undefined) {
      sockets.delete(ws);
      if (sockets.size === 0) {
        app.users.delete(userId);
        this.broadcaster.unlisten(app, userChannel(userId));
        if (app.watched !== null) this.watchlist.wentOffline(app, userId);
      }
    }
    if (socket.ended === null) this.fanOut.leave(ws, app, userChannel(userId));
  }
}
