import type { Job } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import {
  assertNotificationJob,
  userRoom,
  type Notification,
  type NotificationJob,
} from '@switchboard/protocol';
import type { InboxDelivery, InboxStore, Publication } from '@switchboard/store';
import type { PublicationEncoder } from './publication.js';

/** Job data that fails validation: failed at once, never retried, the reason kept in `failedReason`. */
export class InvalidJobError extends UnrecoverableError {}

export type TargetKind = 'user' | 'users' | 'room' | 'broadcast';

export interface Delivery {
  notification: Notification;
  target: TargetKind;
  /** Users whose inbox holds the notification. */
  stored: number;
}

export function targetKind(job: NotificationJob): TargetKind {
  const to = job.to;
  if ('userId' in to) return 'user';
  if ('userIds' in to) return 'users';
  if ('room' in to) return 'room';
  return 'broadcast';
}

/** The notification as clients and inboxes see it: absent fields omitted. */
export function toNotification(id: string, job: NotificationJob, ts: number): Notification {
  return {
    id,
    type: job.type,
    ...(job.title !== undefined ? { title: job.title } : {}),
    ...(job.body !== undefined ? { body: job.body } : {}),
    ...(job.data !== undefined ? { data: job.data } : {}),
    ts,
  };
}

/** Audiences up to this size are written in batches shared with other jobs; larger ones on their own. */
export const BATCHED_AUDIENCE_MAX = 8;

export interface DeliverDeps {
  inbox: InboxStore;
  encoder: PublicationEncoder;
  /** Stores and publishes a small delivery, batched with other jobs' in one script call. */
  batch: (delivery: InboxDelivery) => Promise<unknown>;
}

/**
 * Validates a job, then stores a user notification in the inboxes and publishes it in the same
 * script call, or publishes a room or broadcast notification. The job is done only once Redis has
 * answered, so nothing is lost between the queue and Redis.
 * The id is the job's `id` field or else the BullMQ job id, and `ts` the job's creation time,
 * so a retry stores nothing twice and re-publishes the same notification (clients dedupe by id).
 */
export async function deliver(deps: DeliverDeps, job: Job<unknown>): Promise<Delivery> {
  const data: unknown = job.data;
  try {
    assertNotificationJob(data);
  } catch (err) {
    throw new InvalidJobError(err instanceof Error ? err.message : 'invalid notification job');
  }
  const notification = toNotification(data.id ?? job.id!, data, job.timestamp);
  const to = data.to;
  let userIds: string[] = [];
  let publish: Publication;
  if ('userId' in to || 'userIds' in to) {
    const users = 'userId' in to ? [to.userId] : [...new Set(to.userIds)];
    const rooms = users.map(userRoom);
    publish = deps.encoder.encode((e) => e.to(rooms.length === 1 ? rooms[0]! : rooms).emit('notification', notification));
    if (data.persist ?? true) userIds = users;
  } else {
    publish = deps.encoder.encode((e) =>
      'room' in to ? e.to(to.room).emit('notification', notification) : e.emit('notification', notification),
    );
  }
  // The publish rides in the inbox write, after it: a client that lists its inbox on receipt finds it.
  if (userIds.length <= BATCHED_AUDIENCE_MAX) await deps.batch({ userIds, notification, publish });
  else await deps.inbox.add(userIds, notification, publish);
  return { notification, target: targetKind(data), stored: userIds.length };
}
