/**
 * Lua scripts that keep the registry consistent: every change of a socket, its rooms and the
 * counts derived from them happens in one atomic step. Every key a script touches arrives in
 * `KEYS`, built by `keys()`; all of them share the registry's hash tag, so each call is one slot
 * on Redis Cluster. Times come from Redis (`TIME`), the one clock every pod shares.
 *
 * Scripts that change presence or membership also take the lifecycle-event outbox and sequence
 * keys and, in ARGV, whether events are on, the event id base and the outbox bound (`EV` below:
 * on ('1' / '0'), id base, outbox max length).
 */

const helpers = `
local call = redis.call
local function now_ms()
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- a number as Redis should store it: Lua would send 1.8e15 in %.14g, losing digits
local function fmt(n)
  return string.format('%.0f', n)
end
-- Lifecycle events (SPEC §7a), written in the same step as the change that causes them: the events
-- of one call are one entry of the outbox stream: one append however many there are, the least a
-- transition can cost. The stream id gives their time; the fields are 'i', the caller's unique id
-- base, and 'e', one line per event, "<type> <cause> <room> <user> <lastSeen>" (absent ones empty;
-- room names and user ids hold no spaces). The relay numbers them (seq). Past its bound (no relay
-- keeping up) the stream loses its oldest entries, which the relay counts from the stream's own
-- count of entries added.
local ev = {}
local function ev_init(out, state, on, base, max)
  if on == '1' then ev.out, ev.state, ev.base, ev.max, ev.lines = out, state, base, max, {} end
end
local function emit(cause, typ, room, uid, lastSeen)
  if not ev.out then return end
  ev.lines[#ev.lines + 1] = typ .. ' ' .. cause .. ' ' .. (room or '') .. ' ' .. (uid or '') .. ' ' .. (lastSeen and fmt(lastSeen) or '')
end
local function ev_done(result)
  if ev.out and #ev.lines > 0 then
    call('XADD', ev.out, 'MAXLEN', '~', ev.max, '*', 'i', ev.base, 'e', table.concat(ev.lines, '\\n'))
  end
  return result
end
-- sr: the socket's rooms, ru / rm: the room's users hash and members zset, rz: the rooms index.
-- 1: the user's first socket in, 0: another socket of the user was in already, -1: no change
local function join_room(sr, ru, rm, rz, uid, room, cause)
  if call('SADD', sr, room) == 0 then return -1 end
  if call('HINCRBY', ru, uid, 1) == 1 then
    call('ZADD', rm, 0, uid)
    if call('ZADD', rz, 0, room) == 1 then emit(cause, 'room.occupied', room) end
    emit(cause, 'member.added', room, uid)
    return 1
  end
  return 0
end
-- 1: the user's last socket out, 0: another socket of the user stays, -1: no change
local function leave_room(sr, ru, rm, rz, uid, room, cause)
  if call('SREM', sr, room) == 0 then return -1 end
  if call('HINCRBY', ru, uid, -1) <= 0 then
    call('HDEL', ru, uid)
    call('ZREM', rm, uid)
    emit(cause, 'member.removed', room, uid)
    if call('HLEN', ru) == 0 then
      call('DEL', ru, rm)
      call('ZREM', rz, room)
      emit(cause, 'room.vacated', room)
    end
    return 1
  end
  return 0
end
-- w: the watched index; an instance's last watch of a user taken back
local function unwatch(w, uid)
  if call('HINCRBY', w, uid, -1) <= 0 then call('HDEL', w, uid) end
end
local function fresh(instances, iid, maxAge, now)
  local hb = call('ZSCORE', instances, iid)
  return hb and tonumber(hb) > now - tonumber(maxAge)
end
`;

