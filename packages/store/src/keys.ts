/**
 * Every Redis key Switchboard writes, built from the one key prefix (SPEC §9 `KEY_PREFIX`).
 * Nothing else in the code base spells a key, and scripts receive every key they touch as `KEYS`.
 *
 * Where a key lives on Redis Cluster is decided here, by its hash tag (the first `{…}`):
 *
 * - the registry (instances, sockets, users' sockets and presence, room membership, the cluster
 *   counters and indexes) shares the tag `{reg}`: one slot, so each connect, join, leave,
 *   disconnect or reap is one atomic script and every count stays exact (docs/scaling.md has the
 *   measured rate one shard carries);
 * - the lifecycle-event outbox and its sequence share `{reg}` too: each event is written by the
 *   registry script whose change causes it;
 * - a user's inbox and publish budget are tagged with the user id, a room's history with the room
 *   name, a notification id's delivery record with the id, a webhook endpoint's pending events with
 *   the endpoint id: spread over the cluster by their natural owner, and each script touches one
 *   of them.
 *
 * Ids that appear in a key sit in braces, which they cannot hold (user ids, pod and instance ids,
 * room names, notification ids never contain `{` or `}`), so no id spells another's key: user
 * "ann:sockets" does not reach ann's socket set. Inside a registry key the first braces are
 * `{reg}`, so an id's braces there only keep names apart.
 */
export function keys(prefix: string) {
  const p = prefix;
  const reg = `${p}:{reg}`;
  return {
    prefix: p,
    // ---- registry (one slot: `{reg}`) ----
    /** ZSET gateway instance id → last heartbeat (Redis time, ms). */
    instances: `${reg}:instances`,
    /** HASH pod, startedAt, lastHeartbeatAt, connections of one gateway process. */
    instance: (instanceId: string) => `${reg}:instance:{${instanceId}}`,
    /** SET socket ids held by an instance. */
    instanceSockets: (instanceId: string) => `${reg}:instance:{${instanceId}}:sockets`,
    /** HASH userId, pod, instance, connectedAt, name, guest. */
    socket: (socketId: string) => `${reg}:sock:{${socketId}}`,
    /** SET rooms a socket is in. */
    socketRooms: (socketId: string) => `${reg}:sock:{${socketId}}:rooms`,
    /** SET socket ids of a user, across pods. */
    userSockets: (userId: string) => `${reg}:user:{${userId}}:sockets`,
    /** HASH status, text, lastSeen, name. Kept a while after a user leaves; a guest's goes with it. */
    user: (userId: string) => `${reg}:user:{${userId}}`,
    /** ZSET (score 0) of online user ids, for lexicographic cursors. */
    online: `${reg}:online`,
    /** HASH userId → number of that user's sockets in the room. */
    roomUsers: (room: string) => `${reg}:room:{${room}}:users`,
    /** ZSET (score 0) of the room's user ids, for lexicographic member pages. */
    roomMembers: (room: string) => `${reg}:room:{${room}}:members`,
    /** ZSET (score 0) of rooms with at least one member. */
    rooms: `${reg}:rooms`,
    /** SET user ids some socket of an instance watches (`presence:watch`). */
    instanceWatched: (instanceId: string) => `${reg}:instance:{${instanceId}}:watched`,
    /** HASH userId → number of instances with a socket watching that user: who has watchers at all. */
    watched: `${reg}:watched`,
    /** HASH of cluster counters: connections. */
    counters: `${reg}:counters`,
    /** String lock held by the instance reaping dead ones. */
    reaperLock: `${reg}:reaper-lock`,
    // ---- lifecycle events (SPEC §7a), in the registry's slot: written by its scripts ----
    /** STREAM outbox of lifecycle events, in `seq` order, until the relay has handed them on. */
    eventOutbox: `${reg}:events`,
    /** HASH seq (the last given to an event), lost (entries trimmed unread at the outbox's bound). */
    eventState: `${reg}:events:state`,
    /** ZSET socket id → expiry (Redis ms): sockets an admin disconnect is closing (`cause: admin`). */
    kicked: `${reg}:kicked`,
    /** String lock held by the dispatcher relaying the outbox. */
    eventRelayLock: `${reg}:events:relay-lock`,
    // ---- room history (per room) ----
    /** STREAM of a room's recent messages. */
    history: (room: string) => `${p}:hist:{${room}}`,
    /** HASH bytes: the size of what a room's stream holds, kept with it. */
    historyMeta: (room: string) => `${p}:hist:{${room}}:meta`,
    // ---- per user, outside the registry ----
    /** HASH messages, bytes: what a user published in the current budget window. */
    publishBudget: (userId: string) => `${p}:budget:{${userId}}`,
    /** ZSET notification id → ts (ms). */
    inbox: (userId: string) => `${p}:inbox:{${userId}}`,
    /** HASH notification id → JSON of the notification. */
    inboxItems: (userId: string) => `${p}:inbox:{${userId}}:items`,
    /** SET of unread notification ids. */
    inboxUnread: (userId: string) => `${p}:inbox:{${userId}}:unread`,
    // ---- notifications (per id) ----
    /** String: the delivery record of a notification id (idempotency window), see NotificationLedger. */
    notification: (id: string) => `${p}:notif:{${id}}`,
    // ---- webhook endpoints (per endpoint: `{<endpoint id>}`) ----
    /** ZSET of event JSON scored by the endpoint's counter: its events not yet delivered, in outbox order. */
    webhookPending: (endpointId: string) => `${p}:wh:{${endpointId}}:pending`,
    /** HASH lastPlace (outbox place of the newest event taken: stream id and index), n (event counter), inflight (the batch job delivering), jobs (job counter), lastDeliveredAt, lastError, failingSince. */
    webhookState: (endpointId: string) => `${p}:wh:{${endpointId}}:state`,
    /** HASH endpoint id → JSON { url (without credentials or query), since }: the endpoints the dispatchers deliver to. */
    webhookEndpoints: `${p}:wh:endpoints`,
    // ---- operator console (admin service) ----
    // Kept apart from everything the gateways and the dispatcher write. The key holds a digest of
    // the session id, never the id itself: whoever reads Redis cannot replay a session cookie.
    /** STRING JSON of one console sign-in, with a TTL; `idDigest` is the SHA-256 (hex) of the cookie's session id. */
    consoleSession: (idDigest: string) => `${p}:console:session:${idDigest}`,
  };
}
export type Keys = ReturnType<typeof keys>;
