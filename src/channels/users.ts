import type { AppState } from '../apps';
import { ErrorCode, PusherError } from '../protocol/errors';
import type { FanOut } from '../adapter/fan-out';
import { requireString, signinSuccess } from '../protocol/frames';
import { socketAuthValid } from '../protocol/signatures';
import type { Socket } from '../ws/socket';
import { userChannel } from '../protocol/channel-names';
import { socketId } from '../ws/socket-table';

/** User sign-in (`pusher:signin`), per-user delivery and terminating a user's connections. */
export class Users {
  constructor(private readonly fanOut: FanOut) {}

  /** Handles `pusher:signin`: verifies `HMAC(secret, "socket_id::user::user_data")` and binds the user. */
  signIn(ws: Socket, data: unknown): void {
    const socket = ws.getUserData();
    const app = socket.app;
    const auth = requireString(data, 'auth', 'pusher:signin');
    const userData = requireString(data, 'user_data', 'pusher:signin');
    if (!socketAuthValid(app.config.key, app.config.secret, auth, `${socketId(ws)}::user::${userData}`)) {
      throw new PusherError(ErrorCode.unauthorized, 'Invalid signature for pusher:signin', true);
    }
    let id: unknown;
    try {
      id = JSON.parse(userData)?.id;
    } catch {
      throw new PusherError(ErrorCode.unauthorized, 'pusher:signin user_data must be a JSON object', true);
    }
    if (typeof id !== 'string' || id === '') throw new PusherError(ErrorCode.unauthorized, 'pusher:signin user_data must have a non-empty string id', true);

    if (socket.userId !== null) this.forget(ws);
    socket.userId = id;
    let sockets = app.users.get(id);
    if (sockets === undefined) app.users.set(id, (sockets = new Set()));
    sockets.add(ws);
    app.awaitingSignin?.delete(ws);
    ws.subscribe(app.topic(userChannel(id)));
    this.fanOut.send(ws, signinSuccess(userData));
  }

  /** Drops a socket from its user's set (on close or re-sign-in). */
  forget(ws: Socket): void {
    const socket = ws.getUserData();
    if (socket.userId === null) return;
    const sockets = socket.app.users.get(socket.userId);
    if (sockets !== undefined) {
      sockets.delete(ws);
      if (sockets.size === 0) socket.app.users.delete(socket.userId);
    }
    if (socket.ended === null) ws.unsubscribe(socket.app.topic(userChannel(socket.userId)));
    socket.userId = null;
  }

  /** Closes every connection of a user on this node with 4009, as `terminate_connections` asks. */
  terminate(app: AppState, userId: string): void {
    const sockets = app.users.get(userId);
    if (sockets === undefined) return;
    // Copied: each close removes the socket from this set.
    for (const ws of [...sockets]) this.fanOut.close(ws, ErrorCode.unauthorized, 'You got disconnected by the app.');
  }
}
