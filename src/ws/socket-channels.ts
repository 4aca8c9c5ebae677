/**
 * The channels one socket is subscribed to, each with the socket's presence user id there ('' on
 * other channels), in the smallest shape that holds them. Most sockets are on one channel or a
 * few, and memory per subscribed socket is a product figure: a Map costs about 180 bytes even
 * with one entry, which is more than the rest of a socket's JS state.
 *
 * - null: no channel;
 * - a string: the name of the one channel, not a presence channel;
 * - an array [name, userId, name, userId, …]: up to SMALL channels;
 * - a Map, name → user id, beyond that.
 *
 * Names are stored as given: the caller passes the string its Channel entry holds, so that
 * thousands of sockets on one channel share one string rather than each keeping the copy parsed
 * from its own subscribe frame.
 */
export type SocketChannels = string | string[] | Map<string, string> | null;

// Beyond this many channels a linear search costs more than a Map's memory saves.
const SMALL = 8;

/** The socket's user id on `name` ('' outside presence channels), or undefined when not subscribed. */
export function channelUser(channels: SocketChannels, name: string): string | undefined {
  if (channels === null) return undefined;
  if (typeof channels === 'string') return channels === name ? '' : undefined;
  if (Array.isArray(channels)) {
    for (let i = 0; i < channels.length; i += 2) if (channels[i] === name) return channels[i + 1];
    return undefined;
  }
  return channels.get(name);
}

/** `channels` with `name` added (it must not be there yet); the caller stores what is returned. */
export function withChannel(channels: SocketChannels, name: string, userId: string): SocketChannels {
  if (channels === null) return userId === '' ? name : [name, userId];
  if (typeof channels === 'string') return [channels, '', name, userId];
  if (Array.isArray(channels)) {
    if (channels.length < SMALL * 2) {
      channels.push(name, userId);
      return channels;
    }
    const map = new Map<string, string>();
    for (let i = 0; i < channels.length; i += 2) map.set(channels[i], channels[i + 1]);
    channels = map;
  }
  return channels.set(name, userId);
}

/** `channels` without `name`; the caller stores what is returned. */
export function withoutChannel(channels: SocketChannels, name: string): SocketChannels {
  if (channels === null || typeof channels === 'string') return channels === name ? null : channels;
  if (Array.isArray(channels)) {
    for (let i = 0; i < channels.length; i += 2) {
      if (channels[i] !== name) continue;
      channels.splice(i, 2);
      break;
    }
    return channels.length === 0 ? null : channels;
  }
  channels.delete(name);
  return channels.size === 0 ? null : channels;
}

/** Calls `visit` with each channel's name and the socket's user id there, in subscription order. */
export function forEachChannel(channels: SocketChannels, visit: (name: string, userId: string) => void): void {
  if (channels === null) return;
  if (typeof channels === 'string') {
    visit(channels, '');
  } else if (Array.isArray(channels)) {
    for (let i = 0; i < channels.length; i += 2) visit(channels[i], channels[i + 1]);
  } else {
    for (const [name, userId] of channels) visit(name, userId);
  }
}
