/**
 * Lua scripts that keep the registry consistent: every change of a socket, its rooms and the
 * counts derived from them happens in one atomic step. Keys are built from ARGV[1], the
 * registry base `<prefix>:reg`, exactly as `keys()` spells them.
 */

const helpers = `
local B = ARGV[1]
local function k(...) return B .. ':' .. table.concat({...}, ':') end
-- a user or pod id in braces, as keys() spells it
local function u(id) return '{' .. id .. '}' end
local function leave_room(sid, uid, room)
  if redis.call('SREM', k('sock', sid, 'rooms'), room) == 0 then return -1 end
  local ru = k('room', room, 'users')
  local c = redis.call('HINCRBY', ru, uid, -1)
  if c <= 0 then
    redis.call('HDEL', ru, uid)
    redis.call('ZREM', k('room', room, 'members'), uid)
    if redis.call('HLEN', ru) == 0 then
      redis.call('DEL', ru, k('room', room, 'members'))
      redis.call('ZREM', k('rooms'), room)
    end
    return 1
  end
  return 0
end
`;

/**
 * ARGV: base, sid, uid, pod, now, name, maxConnections, userTtlSec
 * → { accepted, userSocketCount, cameOnline, status }
 */
export const CONNECT = `${helpers}
local sid, uid, pod, now, name = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local max = tonumber(ARGV[7])
local us = k('user', u(uid), 'sockets')
if redis.call('EXISTS', k('sock', sid)) == 1 then
  return {1, redis.call('SCARD', us), 0, redis.call('HGET', k('user', u(uid)), 'status') or 'online'}
end
local n = redis.call('SCARD', us)
if n >= max then return {0, n, 0, ''} end
redis.call('HSET', k('sock', sid), 'userId', uid, 'pod', pod, 'connectedAt', now, 'name', name)
redis.call('SADD', k('pod', u(pod), 'sockets'), sid)
redis.call('HINCRBY', k('pod', u(pod)), 'connections', 1)
redis.call('HINCRBY', k('counters'), 'connections', 1)
redis.call('SADD', us, sid)
local uk = k('user', u(uid))
local came = 0
if n == 0 then
  came = 1
  redis.call('ZADD', k('online'), 0, uid)
  redis.call('HSET', uk, 'status', 'online', 'lastSeen', now)
  redis.call('HDEL', uk, 'text')
end
if name ~= '' then redis.call('HSET', uk, 'name', name) end
redis.call('PERSIST', uk)
return {1, n + 1, came, redis.call('HGET', uk, 'status') or 'online'}
`;

/** ARGV: base, sid, room → { joined, firstForUser, members } (joined -1: unknown socket) */
export const JOIN = `${helpers}
local sid, room = ARGV[2], ARGV[3]
local uid = redis.call('HGET', k('sock', sid), 'userId')
if not uid then return {-1, 0, 0} end
local ru = k('room', room, 'users')
if redis.call('SADD', k('sock', sid, 'rooms'), room) == 0 then
  return {0, 0, redis.call('HLEN', ru)}
end
local c = redis.call('HINCRBY', ru, uid, 1)
if c == 1 then
  redis.call('ZADD', k('room', room, 'members'), 0, uid)
  redis.call('ZADD', k('rooms'), 0, room)
end
return {1, c == 1 and 1 or 0, redis.call('HLEN', ru)}
`;

/** ARGV: base, sid, room → { left, lastForUser, members } */
export const LEAVE = `${helpers}
local sid, room = ARGV[2], ARGV[3]
local uid = redis.call('HGET', k('sock', sid), 'userId')
if not uid then return {-1, 0, 0} end
local r = leave_room(sid, uid, room)
local members = redis.call('HLEN', k('room', room, 'users'))
if r < 0 then return {0, 0, members} end
return {1, r, members}
`;

/**
 * ARGV: base, sid, now, userTtlSec
 * → { userId, wentOffline, status, room1, room2, … } (rooms the user's last socket left); {} if unknown
 */
export const DISCONNECT = `${helpers}
local sid, now, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4])
local sk = k('sock', sid)
local f = redis.call('HMGET', sk, 'userId', 'pod')
local uid, pod = f[1], f[2]
if not uid then return {} end
local out = {uid, 0, ''}
local rooms = redis.call('SMEMBERS', k('sock', sid, 'rooms'))
for _, room in ipairs(rooms) do
  if leave_room(sid, uid, room) == 1 then table.insert(out, room) end
end
redis.call('DEL', sk, k('sock', sid, 'rooms'))
if redis.call('SREM', k('pod', u(pod), 'sockets'), sid) == 1 and redis.call('EXISTS', k('pod', u(pod))) == 1 then
  redis.call('HINCRBY', k('pod', u(pod)), 'connections', -1)
end
redis.call('HINCRBY', k('counters'), 'connections', -1)
local us = k('user', u(uid), 'sockets')
redis.call('SREM', us, sid)
local uk = k('user', u(uid))
redis.call('HSET', uk, 'lastSeen', now)
if redis.call('SCARD', us) == 0 then
  out[2] = 1
  redis.call('ZREM', k('online'), uid)
  redis.call('EXPIRE', uk, ttl)
end
out[3] = redis.call('HGET', uk, 'status') or 'online'
return out
`;

/** ARGV: base, pod, now, startedAt → 1 if the pod was known, 0 if it had been reaped (or is new) */
export const HEARTBEAT = `${helpers}
local pod, now, started = ARGV[2], ARGV[3], ARGV[4]
local known = redis.call('ZSCORE', k('pods'), pod) and 1 or 0
redis.call('ZADD', k('pods'), now, pod)
local pk = k('pod', u(pod))
redis.call('HSET', pk, 'lastHeartbeatAt', now)
redis.call('HSETNX', pk, 'startedAt', started)
redis.call('HSETNX', pk, 'connections', 0)
return known
`;

/** ARGV: base, pod → removes a pod that has no sockets left */
export const DROP_POD = `${helpers}
local pod = ARGV[2]
redis.call('ZREM', k('pods'), pod)
redis.call('DEL', k('pod', u(pod)))
if redis.call('SCARD', k('pod', u(pod), 'sockets')) == 0 then redis.call('DEL', k('pod', u(pod), 'sockets')) end
return 1
`;

/** ARGV: base, uid, status, text → 1 if the user is online */
export const SET_STATUS = `${helpers}
local uid, status, text = ARGV[2], ARGV[3], ARGV[4]
local uk = k('user', u(uid))
redis.call('HSET', uk, 'status', status)
if text == '' then redis.call('HDEL', uk, 'text') else redis.call('HSET', uk, 'text', text) end
return redis.call('SCARD', k('user', u(uid), 'sockets')) > 0 and 1 or 0
`;

/** Releases the reaper lock only if this pod holds it. KEYS[1] lock, ARGV[1] token */
export const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