/**
 * KEYS: instances, instance, instanceSockets, counters, online, socket, userSockets, user,
 *   eventOutbox, eventState, watched, and optionally the user's unread set (inbox) when it shares
 *   the registry's server (not on Cluster: another slot)
 * ARGV: sid, uid, pod, instanceId, name, maxConnections, guest ('1' / '0'), EV
 * → { accepted (1, 0: over the limit, -1: unknown instance), userSockets, cameOnline, status, now,
 *   unread (the unread set's size when accepted and the key was given, else -1), watched (1 when
 *   the user came online and some instance has a watcher of it: only then is there anyone to tell) }
 * A socket registered already is accepted again unchanged (a retried call). With the unread set,
 * a handshake is one round trip: the limit, the registration and `session:ready`'s unread count.
 */
export const CONNECT = `${helpers}
local sid, uid, pod, iid, name, guest = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7]
ev_init(KEYS[9], KEYS[10], ARGV[8], ARGV[9], ARGV[10])
if not call('ZSCORE', KEYS[1], iid) then return {-1, 0, 0, '', 0} end
local now = now_ms()
local function unread()
  if KEYS[12] then return call('SCARD', KEYS[12]) end
  return -1
end
if call('EXISTS', KEYS[6]) == 1 then
  return {1, call('SCARD', KEYS[7]), 0, call('HGET', KEYS[8], 'status') or 'online', now, unread(), 0}
end
local n = call('SCARD', KEYS[7])
if n >= tonumber(ARGV[6]) then return {0, n, 0, '', now} end
call('HSET', KEYS[6], 'userId', uid, 'pod', pod, 'instance', iid, 'connectedAt', now, 'name', name, 'guest', guest)
call('SADD', KEYS[3], sid)
call('HINCRBY', KEYS[2], 'connections', 1)
call('HINCRBY', KEYS[4], 'connections', 1)
call('SADD', KEYS[7], sid)
local came = 0
if n == 0 then
  came = 1
  call('ZADD', KEYS[5], 0, uid)
  call('HSET', KEYS[8], 'status', 'online', 'lastSeen', now)
  call('HDEL', KEYS[8], 'text')
  emit('connect', 'user.online', nil, uid)
end
if name ~= '' then call('HSET', KEYS[8], 'name', name) end
call('PERSIST', KEYS[8])
local watched = 0
if came == 1 then watched = call('HEXISTS', KEYS[11], uid) end
return ev_done({1, n + 1, came, call('HGET', KEYS[8], 'status') or 'online', now, unread(), watched})
`;

/**
 * KEYS: socket, socketRooms, roomUsers, roomMembers, rooms, eventOutbox, eventState. ARGV: uid, room, EV
 * → { joined (1, 0: already in, -1: unknown socket), firstForUser, members }
 */
export const JOIN = `${helpers}
if call('HGET', KEYS[1], 'userId') ~= ARGV[1] then return {-1, 0, 0} end
ev_init(KEYS[6], KEYS[7], ARGV[3], ARGV[4], ARGV[5])
local r = join_room(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], 'join')
local members = call('HLEN', KEYS[3])
if r < 0 then return {0, 0, members} end
return ev_done({1, r, members})
`;

/**
 * KEYS: socket, socketRooms, roomUsers, roomMembers, rooms, eventOutbox, eventState. ARGV: uid, room, EV
 * → { left (1, 0: not in, -1: unknown socket), lastForUser, members }
 */
export const LEAVE = `${helpers}
if call('HGET', KEYS[1], 'userId') ~= ARGV[1] then return {-1, 0, 0} end
ev_init(KEYS[6], KEYS[7], ARGV[3], ARGV[4], ARGV[5])
local r = leave_room(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], 'leave')
local members = call('HLEN', KEYS[3])
if r < 0 then return {0, 0, members} end
return ev_done({1, r, members})
`;

