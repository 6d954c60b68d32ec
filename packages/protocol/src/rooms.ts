/** User ids: the `sub` claim. 1–128 chars of `[A-Za-z0-9._:@-]` (SPEC §2). */
export const USER_ID_PATTERN = '^[A-Za-z0-9._:@-]{1,128}$';
const USER_ID_RE = new RegExp(USER_ID_PATTERN);

/** Room names: `<kind>:<id>`, at most 200 chars of `[A-Za-z0-9._:@/-]` (SPEC §4). */
export const ROOM_NAME_PATTERN = '^[A-Za-z0-9._@/-]+:[A-Za-z0-9._:@/-]+$';
export const ROOM_NAME_MAX_LENGTH = 200;
const ROOM_RE = new RegExp(ROOM_NAME_PATTERN);

export type RoomKind = 'user' | 'public' | 'private' | 'other';

export function isUserId(value: unknown): value is string {
  return typeof value === 'string' && USER_ID_RE.test(value);
}

export function isRoomName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= ROOM_NAME_MAX_LENGTH && ROOM_RE.test(value);
}

export function roomKind(room: string): RoomKind {
  const kind = room.slice(0, room.indexOf(':'));
  return kind === 'user' || kind === 'public' || kind === 'private' ? kind : 'other';
}

/** The personal room every socket of a user joins on connect. */
export function userRoom(userId: string): string {
  return `user:${userId}`;
}

/**
 * Internal room of the sockets watching a user's presence. The `#` keeps it outside the
 * room-name grammar, so no client can join it by name.
 */
export function presenceRoom(userId: string): string {
  return `#presence:${userId}`;
}

/**
 * Whether a `rooms` claim entry grants `room`: an exact name, or a prefix ending in `*`.
 * A lone `*` grants nothing: a token must name what it opens.
 */
export function claimGrants(patterns: readonly string[], room: string): boolean {
  for (const p of patterns) {
    if (p.endsWith('*')) {
      const prefix = p.slice(0, -1);
      if (prefix.length > 0 && room.startsWith(prefix)) return true;
    } else if (p === room) {
      return true;
    }
  }
  return false;
}
