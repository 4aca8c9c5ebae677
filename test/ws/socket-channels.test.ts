// SocketChannels: every shape (none, one name, a small array, a Map) answers alike, and the
// shape grows and shrinks with the subscriptions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelUser, forEachChannel, withChannel, withoutChannel, type SocketChannels } from '../../src/ws/socket-channels';

function entries(channels: SocketChannels): [string, string][] {
  const out: [string, string][] = [];
  forEachChannel(channels, (name, userId) => out.push([name, userId]));
  return out;
}

test('one non-presence channel is held as its name alone, the very string given', () => {
  const name = ['news', 'feed'].join('-');
  const channels = withChannel(null, name, '');
  assert.equal(channels, name);
  assert.equal(channelUser(channels, 'news-feed'), '');
  assert.equal(channelUser(channels, 'news'), undefined);
  assert.deepEqual(entries(channels), [['news-feed', '']]);
  assert.equal(withoutChannel(channels, 'other'), channels);
  assert.equal(withoutChannel(channels, 'news-feed'), null);
  assert.deepEqual(entries(null), []);
  assert.equal(channelUser(null, 'news-feed'), undefined);
});

test('a presence channel, or a second channel, makes a small array of names and user ids', () => {
  let channels = withChannel(null, 'presence-room', 'u1');
  assert.deepEqual(channels, ['presence-room', 'u1']);
  assert.equal(channelUser(channels, 'presence-room'), 'u1');
  channels = withoutChannel(channels, 'presence-room');
  assert.equal(channels, null);

  channels = withChannel(withChannel(null, 'news', ''), 'presence-room', 'u2');
  assert.deepEqual(channels, ['news', '', 'presence-room', 'u2']);
  assert.equal(channelUser(channels, 'news'), '');
  assert.equal(channelUser(channels, 'presence-room'), 'u2');
  // A name never matches a user id stored beside another name.
  assert.equal(channelUser(channels, 'u2'), undefined);
  channels = withoutChannel(channels, 'news');
  assert.deepEqual(entries(channels), [['presence-room', 'u2']]);
  assert.equal(withoutChannel(channels, 'presence-room'), null);
});

test('past eight channels the array becomes a Map, in subscription order, and empties to null', () => {
  let channels: SocketChannels = null;
  const names = Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? `presence-${i}` : `c${i}`));
  names.forEach((name, i) => {
    channels = withChannel(channels, name, name.startsWith('presence-') ? `user${i}` : '');
    assert.equal(channels instanceof Map, i >= 8, `after ${i + 1} channels`);
  });
  assert.deepEqual(
    entries(channels).map(([name]) => name),
    names,
  );
  assert.equal(channelUser(channels, 'presence-9'), 'user9');
  assert.equal(channelUser(channels, 'c10'), '');
  assert.equal(channelUser(channels, 'c9'), undefined);
  for (const name of names.slice(1)) channels = withoutChannel(channels, name);
  assert.deepEqual(entries(channels), [['presence-0', 'user0']]);
  assert.equal(withoutChannel(channels, 'presence-0'), null);
});