/**
 * Removes sockets of one instance: a clean disconnect (one socket, by the pod holding it), the
 * reaper's removal of a dead instance's sockets, or a pod dropping what the registry holds in its
 * name but it does not.
 * KEYS: instances, instance, instanceSockets, counters, online, rooms, eventOutbox, eventState,
 *   kicked, watched, then per socket socket, socketRooms, userSockets, user, then per room of the
 *   socket roomUsers, roomMembers
 * ARGV: instanceId, maxAgeMs ('' when the caller is the instance; else the instance must still be
 *   silent for that long, checked here, in the same step), userTtlSec, the events' cause
 *   (`disconnect`, or `admin` for a socket an admin disconnect closes; `reaped`), EV, then per
 *   socket sid, uid, guest, number of rooms, the rooms
 * → { 'alive' } when the instance beat meanwhile; else { now, per socket { code, wentOffline,
 *   status, rooms, watched (wentOffline and the user has watchers) } } with code 1 (removed; rooms:
 *   those the user's last socket left), 0 (not registered to this instance: nothing done), -2 (the
 *   registry holds it in more rooms than were given: nothing done, rooms: the missing ones, to call
 *   again with).
 */
export const DROP_SOCKETS = `${helpers}
local iid, maxAge, ttl, why = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
if maxAge ~= '' and fresh(KEYS[1], iid, maxAge, now) then return {'alive'} end
ev_init(KEYS[7], KEYS[8], ARGV[5], ARGV[6], ARGV[7])
local out = {now}
local k, a = 11, 8
while a <= #ARGV do
  local sid, uid, guest, n = ARGV[a], ARGV[a + 1], ARGV[a + 2] == '1', tonumber(ARGV[a + 3])
  local sk, sr, us, uk = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local rooms, given = {}, {}
  for i = 1, n do
    local room = ARGV[a + 3 + i]
    rooms[i] = {room, KEYS[k + 2 + 2 * i], KEYS[k + 3 + 2 * i]}
    given[room] = true
  end
  local f = call('HMGET', sk, 'userId', 'instance')
  if not f[1] then
    call('SREM', KEYS[3], sid)
    out[#out + 1] = {0, 0, '', {}}
  elseif f[1] ~= uid or f[2] ~= iid then
    -- held in another instance's name: not this instance's to count
    if f[2] ~= iid then call('SREM', KEYS[3], sid) end
    out[#out + 1] = {0, 0, '', {}}
  else
    local missing = {}
    for _, room in ipairs(call('SMEMBERS', sr)) do
      if not given[room] then missing[#missing + 1] = room end
    end
    if #missing > 0 then
      out[#out + 1] = {-2, 0, '', missing}
    else
      local cause = why
      if ev.out and call('ZREM', KEYS[9], sid) == 1 and why == 'disconnect' then cause = 'admin' end
      local left = {}
      for _, r in ipairs(rooms) do
        if leave_room(sr, r[2], r[3], KEYS[6], uid, r[1], cause) == 1 then left[#left + 1] = r[1] end
      end
      call('DEL', sk, sr)
      if call('SREM', KEYS[3], sid) == 1 and call('EXISTS', KEYS[2]) == 1 then
        call('HINCRBY', KEYS[2], 'connections', -1)
      end
      call('HINCRBY', KEYS[4], 'connections', -1)
      call('SREM', us, sid)
      local offline, watched = 0, 0
      if call('SCARD', us) == 0 then
        offline = 1
        watched = call('HEXISTS', KEYS[10], uid)
        call('ZREM', KEYS[5], uid)
        emit(cause, 'user.offline', nil, uid, now)
        -- nothing of a guest outlives its last socket
        if guest then call('DEL', uk) else call('HSET', uk, 'lastSeen', now); call('EXPIRE', uk, ttl) end
      elseif not guest then
        call('HSET', uk, 'lastSeen', now)
      end
      local status = 'online'
      if not guest then status = call('HGET', uk, 'status') or 'online' end
      out[#out + 1] = {1, offline, status, left, watched}
    end
  end
  k = k + 4 + 2 * n
  a = a + 4 + n
end
return ev_done(out)
`;

