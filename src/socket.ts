import type { WebSocket } from './uws';
import type { AppState } from './apps';
import type { PusherError } from './errors';

/**
 * Per-socket state, kept small: idle memory per connection is a product figure.
 * Channel bookkeeping is allocated on first subscribe, not per connection.
 */
export interface SocketData {
  id: string;
  app: AppState;
  /** Channel name → presence user id ('' on non-presence channels). Null until the first subscribe. */
  channels: Map<string, string> | null;
  /** Signed-in user id, or null. */
  userId: string | null;
  /** Milliseconds timestamp of the upgrade, for the sign-in deadline. */
  openedAt: number;
  /** Milliseconds timestamp of the last frame received. */
  lastActivity: number;
  /** When the server pinged this socket for silence, 0 if not waiting for a pong. */
  pingedAt: number;
  /** Set once close has started, so nothing is sent to or counted for a closing socket. */
  closed: boolean;
  /** Why the upgrade was refused (unknown app, over quota…): sent as pusher:error, then closed. */
  refusal: PusherError | null;
}

/** A connected client socket. */
export type Socket = WebSocket<SocketData>;
