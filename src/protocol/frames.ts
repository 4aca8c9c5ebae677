import { PusherError, SubscriptionError } from './errors';

/** A frame received from a client, after shape checks. `data` is already parsed for pusher:* events. */
export interface ClientFrame {
  event: string;
  channel: string | undefined;
  data: unknown;
}

/**
 * Decodes one client message. Anything that is not a JSON object with a string `event` is
 * refused with a PusherError, which the caller sends back as `pusher:error`.
 */
export function decodeFrame(text: string): ClientFrame {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PusherError(null, 'Invalid JSON: every message must be a JSON object with an "event" field');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new PusherError(null, 'Invalid message: expected a JSON object with an "event" field');
  }
  const { event, channel, data } = parsed as Record<string, unknown>;
  if (typeof event !== 'string' || event === '') throw new PusherError(null, 'Invalid message: "event" must be a non-empty string');
  if (channel !== undefined && typeof channel !== 'string') throw new PusherError(null, 'Invalid message: "channel" must be a string');
  return { event, channel, data: event.startsWith('pusher:') ? parseEmbedded(data) : data };
}

// Pusher clients may send a pusher:* event's data as an object or as a JSON string of one.
function parseEmbedded(data: unknown): unknown {
  if (typeof data !== 'string') return data;
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

/** Reads a required string field of a pusher:* event's data, or refuses the frame. */
export function requireString(data: unknown, field: string, event: string): string {
  const value = data !== null && typeof data === 'object' ? (data as Record<string, unknown>)[field] : undefined;
  if (typeof value !== 'string') throw new PusherError(null, `Invalid ${event}: data.${field} must be a string`);
  return value;
}

/** Reads an optional string field (undefined when absent), refusing other types. */
export function optionalString(data: unknown, field: string, event: string): string | undefined {
  const value = data !== null && typeof data === 'object' ? (data as Record<string, unknown>)[field] : undefined;
  if (value !== undefined && typeof value !== 'string') throw new PusherError(null, `Invalid ${event}: data.${field} must be a string`);
  return value;
}

/** `pusher:connection_established`; its data is a JSON string, as protocol 7 specifies. */
export function connectionEstablished(socketId: string, activityTimeout: number): string {
  return `{"event":"pusher:connection_established","data":${JSON.stringify(JSON.stringify({ socket_id: socketId, activity_timeout: activityTimeout }))}}`;
}

/** `pusher:error` with `{code, message}`. */
export function errorFrame(code: number | null, message: string): string {
  return JSON.stringify({ event: 'pusher:error', data: { code, message } });
}

export const PING_FRAME = '{"event":"pusher:ping","data":{}}';
export const PONG_FRAME = '{"event":"pusher:pong","data":{}}';

/** `pusher_internal:subscription_succeeded`; `data` is the already-serialized payload. */
export function subscriptionSucceeded(channel: string, data: string): string {
  return JSON.stringify({ event: 'pusher_internal:subscription_succeeded', channel, data });
}

/** Serialized presence state sent in subscription_succeeded: `{presence:{ids,hash,count}}`. */
export function presenceData(members: Map<string, unknown>): string {
  const ids: string[] = [];
  // No prototype: a user id such as "__proto__" must be a key like any other.
  const hash: Record<string, unknown> = Object.create(null);
  for (const [id, info] of members) {
    ids.push(id);
    hash[id] = info;
  }
  return JSON.stringify({ presence: { ids, hash, count: ids.length } });
}

/** `pusher:subscription_error`, which pusher-js raises on the channel. */
export function subscriptionErrorFrame(channel: string, type: string, error: string, status: number): string {
  return JSON.stringify({ event: 'pusher:subscription_error', channel, data: { type, error, status } });
}

/** `pusher_internal:member_added` / `member_removed`. */
export function memberAdded(channel: string, userId: string, userInfo: unknown): string {
  return JSON.stringify({ event: 'pusher_internal:member_added', channel, data: JSON.stringify({ user_id: userId, user_info: userInfo }) });
}

export function memberRemoved(channel: string, userId: string): string {
  return JSON.stringify({ event: 'pusher_internal:member_removed', channel, data: JSON.stringify({ user_id: userId }) });
}

/** `pusher_internal:subscription_count`, which pusher-js turns into `pusher:subscription_count` and `channel.subscriptionCount`. */
export function subscriptionCountFrame(channel: string, count: number): string {
  return JSON.stringify({ event: 'pusher_internal:subscription_count', channel, data: { subscription_count: count } });
}

/** `pusher:cache_miss`: a new subscriber of a cache channel whose cache is empty. */
export function cacheMissFrame(channel: string): string {
  return JSON.stringify({ event: 'pusher:cache_miss', channel });
}

/** `pusher:signin_success` carrying the signed user data string. */
export function signinSuccess(userData: string): string {
  return JSON.stringify({ event: 'pusher:signin_success', data: { user_data: userData } });
}

/**
 * `pusher_internal:watchlist_events`, with one `{name, user_ids}` per non-empty group. pusher-js
 * (src/core/watchlist.ts) emits each group on `pusher.user.watchlist` under its name; data is an
 * object, which its decodeMessage passes through as it is.
 */
export function watchlistEvents(online: string[], offline: string[]): string {
  const events: { name: string; user_ids: string[] }[] = [];
  if (online.length > 0) events.push({ name: 'online', user_ids: online });
  if (offline.length > 0) events.push({ name: 'offline', user_ids: offline });
  return JSON.stringify({ event: 'pusher_internal:watchlist_events', data: { events } });
}

/** An app event as delivered to subscribers; serialized once per channel, never per recipient. */
export function eventFrame(event: string, channel: string, data: unknown, userId?: string): string {
  return JSON.stringify(userId === undefined ? { event, channel, data } : { event, channel, data, user_id: userId });
}

// V8 parses JSON of any depth without recursion, but JSON.stringify recurses and throws RangeError
// a few thousand levels down (its only other RangeError, a result longer than V8's longest string,
// is as much the sender's doing). Such data is refused, without a stack trace in the log.
function tooDeep(err: unknown, refusal: Error): unknown {
  return err instanceof RangeError ? refusal : err;
}

/** `eventFrame` for a client event, whose data came straight from the sender. */
export function clientEventFrame(event: string, channel: string, data: unknown, userId?: string): string {
  try {
    return eventFrame(event, channel, data, userId);
  } catch (err) {
    throw tooDeep(err, new PusherError(null, 'Invalid client event: data is nested too deeply'));
  }
}

// Levels of arrays a presence member's user_info is measured inside: more than the three levels
// down at which the presence hash of subscription_succeeded carries it, with room to spare, so that
// info accepted here also serializes there.
const MEMBER_INFO_DEPTH_MARGIN = 8;

/** The size of a presence member's user_info as JSON; info nested too deeply is refused as invalid channel_data. */
export function memberInfoBytes(channel: string, info: unknown): number {
  let wrapped = info;
  for (let i = 0; i < MEMBER_INFO_DEPTH_MARGIN; i++) wrapped = [wrapped];
  try {
    return Buffer.byteLength(JSON.stringify(wrapped)) - 2 * MEMBER_INFO_DEPTH_MARGIN;
  } catch (err) {
    throw tooDeep(err, new SubscriptionError(channel, 'InvalidChannelData', 'channel_data user_info is nested too deeply', 400));
  }
}