/**
 * Puts a live instance's sockets back as the pod holds them: after the instance was reaped while
 * alive (a long stall, a partition) or after Redis lost writes. Sockets missing from the registry
 * are registered (no connection limit: they are connected); each socket's rooms are made what
 * the pod says, joining the missing ones and leaving the extra ones.
 * Its events: `connect` for users online again, `join` for memberships back, `leave` for the
 * memberships the pod does not hold.
 * KEYS: instances, instance, instanceSockets, counters, online, rooms, eventOutbox, eventState, then
 *   per socket socket, socketRooms, userSockets, user, then per room (its rooms, then the extra
 *   ones) roomUsers, roomMembers
 * ARGV: instanceId, pod, EV, then per socket sid, uid, name, guest, connectedAt, number of rooms,
 *   number of extra rooms, the rooms, the extra rooms
 * → { 'unknown' } when the instance has no heartbeat; else { now, per socket { state, cameOnline,
 *   status, joined rooms, left rooms } } with state 1 (registered again), 0 (was registered),
 *   -1 (the socket id belongs to another instance or user: nothing done)
 */
export const RESTORE = `${helpers}
local iid, pod = ARGV[1], ARGV[2]
if not call('ZSCORE', KEYS[1], iid) then return {'unknown'} end
ev_init(KEYS[7], KEYS[8], ARGV[3], ARGV[4], ARGV[5])
local now = now_ms()
local out = {now}
local k, a = 9, 6
while a <= #ARGV do
  local sid, uid, name, guest, at = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local n, x = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local sk, sr, us, uk = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local f = call('HMGET', sk, 'userId', 'instance')
  if f[1] and (f[1] ~= uid or f[2] ~= iid) then
    out[#out + 1] = {-1, 0, '', {}, {}}
  else
    local state, came = 0, 0
    if not f[1] then
      state = 1
      call('HSET', sk, 'userId', uid, 'pod', pod, 'instance', iid, 'connectedAt', at, 'name', name, 'guest', guest)
      call('SADD', KEYS[3], sid)
      call('HINCRBY', KEYS[2], 'connections', 1)
      call('HINCRBY', KEYS[4], 'connections', 1)
      call('SADD', us, sid)
      if call('SCARD', us) == 1 then
        came = 1
        call('ZADD', KEYS[5], 0, uid)
        -- a returning user keeps the status the registry remembers
        if not call('HGET', uk, 'status') then call('HSET', uk, 'status', 'online') end
        call('HSET', uk, 'lastSeen', now)
        emit('connect', 'user.online', nil, uid)
      end
      if name ~= '' then call('HSET', uk, 'name', name) end
      call('PERSIST', uk)
    end
    local joined, left = {}, {}
    for i = 1, n + x do
      local room, ru, rm = ARGV[a + 6 + i], KEYS[k + 2 + 2 * i], KEYS[k + 3 + 2 * i]
      if i <= n then
        if join_room(sr, ru, rm, KEYS[6], uid, room, 'join') == 1 then joined[#joined + 1] = room end
      elseif leave_room(sr, ru, rm, KEYS[6], uid, room, 'leave') == 1 then
        left[#left + 1] = room
      end
    end
    out[#out + 1] = {state, came, call('HGET', uk, 'status') or 'online', joined, left}
  end
  k = k + 4 + 2 * (n + x)
  a = a + 7 + n + x
end
return ev_done(out)
`;

/**
 * KEYS: instances, instance. ARGV: instanceId, pod, startedAt ('' on the first beat: now)
 * → { known (0: new, or reaped while it was silent), now, startedAt }
 */
export const HEARTBEAT = `${helpers}
local now = now_ms()
local known = call('ZSCORE', KEYS[1], ARGV[1]) and 1 or 0
call('ZADD', KEYS[1], now, ARGV[1])
call('HSET', KEYS[2], 'pod', ARGV[2], 'lastHeartbeatAt', now)
local started = ARGV[3]
if started == '' then started = now end
call('HSETNX', KEYS[2], 'startedAt', started)
call('HSETNX', KEYS[2], 'connections', 0)
return {known, now, tonumber(call('HGET', KEYS[2], 'startedAt'))}
`;

