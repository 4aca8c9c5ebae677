/**
 * Typed failures. Handlers throw or return these; one place per transport turns them into a
 * `pusher:error` frame or an HTTP status with a JSON body.
 */

/** A protocol-level error sent to one socket as `pusher:error`; `close` also ends that socket. */
export class PusherError extends Error {
  constructor(
    readonly code: number | null,
    message: string,
    readonly close = false,
  ) {
    super(message);
  }
}

/** A subscription refused for one channel (`pusher:subscription_error`); the socket stays open. */
export class SubscriptionError extends Error {
  constructor(
    readonly channel: string,
    readonly type: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** A REST API failure answered with `status` and `{"error": message}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Headers of the answer besides Content-Type, e.g. Retry-After. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

/** A configuration problem: start-up prints the message as one line and exits 1. */
export class OptionsError extends Error {}

/** A port that cannot be bound at start-up (in use, or not permitted): also one line and exit 1. */
export class ListenError extends Error {
  constructor(
    readonly option: string,
    readonly host: string,
    readonly port: number,
  ) {
    super(`${option}: cannot listen on ${host}:${port} (in use, or not permitted)`);
  }
}

/** Pusher's documented close and error codes (https://pusher.com/docs/channels/library_auth_reference/pusher-websockets-protocol). */
export const ErrorCode = {
  unknownApp: 4001,
  appDisabled: 4003,
  unsupportedProtocol: 4007,
  overConnectionQuota: 4004,
  unauthorized: 4009,
  overCapacity: 4100,
  reconnect: 4200,
  pongTimeout: 4201,
  // Pusher's "client event rejected due to rate limit". A client event refused for any other
  // reason gets code null, as Pusher sends it.
  clientOverRateLimit: 4301,
  // Not one of Pusher's documented codes: tells a user signing in with more than 100 watchlist ids
  // that only the first 100 are watched (sign-in still succeeds).
  watchlistTooLong: 4302,
} as const;
