import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  NOTIFICATION_ID_PATTERN,
  NOTIFICATION_MAX_USER_IDS,
  PRESENCE_WATCH_MAX_IDS,
  STORED_NOTIFICATION_ID_PATTERN,
} from './constants.js';
import { ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN, USER_ID_PATTERN } from './rooms.js';

const strict = { additionalProperties: false } as const;

export const UserId = Type.String({ pattern: USER_ID_PATTERN, maxLength: 128, description: 'user id (the token `sub`)' });
export const RoomName = Type.String({
  pattern: ROOM_NAME_PATTERN,
  maxLength: ROOM_NAME_MAX_LENGTH,
  description: '`<kind>:<id>`, at most 200 chars of `[A-Za-z0-9._:@/-]`',
});
/** Server-assigned message id: a Redis stream id (`<ms>-<seq>`), ordered within a room. */
export const MessageId = Type.String({ pattern: '^[0-9]{1,20}-[0-9]{1,20}$', maxLength: 41 });
export const MessageType = Type.String({ pattern: '^[A-Za-z0-9._:/-]{1,64}$' });
export const Token = Type.String({ minLength: 1, maxLength: 8192 });
export const PresenceStatus = Type.Union([Type.Literal('online'), Type.Literal('away'), Type.Literal('busy')]);
export type PresenceStatus = Static<typeof PresenceStatus>;
/** Any JSON value; its size is limited by the server's payload limit. */
export const JsonData = Type.Unknown();

// ---- client → server payloads (SPEC §3) ----

export const RoomJoinPayload = Type.Object(
  { room: RoomName, token: Type.Optional(Token), since: Type.Optional(MessageId) },
  strict,
);
export const RoomLeavePayload = Type.Object({ room: RoomName }, strict);
export const RoomPublishPayload = Type.Object(
  { room: RoomName, type: Type.Optional(MessageType), data: JsonData },
  { ...strict, required: ['room', 'data'] },
);
export const RoomTypingPayload = Type.Object({ room: RoomName, typing: Type.Boolean() }, strict);
export const RoomMembersPayload = Type.Object(
  {
    room: RoomName,
    cursor: Type.Optional(Type.String({ maxLength: 256 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })),
  },
  strict,
);
export const RoomHistoryPayload = Type.Object(
  { room: RoomName, since: Type.Optional(MessageId), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })) },
  strict,
);
export const PresenceSetPayload = Type.Object(
  { status: PresenceStatus, text: Type.Optional(Type.String({ maxLength: 140 })) },
  strict,
);
export const PresenceWatchPayload = Type.Object(
  { userIds: Type.Array(UserId, { minItems: 1, maxItems: PRESENCE_WATCH_MAX_IDS }) },
  strict,
);
export const PresenceUnwatchPayload = PresenceWatchPayload;
export const NotificationListPayload = Type.Object(
  {
    before: Type.Optional(Type.String({ maxLength: 64 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    unreadOnly: Type.Optional(Type.Boolean()),
  },
  strict,
);
/**
 * The `id` a producer gives a notification job. Not digits only (BullMQ reserves integer job ids
 * for the ones it assigns) and never starting with `job:`, the form of the ids the server assigns.
 */
export const NotificationId = Type.String({ pattern: NOTIFICATION_ID_PATTERN, maxLength: 128 });
/** Any notification id the server stores or sends: a producer's, or one the server assigned (`job:<job id>`). */
export const StoredNotificationId = Type.String({ pattern: STORED_NOTIFICATION_ID_PATTERN, maxLength: 194 });
export const NotificationReadPayload = Type.Union([
  Type.Object({ ids: Type.Array(StoredNotificationId, { minItems: 1, maxItems: 500 }) }, strict),
  Type.Object({ all: Type.Literal(true) }, strict),
]);
export const AuthRefreshPayload = Type.Object({ token: Token }, strict);
export const SessionPingPayload = Type.Object({}, strict);

export type RoomJoinPayload = Static<typeof RoomJoinPayload>;
export type RoomLeavePayload = Static<typeof RoomLeavePayload>;
export type RoomPublishPayload = Static<typeof RoomPublishPayload>;
export type RoomTypingPayload = Static<typeof RoomTypingPayload>;
export type RoomMembersPayload = Static<typeof RoomMembersPayload>;
export type RoomHistoryPayload = Static<typeof RoomHistoryPayload>;
export type PresenceSetPayload = Static<typeof PresenceSetPayload>;
export type PresenceWatchPayload = Static<typeof PresenceWatchPayload>;
export type PresenceUnwatchPayload = Static<typeof PresenceUnwatchPayload>;
export type NotificationListPayload = Static<typeof NotificationListPayload>;
export type NotificationReadPayload = Static<typeof NotificationReadPayload>;
export type AuthRefreshPayload = Static<typeof AuthRefreshPayload>;
export type SessionPingPayload = Static<typeof SessionPingPayload>;

/** The schema of each client→server event's payload, by event name. */
export const clientEventSchemas = {
  'room:join': RoomJoinPayload,
  'room:leave': RoomLeavePayload,
  'room:publish': RoomPublishPayload,
  'room:typing': RoomTypingPayload,
  'room:members': RoomMembersPayload,
  'room:history': RoomHistoryPayload,
  'presence:set': PresenceSetPayload,
  'presence:watch': PresenceWatchPayload,
  'presence:unwatch': PresenceUnwatchPayload,
  'notification:list': NotificationListPayload,
  'notification:read': NotificationReadPayload,
  'auth:refresh': AuthRefreshPayload,
  'session:ping': SessionPingPayload,
} satisfies Record<string, TSchema>;
export type ClientEventName = keyof typeof clientEventSchemas;
export const CLIENT_EVENTS = Object.keys(clientEventSchemas) as ClientEventName[];

// ---- notification job (SPEC §6) ----

export const NotificationTarget = Type.Union([
  Type.Object({ userId: UserId }, strict),
  Type.Object({ userIds: Type.Array(UserId, { minItems: 1, maxItems: NOTIFICATION_MAX_USER_IDS }) }, strict),
  Type.Object({ room: RoomName }, strict),
  Type.Object({ broadcast: Type.Literal(true) }, strict),
]);
export type NotificationTarget = Static<typeof NotificationTarget>;

export const NotificationJob = Type.Object(
  {
    id: Type.Optional(NotificationId),
    to: NotificationTarget,
    type: MessageType,
    title: Type.Optional(Type.String({ maxLength: 200 })),
    body: Type.Optional(Type.String({ maxLength: 4000 })),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    persist: Type.Optional(Type.Boolean()),
  },
  strict,
);
/** Job data on the `notifications` queue. `data` is at most 16 KB as JSON. */
export type NotificationJob = Static<typeof NotificationJob>;
