// The Lua scripts behind RedisChannelState: each decides an edge (first, last) atomically on
// the cluster-wide counts and records what this node added under its own key, so a dead node's
// share can be taken out again. Keys are one app's (one hash slot); see keys.ts for the layout.
import { createHash } from 'node:crypto';
import type { Script } from './redis-link';

/** A script and its SHA-1. */
export function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

// The app's next edge version (in the key given): above every version handed out before, and at least
// Redis's clock in microseconds, so it still grows after Redis restarted empty or failed over to
// a replica that missed the last writes (whose clock is close). Nodes deliver an edge only when it
// is newer than the last they delivered for the same channel and member (see edge-order.ts).
const NEXT_VERSION = `
local function nextVersion(key)
  local t = redis.call('TIME')
  local v = math.max(tonumber(redis.call('GET', key) or '0') + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('SET', key, string.format('%.0f', v))
  return v
end
`;

/**
 * KEYS subs, owned, members, info, version. ARGV channel, presence (1/0), user id ('' on other
 * channels), user_info JSON, max members.
 * The user becomes a member for this node when this node holds no membership of it yet: that is
 * its first socket here, or a later one after the first was refused (the channel was full) or
 * its join did not reach Redis. So a second socket cannot pass a full channel as a non-member.
 * Returns {full, memberAdded, subscriptionCount, version, [user, info]…}; a full channel still
 * counts the subscription (the caller unsubscribes it like any other), never the member; the
 * member list is the state as of `version`.
 */
export const JOIN = script(`${NEXT_VERSION}
local ch, user = ARGV[1], ARGV[3]
local full, added = 0, 0
if user ~= '' then
  local mf = 'm\\n' .. ch .. '\\n' .. user
  if redis.call('HEXISTS', KEYS[2], mf) == 0 then
    local n = tonumber(redis.call('HGET', KEYS[3], user) or '0')
    if n == 0 and redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[5]) then
      full = 1
    else
      if n == 0 then
        added = 1
        redis.call('HSET', KEYS[4], user, ARGV[4])
      end
      redis.call('HSET', KEYS[3], user, n + 1)
      redis.call('HSET', KEYS[2], mf, 1)
    end
  end
end
local count = redis.call('HINCRBY', KEYS[1], ch, 1)
redis.call('HINCRBY', KEYS[2], 's\\n' .. ch, 1)
local out = {full, added, count, nextVersion(KEYS[5])}
if ARGV[2] == '1' and full == 0 then
  local all = redis.call('HGETALL', KEYS[4])
  for i = 1, #all do out[#out + 1] = all[i] end
end
return out
`);

/**
 * KEYS subs, owned, members, info, version. ARGV channel, user id ('' unless it was the user's last socket here).
 * Only what this node added is taken out, so a leave after a reap or a Redis restart changes nothing.
 * Returns {vacated, memberRemoved, subscriptionCount, version}.
 */
export const LEAVE = script(`${NEXT_VERSION}
local ch, user = ARGV[1], ARGV[2]
local removed, vacated = 0, 0
if user ~= '' and redis.call('HDEL', KEYS[2], 'm\\n' .. ch .. '\\n' .. user) == 1 then
  if redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
    redis.call('HDEL', KEYS[3], user)
    redis.call('HDEL', KEYS[4], user)
    removed = 1
  end
end
local sf = 's\\n' .. ch
local count
if redis.call('HEXISTS', KEYS[2], sf) == 1 then
  if redis.call('HINCRBY', KEYS[2], sf, -1) <= 0 then redis.call('HDEL', KEYS[2], sf) end
  count = redis.call('HINCRBY', KEYS[1], ch, -1)
  if count <= 0 then
    redis.call('HDEL', KEYS[1], ch)
    count = 0
    vacated = 1
  end
else
  count = tonumber(redis.call('HGET', KEYS[1], ch) or '0')
end
return {vacated, removed, count, nextVersion(KEYS[5])}
`);

/**
 * KEYS subs, owned, conns. ARGV app key prefix, node id. Takes everything a dead node added out
 * of the app's state; its edges take one version.
 * Returns {n, channel, user … (n/2 members removed), v, vacated channel … (v), c, channel, count …
 * (c/2 channels left with fewer subscribers), version, user … (gone offline)}.
 */
export const REAP = script(`${NEXT_VERSION}
local fields = redis.call('HGETALL', KEYS[2])
local removed, vacated, counted, offline = {}, {}, {}, {}
for i = 1, #fields, 2 do
  local f, n = fields[i], tonumber(fields[i + 1])
  local kind, rest = string.sub(f, 1, 1), string.sub(f, 3)
  if kind == 's' then
    local left = redis.call('HINCRBY', KEYS[1], rest, -n)
    if left <= 0 then
      redis.call('HDEL', KEYS[1], rest)
      vacated[#vacated + 1] = rest
    else
      counted[#counted + 1] = rest
      counted[#counted + 1] = left
    end
  elseif kind == 'm' then
    local nl = string.find(rest, '\\n', 1, true)
    local ch, user = string.sub(rest, 1, nl - 1), string.sub(rest, nl + 1)
    local mk = ARGV[1] .. 'members:' .. ch
    if redis.call('HINCRBY', mk, user, -1) <= 0 then
      redis.call('HDEL', mk, user)
      redis.call('HDEL', ARGV[1] .. 'info:' .. ch, user)
      removed[#removed + 1] = ch
      removed[#removed + 1] = user
    end
  else
    if redis.call('HINCRBY', ARGV[1] .. 'online', rest, -1) <= 0 then
      redis.call('HDEL', ARGV[1] .. 'online', rest)
      offline[#offline + 1] = rest
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[2])
local out = {#removed}
for i = 1, #removed do out[#out + 1] = removed[i] end
out[#out + 1] = #vacated
for i = 1, #vacated do out[#out + 1] = vacated[i] end
out[#out + 1] = #counted
for i = 1, #counted do out[#out + 1] = counted[i] end
out[#out + 1] = nextVersion(ARGV[1] .. 'version')
for i = 1, #offline do out[#out + 1] = offline[i] end
return out
`);

