import { Type, type Static } from '@sinclair/typebox';
import { RoomName, UserId } from './schemas.js';

/**
 * Lifecycle events for backends (SPEC §7a): every presence and occupancy transition, written with
 * the registry change that causes it, delivered on the BullMQ queue `events` and to signed webhooks.
 */

/** BullMQ queue of lifecycle events (`EVENTS_QUEUE=true`), with the notifications queue's prefix. */
export const EVENTS_QUEUE = 'events';
/** BullMQ queue of webhook batches (the dispatcher's own; inspect and retry failed batches there). */
export const WEBHOOKS_QUEUE = 'webhooks';
/** Request header: ms since epoch, fresh for every attempt. */
export const WEBHOOK_TIMESTAMP_HEADER = 'x-switchboard-timestamp';
/** Request header: `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`. */
export const WEBHOOK_SIGNATURE_HEADER = 'x-switchboard-signature';

export const LIFECYCLE_EVENT_TYPES = ['user.online', 'user.offline', 'room.occupied', 'room.vacated', 'member.added', 'member.removed'] as const;
export type LifecycleEventType = (typeof LIFECYCLE_EVENT_TYPES)[number];

/** What made a transition. */
export const LIFECYCLE_CAUSES = ['connect', 'join', 'leave', 'disconnect', 'reaped', 'admin'] as const;
export type LifecycleCause = (typeof LIFECYCLE_CAUSES)[number];

const strict = { additionalProperties: false } as const;
const Cause = Type.Union(LIFECYCLE_CAUSES.map((c) => Type.Literal(c)));
const envelope = {
  /** Unique: receivers dedupe by it. */
  id: Type.String({ minLength: 1, maxLength: 64 }),
  /** Redis time of the transition, ms since epoch. */
  ts: Type.Integer(),
  /** Strictly increasing per room (room and member events) and per user (user events), never reset. */
  seq: Type.Integer({ minimum: 1 }),
  cause: Cause,
};

export const UserOnlineEvent = Type.Object({ ...envelope, type: Type.Literal('user.online'), data: Type.Object({ userId: UserId }, strict) }, strict);
export const UserOfflineEvent = Type.Object(
  { ...envelope, type: Type.Literal('user.offline'), data: Type.Object({ userId: UserId, lastSeen: Type.Integer() }, strict) },
  strict,
);
export const RoomOccupiedEvent = Type.Object({ ...envelope, type: Type.Literal('room.occupied'), data: Type.Object({ room: RoomName }, strict) }, strict);
export const RoomVacatedEvent = Type.Object({ ...envelope, type: Type.Literal('room.vacated'), data: Type.Object({ room: RoomName }, strict) }, strict);
export const MemberAddedEvent = Type.Object(
  { ...envelope, type: Type.Literal('member.added'), data: Type.Object({ room: RoomName, userId: UserId }, strict) },
  strict,
);
export const MemberRemovedEvent = Type.Object(
  { ...envelope, type: Type.Literal('member.removed'), data: Type.Object({ room: RoomName, userId: UserId }, strict) },
  strict,
);

/** The envelope `{ id, type, ts, seq, cause, data }` of SPEC §7a. */
export const LifecycleEvent = Type.Union([UserOnlineEvent, UserOfflineEvent, RoomOccupiedEvent, RoomVacatedEvent, MemberAddedEvent, MemberRemovedEvent]);
export type LifecycleEvent = Static<typeof LifecycleEvent>;

/** A webhook request's body. */
export const WebhookBody = Type.Object({ events: Type.Array(LifecycleEvent) }, strict);
export type WebhookBody = Static<typeof WebhookBody>;

/** Whether an event is about a room (its `data.room`), as `WEBHOOK_ROOM_PREFIXES` filters. */
export function lifecycleEventRoom(event: LifecycleEvent): string | undefined {
  return 'room' in event.data ? event.data.room : undefined;
}

/**
 * Jobs of the queue `webhooks` (job name = `kind`). `deliver` (id `<endpoint id>-<n>`): the one
 * job at a time that sends an endpoint's oldest pending events, retried with backoff until the
 * endpoint answers 2xx, then naming the next. `dropped` (id `<endpoint id>-d<first event id>`):
 * events an endpoint that stayed down lost beyond `WEBHOOK_MAX_PENDING`, failed on their first
 * attempt (with `reason`) and kept for inspection; each retry sends them once more, outside the
 * endpoint's order.
 */
export interface WebhookDeliverJob {
  kind: 'deliver';
  endpoint: string;
}
export interface WebhookDroppedJob {
  kind: 'dropped';
  endpoint: string;
  events: LifecycleEvent[];
  reason: string;
}
export type WebhookJob = WebhookDeliverJob | WebhookDroppedJob;
