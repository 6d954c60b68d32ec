/** Default prefix of every Redis key and queue. @default 'sb' */
export const DEFAULT_KEY_PREFIX = 'sb';

/** The adapter and emitter key: both must use this, or broadcasts go nowhere. */
export function ioKey(keyPrefix: string): string {
  return `${keyPrefix}:io`;
}

/** BullMQ queue name; the queue's `prefix` option is the key prefix. */
export const NOTIFICATIONS_QUEUE = 'notifications';

/** Largest `data` of a notification job, as JSON. @default 16384 */
export const NOTIFICATION_DATA_MAX_BYTES = 16 * 1024;

/** Most user ids in one `{ userIds }` notification target. */
export const NOTIFICATION_MAX_USER_IDS = 1000;

/** Most user ids in one `presence:watch` / `presence:unwatch`. */
export const PRESENCE_WATCH_MAX_IDS = 100;

/**
 * `from` of the room messages the server publishes (the admin API's server-side publish). `#` is
 * not a user-id character (SPEC §2), so no access token can be this sender: a client trusts a
 * message as the server's by `from.userId === SERVER_SENDER.userId`.
 */
export const SERVER_SENDER = { userId: '#server' } as const;

/** A producer's notification id: 1–128 of `[A-Za-z0-9._-]`, not digits only. */
export const NOTIFICATION_ID_PATTERN = '^(?![0-9]+$)[A-Za-z0-9._-]{1,128}$';

/**
 * Any notification id the server stores or sends: a producer's, or `job:<BullMQ job id>` for a job
 * without one (a job id outside `[A-Za-z0-9._:-]{1,190}` is replaced by `h.` and its hash).
 * Every event and route that takes a notification id accepts these.
 */
export const STORED_NOTIFICATION_ID_PATTERN = '^(?:(?![0-9]+$)[A-Za-z0-9._-]{1,128}|job:[A-Za-z0-9._:-]{1,190})$';

/** How long a notification id is delivered at most once (SPEC §6). @default 86400 */
export const DEFAULT_IDEMPOTENCY_WINDOW_SEC = 86_400;
