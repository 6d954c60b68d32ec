/**
 * Every Redis key Switchboard writes, built from the one key prefix (SPEC §9 `KEY_PREFIX`).
 * Nothing else in the code base spells a key.
 */
export function keys(prefix: string) {
  const p = prefix;
  return {
    prefix: p,
    // ---- registry (pods, sockets, users, rooms) ----
    /** ZSET pod id → last heartbeat (ms). */
    pods: `${p}:reg:pods`,
    // Pod ids, like user ids below, sit in braces: a pod named "gw:sockets" must not spell the
    // socket set of pod "gw".
    /** HASH startedAt, lastHeartbeatAt, connections. */
    pod: (podId: string) => `${p}:reg:pod:{${podId}}`,
    /** SET socket ids held by a pod. */
    podSockets: (podId: string) => `${p}:reg:pod:{${podId}}:sockets`,
    /** HASH userId, pod, connectedAt, name. */
    socket: (socketId: string) => `${p}:reg:sock:${socketId}`,
    /** SET rooms a socket is in. */
    socketRooms: (socketId: string) => `${p}:reg:sock:${socketId}:rooms`,
    // User ids sit in braces, which they cannot hold: user "ann:sockets" must not spell ann's set.
    /** SET socket ids of a user, across pods. */
    userSockets: (userId: string) => `${p}:reg:user:{${userId}}:sockets`,
    /** HASH status, text, lastSeen, name. Kept after the user leaves, with a TTL. */
    user: (userId: string) => `${p}:reg:user:{${userId}}`,
    /** ZSET (score 0) of online user ids, for lexicographic cursors. */
    online: `${p}:reg:online`,
    /** HASH userId → number of that user's sockets in the room. */
    roomUsers: (room: string) => `${p}:reg:room:${room}:users`,
    /** ZSET (score 0) of the room's user ids, for lexicographic member pages. */
    roomMembers: (room: string) => `${p}:reg:room:${room}:members`,
    /** ZSET (score 0) of rooms with at least one member. */
    rooms: `${p}:reg:rooms`,
    /** HASH of cluster counters: connections. */
    counters: `${p}:reg:counters`,
    /** String lock held by the pod reaping dead pods. */
    reaperLock: `${p}:reg:reaper-lock`,
    // ---- room history ----
    /** STREAM of a room's recent messages. */
    history: (room: string) => `${p}:hist:${room}`,
    // ---- notification inbox ----
    // The user id sits in braces, which user ids cannot hold: no user id spells another user's key
    // (a user "ann:items" must not reach ann's items).
    /** ZSET notification id → ts (ms). */
    inbox: (userId: string) => `${p}:inbox:{${userId}}`,
    /** HASH notification id → JSON of the notification. */
    inboxItems: (userId: string) => `${p}:inbox:{${userId}}:items`,
    /** SET of unread notification ids. */
    inboxUnread: (userId: string) => `${p}:inbox:{${userId}}:unread`,
    /** String marking a notification id as already delivered (idempotency), with a TTL. */
    delivered: (id: string) => `${p}:delivered:${id}`,
    // ---- operator console (admin service) ----
    // Kept apart from everything the gateways and the dispatcher write. The key holds a digest of
    // the session id, never the id itself: whoever reads Redis cannot replay a session cookie.
    /** STRING JSON of one console sign-in, with a TTL; `idDigest` is the SHA-256 (hex) of the cookie's session id. */
    consoleSession: (idDigest: string) => `${p}:console:session:${idDigest}`,
  };
}
export type Keys = ReturnType<typeof keys>;