/** KEYS: instances. ARGV: maxAgeMs → { now, { instance ids silent for longer (at most 100) } } */
export const SILENT = `${helpers}
local now = now_ms()
return {now, call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])), 'LIMIT', 0, 100)}
`;

/**
 * Removes an instance once it holds no socket and no watch.
 * KEYS: instances, instance, instanceSockets, instanceWatched. ARGV: instanceId, maxAgeMs ('' for
 *   the instance's own shutdown; else it must still be silent that long)
 * → 1 removed; 0 sockets or watches remain (on shutdown the instance is then marked silent since
 *   forever, so the next reaper takes them); -1 the instance beat meanwhile
 */
export const DROP_INSTANCE = `${helpers}
if call('SCARD', KEYS[3]) > 0 or call('SCARD', KEYS[4]) > 0 then
  if ARGV[2] == '' then call('ZADD', KEYS[1], 0, ARGV[1]) end
  return 0
end
if ARGV[2] ~= '' and fresh(KEYS[1], ARGV[1], ARGV[2], now_ms()) then return -1 end
call('ZREM', KEYS[1], ARGV[1])
call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 1
`;

/**
 * The watched index: who has watchers anywhere, so that presence changes of users nobody watches
 * are not broadcast at all. An instance counts once per user, however many of its sockets watch.
 * KEYS: instances, instanceWatched, watched. ARGV: instanceId, then user ids
 * → -1 the instance is not registered (nothing done: its restore watches again); else the number of
 *   users this instance did not watch yet
 */
export const WATCH = `${helpers}
if not call('ZSCORE', KEYS[1], ARGV[1]) then return -1 end
local n = 0
for i = 2, #ARGV do
  if call('SADD', KEYS[2], ARGV[i]) == 1 then
    call('HINCRBY', KEYS[3], ARGV[i], 1)
    n = n + 1
  end
end
return n
`;

/** KEYS: instanceWatched, watched. ARGV: user ids this instance no longer watches → how many it did. */
export const UNWATCH = `${helpers}
local n = 0
for i = 1, #ARGV do
  if call('SREM', KEYS[1], ARGV[i]) == 1 then
    unwatch(KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
`;

/**
 * Takes back up to `count` of an instance's watches (a reaped or departing instance).
 * KEYS: instances, instanceWatched, watched. ARGV: instanceId, maxAgeMs ('' for the instance's own
 *   shutdown; else it must still be silent that long), count
 * → -1 the instance beat meanwhile; else how many watches remain
 */
export const RELEASE_WATCHES = `${helpers}
if ARGV[2] ~= '' and fresh(KEYS[1], ARGV[1], ARGV[2], now_ms()) then return -1 end
local users = call('SPOP', KEYS[2], tonumber(ARGV[3]))
for _, uid in ipairs(users) do unwatch(KEYS[3], uid) end
return call('SCARD', KEYS[2])
`;

/** KEYS: user, userSockets. ARGV: status, text → 1 if the user is online */
export const SET_STATUS = `${helpers}
call('HSET', KEYS[1], 'status', ARGV[1])
if ARGV[2] == '' then call('HDEL', KEYS[1], 'text') else call('HSET', KEYS[1], 'text', ARGV[2]) end
return call('SCARD', KEYS[2]) > 0 and 1 or 0
`;

/**
 * Marks a user's sockets as closed by an admin, so that their departures carry `cause: admin`.
 * KEYS: userSockets, kicked. ARGV: ttlMs → the number of sockets marked
 */
export const KICK = `${helpers}
local now = now_ms()
call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local sids = call('SMEMBERS', KEYS[1])
for _, sid in ipairs(sids) do call('ZADD', KEYS[2], now + tonumber(ARGV[1]), sid) end
return #sids
`;

/** Releases a lock only if this caller holds it. KEYS: lock. ARGV: token */
export const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