/**
 * KEYS online, owned, version. ARGV user ids signed in on this node (each its first socket here).
 * Returns {version, user…}: the users that had no signed-in socket on any node before (came
 * online); a user this node already recorded changes nothing.
 */
export const ONLINE = script(`${NEXT_VERSION}
local out = {nextVersion(KEYS[3])}
for i = 1, #ARGV do
  local user = ARGV[i]
  if redis.call('HSETNX', KEYS[2], 'u\\n' .. user, 1) == 1 and redis.call('HINCRBY', KEYS[1], user, 1) == 1 then
    out[#out + 1] = user
  end
end
return out
`);

/**
 * KEYS online, owned, version. ARGV user ids no longer signed in on this node. Only what this
 * node recorded is taken out. Returns {version, user…}: the users now signed in on no node (gone offline).
 */
export const OFFLINE = script(`${NEXT_VERSION}
local out = {nextVersion(KEYS[3])}
for i = 1, #ARGV do
  local user = ARGV[i]
  if redis.call('HDEL', KEYS[2], 'u\\n' .. user) == 1 and redis.call('HINCRBY', KEYS[1], user, -1) <= 0 then
    redis.call('HDEL', KEYS[1], user)
    out[#out + 1] = user
  end
end
return out
`);

/**
 * KEYS subs, owned. ARGV app key prefix, then records `s channel subscriptions` and
 * `m channel user info`: what this node holds now. Sets the node's entry of each record to that
 * (adding or taking out the difference in the shared counts), without touching its other
 * entries, so no other node ever sees them missing. Decides no edge: a rewrite brings Redis back
 * to what the clients were told. Part of a rewrite, one batch of records at a time.
 */
export const SYNC = script(`
local i = 2
while i <= #ARGV do
  local ch = ARGV[i + 1]
  if ARGV[i] == 's' then
    local sf, n = 's\\n' .. ch, tonumber(ARGV[i + 2])
    local delta = n - tonumber(redis.call('HGET', KEYS[2], sf) or '0')
    if delta ~= 0 then
      redis.call('HSET', KEYS[2], sf, n)
      if redis.call('HINCRBY', KEYS[1], ch, delta) <= 0 then redis.call('HDEL', KEYS[1], ch) end
    end
    i = i + 3
  else
    local user = ARGV[i + 2]
    if redis.call('HSETNX', KEYS[2], 'm\\n' .. ch .. '\\n' .. user, 1) == 1 then
      if redis.call('HINCRBY', ARGV[1] .. 'members:' .. ch, user, 1) == 1 then
        redis.call('HSET', ARGV[1] .. 'info:' .. ch, user, ARGV[i + 3])
      end
    end
    i = i + 4
  end
end
return 1
`);

/**
 * KEYS subs, owned. ARGV app key prefix, then fields of owned (`s\n<channel>`, `m\n<channel>\n<user>`)
 * this node no longer holds. Takes out each one still there, deciding no edge (see SYNC).
 */
export const PRUNE = script(`
for i = 2, #ARGV do
  local f = ARGV[i]
  local n = tonumber(redis.call('HGET', KEYS[2], f))
  if n then
    redis.call('HDEL', KEYS[2], f)
    local kind, rest = string.sub(f, 1, 1), string.sub(f, 3)
    if kind == 's' then
      if redis.call('HINCRBY', KEYS[1], rest, -n) <= 0 then redis.call('HDEL', KEYS[1], rest) end
    elseif kind == 'm' then
      local nl = string.find(rest, '\\n', 1, true)
      local ch, user = string.sub(rest, 1, nl - 1), string.sub(rest, nl + 1)
      local mk = ARGV[1] .. 'members:' .. ch
      if redis.call('HINCRBY', mk, user, -1) <= 0 then
        redis.call('HDEL', mk, user)
        redis.call('HDEL', ARGV[1] .. 'info:' .. ch, user)
      end
    end
  end
end
return 1
`);

/** KEYS conns. ARGV node id, this node's connections. Returns the app's connections on every node. */
export const CONNECTIONS = script(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local total = 0
for _, n in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(n) end
return total
`);

/** KEYS subs. ARGV app key prefix, name prefix, with user counts (1/0). Returns {channel, subscriptions, users …}. */
export const CHANNELS = script(`
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local ch = all[i]
  if string.sub(ch, 1, #ARGV[2]) == ARGV[2] then
    out[#out + 1] = ch
    out[#out + 1] = tonumber(all[i + 1])
    out[#out + 1] = ARGV[3] == '1' and redis.call('HLEN', ARGV[1] .. 'members:' .. ch) or 0
  end
end
return out
`);

/** KEYS subs, members, version. ARGV channel. Returns {subscriptions, users, version (of this state)}. */
export const CHANNEL = script(`
return {tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0'), redis.call('HLEN', KEYS[2]), tonumber(redis.call('GET', KEYS[3]) or '0')}
`);

/** KEYS info. Returns {user, info …}. */
export const MEMBERS = script(`
return redis.call('HGETALL', KEYS[1])
`);
