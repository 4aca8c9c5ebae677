/** The four channel types; the name's prefix decides. */
export type ChannelKind = 'public' | 'private' | 'presence' | 'encrypted';

export function channelKind(name: string): ChannelKind {
  if (name.startsWith('private-encrypted-')) return 'encrypted';
  if (name.startsWith('private-')) return 'private';
  if (name.startsWith('presence-')) return 'presence';
  return 'public';
}

// Pusher's channel name alphabet; '#' is reserved for server channels such as #server-to-user-*.
const CHANNEL_NAME = /^[-a-zA-Z0-9_=@,.;]+$/;

/** True when `name` is a channel a client may subscribe to and an API call may target. */
export function validChannelName(name: string, maxLength: number): boolean {
  return name.length <= maxLength && CHANNEL_NAME.test(name);
}

/** Prefix of the per-user server channels; '#' keeps them out of the client channel alphabet. */
export const USER_CHANNEL_PREFIX = '#server-to-user-';

/** The server-only channel that carries events sent to one user (`sendToUser`). */
export function userChannel(userId: string): string {
  return USER_CHANNEL_PREFIX + userId;
}

/**
 * The server-only channel on which a user's online and offline changes reach the sockets watching
 * that user (watchlist events); '#' keeps it out of reach of clients and the REST API.
 */
export function watchlistChannel(userId: string): string {
  return `#watchlist-${userId}`;
}

/** True for `#server-to-user-<id>` with a non-empty id. */
export function isUserChannel(name: string): boolean {
  return name.startsWith(USER_CHANNEL_PREFIX) && name.length > USER_CHANNEL_PREFIX.length;
}

/** The one rule for a channel a REST call names, to trigger on or to read: a client channel, or a user's server channel. */
export function validApiChannelName(name: string, maxLength: number): boolean {
  return validChannelName(name, maxLength) || isUserChannel(name);
}

// Cache is orthogonal to the kind: cache-, private-cache-, private-encrypted-cache-, presence-cache-.
const CACHE_CHANNEL = /^(?:private-encrypted-|private-|presence-)?cache-/;

/** True for a cache channel, which keeps the last event triggered through the REST API for new subscribers. */
export function isCacheChannel(name: string): boolean {
  return CACHE_CHANNEL.test(name);
}
