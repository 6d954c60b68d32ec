import type { Emitter } from '@socket.io/redis-emitter';
import type { Job } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  assertNotificationJob,
  userRoom,
  type Notification,
  type NotificationJob,
  type ServerToClientEvents,
} from '@switchboard/protocol';
import type { InboxStore } from '@switchboard/store';

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

export interface DeliverDeps {
  /** The emitter's own Redis client: answers once the publishes sent before are executed. */
  publisher: Pick<Redis, 'ping'>;
  emitter: Emitter<ServerToClientEvents>;
  inbox: InboxStore;
  /**
   * The inbox writes and the publishes share one connection, so Redis runs them in the order
   * they are sent: the inbox write need not be awaited before the publish goes out.
   */
  sameConnection: boolean;
}

/**
 * Validates a job, stores user notifications in their inboxes, then publishes them.
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
  const target = targetKind(data);
  let stored = 0;

  let storing: Promise<unknown> | undefined;
  if ('userId' in to || 'userIds' in to) {
    const userIds = 'userId' in to ? [to.userId] : [...new Set(to.userIds)];
    if (data.persist ?? true) {
      // Stored before it is published, so a client that lists its inbox on receipt finds it.
      storing = deps.inbox.add(userIds, notification);
      if (!deps.sameConnection) await storing;
      stored = userIds.length;
    }
    const rooms = userIds.map(userRoom);
    deps.emitter.to(rooms.length === 1 ? rooms[0]! : rooms).emit('notification', notification);
  } else if ('room' in to) {
    deps.emitter.to(to.room).emit('notification', notification);
  } else {
    deps.emitter.emit('notification', notification);
  }
  // The emitter publishes without reporting back. Redis answers commands of one connection in
  // order, so this reply means the publish above was executed: only then is the job done.
  // With one connection, the inbox write, the publish and this ping cost one round trip.
  await Promise.all([storing, deps.publisher.ping()]);
  return { notification, target, stored };
}
