import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { assertNotificationJob, userRoom, type Notification, type NotificationJob } from '@switchboard/protocol';
import {
  assignedNotificationId,
  notificationDigest,
  type BroadcastEncoder,
  type Claim,
  type InboxStore,
  type NotificationLedger,
  type Publication,
} from '@switchboard/store';

/** Job data that fails validation: failed at once, never retried, the reason kept in `failedReason`. */
export class InvalidJobError extends UnrecoverableError {
  override name = 'InvalidJobError';
}

/** A job reusing a notification id with other content: failed at once, the reason kept. */
export class IdConflictError extends UnrecoverableError {
  override name = 'IdConflictError';
}

export type TargetKind = 'user' | 'users' | 'room' | 'broadcast';

/** How soon a job whose id another job is delivering looks again. */
export const BUSY_RETRY_MS = 500;

export interface Delivery {
  notification: Notification;
  target: TargetKind;
  /** Users whose inbox holds the notification. */
  stored: number;
  /** The id was delivered already (by another job, or an earlier run of this one): nothing was sent. */
  duplicate: boolean;
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
  inbox: InboxStore;
  ledger: NotificationLedger;
  /** Encodes for the gateways' adapter, in its pub/sub mode. */
  encoder: BroadcastEncoder;
  /** How long a job holds the delivery of its id before another job may take over. */
  leaseMs: number;
  /** Resolves once the inbox writes are on enough replicas (`REDIS_WAIT_REPLICAS`), so a failover cannot lose them. */
  replicated: () => Promise<void>;
  /**
   * Claim, store and publish in one script (`NotificationLedger.deliver`): the ledger and the
   * inboxes share a server (not Cluster) and no wait for replicas comes between storing and
   * publishing. Jobs to more than `ONE_STEP_MAX_USERS` users still take the steps one by one.
   */
  oneStep: boolean;
}

/** The most users a one-step delivery writes in its one script (which holds Redis meanwhile). */
export const ONE_STEP_MAX_USERS = 32;

/**
 * Delivers one job (SPEC §6): validates it, claims its notification id in the ledger, stores a
 * user notification in the inboxes, then marks the id delivered and publishes it through the
 * Socket.IO Redis emitter's encoding, in one step. Where the ledger and the inboxes share a server
 * and no wait for replicas comes between (`oneStep`), the three are one script: one round trip.
 * The job is done only once Redis has answered, so nothing is lost between the queue and Redis (a
 * retry writes nothing twice: the inbox is idempotent by id); the publish happens at most once per
 * id within the idempotency window.
 *
 * The id is the job's `id` field, or else `job:<job id>`; `ts` is the job's creation time, so a
 * retry stores and sends the same notification. Another job with the same id waits (delayed,
 * without using an attempt) while this one holds it, and completes without sending once it is
 * delivered; a job reusing the id with other content fails with `IdConflictError`.
 */
export async function deliver(deps: DeliverDeps, job: Job<unknown>, token?: string): Promise<Delivery> {
  const data: unknown = job.data;
  try {
    assertNotificationJob(data);
  } catch (err) {
    throw new InvalidJobError(err instanceof Error ? err.message : 'invalid notification job');
  }
  const id = data.id ?? assignedNotificationId(job.id!);
  const notification = toNotification(id, data, job.timestamp);
  const target = targetKind(data);
  const digest = notificationDigest(data);

  const to = data.to;
  let userIds: string[] = [];
  let publications: Publication[];
  if ('userId' in to || 'userIds' in to) {
    const users = 'userId' in to ? [to.userId] : [...new Set(to.userIds)];
    publications = deps.encoder.emit({ rooms: users.map(userRoom) }, 'notification', notification);
    if (data.persist ?? true) userIds = users;
  } else {
    publications = deps.encoder.emit('room' in to ? { rooms: [to.room] } : {}, 'notification', notification);
  }

  if (deps.oneStep && userIds.length <= ONE_STEP_MAX_USERS) {
    const entry = userIds.length ? deps.inbox.entry(userIds, notification) : undefined;
    const result = await deps.ledger.deliver(id, digest, job.id!, deps.leaseMs, entry, publications);
    if (result.state === 'delivered') return { notification, target, stored: userIds.length, duplicate: false };
    return settleClaim(result, { id, notification, target, job, token });
  }

  const claim = await deps.ledger.claim(id, digest, job.id!, deps.leaseMs);
  if (claim.state !== 'claimed') return settleClaim(claim, { id, notification, target, job, token });
  // stored first: a client that lists its inbox when the notification arrives finds it there
  await deps.inbox.add(userIds, notification);
  if (userIds.length) await deps.replicated();
  const sent = await deps.ledger.complete(id, digest, publications);
  return { notification, target, stored: userIds.length, duplicate: !sent };
}

/** A claim that is not this job's to deliver: a conflict fails it, a delivered id completes it, a busy one waits. */
async function settleClaim(
  claim: Exclude<Claim, { state: 'claimed' }>,
  { id, notification, target, job, token }: { id: string; notification: Notification; target: TargetKind; job: Job<unknown>; token: string | undefined },
): Promise<Delivery> {
  switch (claim.state) {
    case 'conflict':
      throw new IdConflictError(`notification id ${JSON.stringify(id)} was delivered before with other content`);
    case 'done':
      return { notification, target, stored: 0, duplicate: true };
    case 'busy':
      // another job delivers this id right now: look again soon (at the latest when its lease ends)
      await job.moveToDelayed(Date.now() + Math.min(claim.retryAfterMs, BUSY_RETRY_MS), token);
      throw new DelayedError();
  }
}
