import { ROOM_NAME_MAX_LENGTH, isRoomName, isUserId } from '@switchboard/protocol';
import type { JWTPayload } from 'jose';

/** The identity an access token carries, after verification. */
export interface AccessClaims {
  /** The user id (`sub`): 1–128 chars of `[A-Za-z0-9._:@-]`. */
  sub: string;
  /** Display name, at most {@link NAME_MAX_LENGTH} characters. */
  name?: string;
  /** @default [] */
  roles: string[];
  /** Room names, or prefixes ending in `*`, the user may join. @default [] */
  rooms: string[];
  /** Expiry, in seconds since the epoch. */
  exp: number;
  /** Issue time, in seconds since the epoch. */
  iat?: number;
}

/** The longest accepted `name` claim, in characters (code points). */
export const NAME_MAX_LENGTH = 128;

const ROOM_PREFIX_RE = new RegExp(`^[A-Za-z0-9._:@/-]{0,${ROOM_NAME_MAX_LENGTH}}\\*$`);

/**
 * Maps a verified access token payload to its claims, or `undefined` when a claim is malformed.
 * A payload with a `room` claim is a room token and is refused here, so a room token can never
 * stand in for an access token.
 */
export function toAccessClaims(payload: JWTPayload): AccessClaims | undefined {
  const { sub, exp, iat } = payload;
  const name = payload['name'];
  const roles = stringList(payload['roles'], () => true);
  const rooms = stringList(payload['rooms'], isRoomPattern);
  if (!isUserId(sub) || typeof exp !== 'number' || roles === undefined || rooms === undefined) return undefined;
  if (name !== undefined && (typeof name !== 'string' || [...name].length > NAME_MAX_LENGTH)) return undefined;
  if (payload['room'] !== undefined) return undefined;
  return {
    sub,
    ...(name === undefined ? {} : { name }),
    roles,
    rooms,
    exp,
    ...(iat === undefined ? {} : { iat }),
  };
}

/** Whether a verified room token payload is for `expected.userId` and exactly `expected.room`. */
export function isRoomTokenFor(payload: JWTPayload, expected: { userId: string; room: string }): boolean {
  return payload.sub === expected.userId && typeof payload['room'] === 'string' && payload['room'] === expected.room;
}

/** A room name, or a prefix ending in `*` (a lone `*` is well-formed but grants nothing). */
function isRoomPattern(value: string): boolean {
  return isRoomName(value) || ROOM_PREFIX_RE.test(value);
}

/** An absent claim is an empty list; anything but an array of valid strings is `undefined`. */
function stringList(value: unknown, valid: (item: string) => boolean): string[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return undefined;
  const items: unknown[] = value;
  return items.every((item): item is string => typeof item === 'string' && valid(item)) ? [...items] : undefined;
}
