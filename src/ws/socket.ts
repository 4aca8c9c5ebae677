import { randomFillSync } from 'node:crypto';
import type { WebSocket } from '../uws';
import type { AppState } from '../apps/app-state';
import { PusherError } from '../protocol/errors';
import type { SocketChannels } from './socket-channels';

/**
 * Per-socket state, kept to six fields that hold nothing of their own until used: uWS copies them
 * onto its socket object, whose out-of-object property array grows three fields at a time (a
 * seventh field would cost 24 bytes per socket), and memory per connection is a product figure.
 * Numbers must stay V8 small integers: one other number in a field boxes that field in every socket.
 */
export interface SocketData {
  /** Random part of the socket id `<nonce>.<slot>` (see SocketTable); a small integer. */
  nonce: number;
  /** This socket's slot in its app's SocketTable; -1 until it opens. */
  slot: number;
  app: AppState;
  /** The channels it is subscribed to, with its presence user id on each (see socket-channels.ts). */
  channels: SocketChannels;
  /** `clock()` at the last frame received; negated once the server has pinged it and awaits a pong. */
  activity: number;
  /**
   * Null while the socket is live; the refusal (unknown app, over quota…) for a socket refused at
   * upgrade; SOCKET_CLOSED once closed, so nothing is sent to or counted for it afterwards.
   */
  ended: PusherError | null;
}

/** The `ended` mark of a socket whose close has run. */
export const SOCKET_CLOSED = new PusherError(null, 'Socket closed');

/** A connected client socket. */
export type Socket = WebSocket<SocketData>;

/** The Pusher socket id of a socket: two integers joined by a dot. */
export function socketId(ws: Socket): string {
  return idOf(ws.getUserData());
}

// Nonces are drawn from random bytes fetched 1,024 at a time: crypto.randomInt per connect costs
// more and returns a heap number, which would box the field in every socket.
const nonces = new Int32Array(1024);
let nextNonce = nonces.length;

/** A random nonce in [1, 2^30), a small integer. */
export function randomNonce(): number {
  if (nextNonce === nonces.length) {
    randomFillSync(nonces);
    nextNonce = 0;
  }
  return nonces[nextNonce++] & 0x3fffffff || 1;
}

/** The socket id from the socket's state, which stays readable after uWS has closed the socket. */
export function idOf(data: SocketData): string {
  return `${data.nonce}.${data.slot}`;
}
