import { Job, Queue, type JobsOptions } from 'bullmq';
import {
  assertNotificationJob,
  DEFAULT_KEY_PREFIX,
  NOTIFICATIONS_QUEUE,
  SwitchboardError,
  type NotificationJob,
} from '@switchboard/protocol';
import type { RedisConfig } from '@switchboard/config';
import {
  assignedNotificationId,
  createRedisClient,
  isCluster,
  isRedisUnavailable,
  keys,
  NotificationLedger,
  notificationDigest,
  queuePrefix,
  waitForReplicas,
  type RedisClient,
} from '@switchboard/store';

/** Job name the SDK uses. The dispatcher ignores job names: any name works. */
export const NOTIFICATION_JOB_NAME = 'notification';

/**
 * Job options the SDK sets on every notification: retries with exponential backoff, and finished
 * jobs kept a while for inspection (failed ones a week) without growing without bound.
 * Producers that enqueue with plain BullMQ should pass the same.
 */
export const RECOMMENDED_JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
};

export interface ProducerOptions {
  /**
   * Where Redis is: a URL, a topology (`RedisConfig` of `@switchboard/config`, e.g. from
   * `loadRedisConfig()`: Sentinel or Cluster), or an ioredis client to share (`Redis` or
   * `Cluster`). A URL or topology gets a client of the producer's own that fails fast when Redis is
   * unreachable (`enableOfflineQueue: false`). A shared client is not closed by `close()`. On Redis
   * Cluster the queue's prefix is `{keyPrefix}`, as the dispatcher's.
   */
  connection: string | RedisConfig | RedisClient;
  /** Prefix of every Redis key; the queue's BullMQ `prefix`. Must match the dispatcher's `KEY_PREFIX`. @default 'sb' */
  keyPrefix?: string;
  /** Job options merged over {@link RECOMMENDED_JOB_OPTIONS}. */
  jobOptions?: JobsOptions;
  /** How long a call waits for Redis to be connected before it rejects with `UNAVAILABLE`. @default 1000 */
  connectTimeoutMs?: number;
  /**
   * Replicas that must have an enqueued job before `notify` resolves (Redis `WAIT`), so that a
   * failover cannot lose it. @default the topology's `waitReplicas` (`REDIS_WAIT_REPLICAS`), else 0
   */
  waitReplicas?: number;
  /** How long to wait for them; past it `notify` rejects with `UNAVAILABLE` (retry with the same id). @default 1000 */
  waitTimeoutMs?: number;
  /** Called with Redis and queue errors; calls report their own failures by rejecting. */
  onError?: (err: Error) => void;
}

/**
 * A notification id reused for other content within the idempotency window, or while the first
 * job with that id is still kept (SPEC §6): nothing was enqueued. The admin API answers 409.
 */
export class NotificationConflictError extends Error {
  override readonly name = 'NotificationConflictError';
  readonly code = 'CONFLICT';
  constructor(readonly id: string) {
    super(`Notification id ${JSON.stringify(id)} was used before with other content`);
  }
}

/** What was enqueued. */
export interface Enqueued {
  /** The notification id clients see and `notification:read` takes: the job's `id`, or `job:<jobId>`. */
  id: string;
  /** The BullMQ job id (for the admin API's queue routes). */
  jobId: string;
}

export interface NotifyOptions {
  /** Deliver no sooner than this many ms from now. @default 0 */
  delayMs?: number;
}

export interface Producer {
  /** The underlying BullMQ queue, for inspection. */
  readonly queue: Queue;
  /**
   * Validates and enqueues one notification. Resolves with its notification id and job id. With an
   * `id`, the job is enqueued once while it is kept, and delivered once within the idempotency
   * window; the same id with other content is refused.
   * Rejects with `SwitchboardError`: `INVALID_PAYLOAD` / `PAYLOAD_TOO_LARGE` (nothing enqueued),
   * `UNAVAILABLE` when Redis cannot be reached; with `NotificationConflictError` for an id reused
   * with other content.
   */
  notify(job: NotificationJob, opts?: NotifyOptions): Promise<Enqueued>;
  /**
   * Like `notify` for many jobs in one round trip. Nothing is enqueued when any job is invalid or
   * reuses an id for other content (a conflict found only once enqueued leaves the others queued).
   */
  notifyMany(jobs: readonly NotificationJob[], opts?: NotifyOptions): Promise<{ ids: string[]; jobIds: string[] }>;
  /** Closes the queue, and the Redis client when the producer made it. */
  /** Resolves once Redis is reachable; rejects with `UNAVAILABLE` after `connectTimeoutMs` (or when closed). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** BullMQ refuses integer custom job ids: they are reserved for the ids it assigns. */
function assertJobId(id: string | undefined, path = ''): void {
  if (id !== undefined && `${parseInt(id, 10)}` === id) {
    throw new SwitchboardError('INVALID_PAYLOAD', `${path}/id: must not be an integer (BullMQ assigns integer ids)`, {
      path: `${path}/id`,
    });
  }
}

function delayOf(opts: NotifyOptions | undefined): JobsOptions {
  const delay = opts?.delayMs;
  if (delay === undefined || delay === 0) return {};
  if (!Number.isSafeInteger(delay) || delay < 0) {
    throw new SwitchboardError('INVALID_PAYLOAD', 'delayMs: expected a non-negative integer');
  }
  return { delay };
}

/** Whether a kept job's data is this notification (data that is not a valid job never is). */
function sameContent(data: unknown, job: NotificationJob): boolean {
  try {
    assertNotificationJob(data);
  } catch {
    return false;
  }
  return notificationDigest(data) === notificationDigest(job);
}

function notificationIdOf(job: NotificationJob, jobId: string): string {
  return job.id ?? assignedNotificationId(jobId);
}

function jobOptionsOf(job: NotificationJob, delay: JobsOptions): JobsOptions {
  return { ...delay, ...(job.id !== undefined ? { jobId: job.id } : {}) };
}

/** A typed producer of notification jobs for backend services (SPEC §6). */
export function createProducer(options: ProducerOptions): Producer {
  const connectTimeoutMs = options.connectTimeoutMs ?? 1000;
  const onError = options.onError ?? (() => {});
  const given = options.connection as ProducerOptions['connection'] | undefined;
  // for callers without the types (plain JavaScript): say what is missing instead of failing on it below
  if (given === undefined || given === null || (typeof given !== 'string' && typeof given !== 'object')) {
    throw new TypeError('createProducer: connection is required (a Redis URL, a topology from loadRedisConfig(), or an ioredis client)');
  }
  const ownClient = typeof given === 'string' || !('status' in given);
  const client: RedisClient = ownClient
    ? createRedisClient(
        typeof given === 'string' ? { topology: { kind: 'standalone', url: given }, tls: false, pubsubMode: 'classic' } : given,
        'producer',
        { warn: (_obj, _msg) => {} },
        { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: connectTimeoutMs },
      )
    : given;
  if (ownClient) client.on('error', onError);
  const topology = typeof given === 'object' && !('status' in given) ? given : undefined;
  const waitReplicas = options.waitReplicas ?? topology?.waitReplicas ?? 0;
  const waitTimeoutMs = options.waitTimeoutMs ?? topology?.waitTimeoutMs ?? 1000;
  const replicated = () => waitForReplicas(client, waitReplicas, waitTimeoutMs);

  const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const queue = new Queue(NOTIFICATIONS_QUEUE, {
    connection: client,
    prefix: queuePrefix(keyPrefix, isCluster(client)),
    defaultJobOptions: { ...RECOMMENDED_JOB_OPTIONS, ...options.jobOptions },
  });
  const ledger = new NotificationLedger(client, keys(keyPrefix));
  queue.on('error', onError);
  let closed = false;

  const unavailable = (cause?: unknown) =>
    new SwitchboardError(
      'UNAVAILABLE',
      cause instanceof Error ? `redis unavailable: ${cause.message}` : 'redis unavailable',
    );

  async function whenReady(): Promise<void> {
    if (closed) throw new SwitchboardError('UNAVAILABLE', 'producer is closed');
    if (client.status === 'ready') return;
    if (client.status === 'end') throw unavailable();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.off('ready', onReady);
        reject(new SwitchboardError('UNAVAILABLE', `redis not reachable within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      client.once('ready', onReady);
    });
  }

  async function enqueue<T>(add: () => Promise<T>): Promise<T> {
    await whenReady();
    try {
      return await add();
    } catch (err) {
      if (err instanceof SwitchboardError) throw err;
      if (isRedisUnavailable(err) || client.status !== 'ready') throw unavailable(err);
      throw err;
    }
  }

  /** An id delivered (or being delivered) within the window with other content. */
  async function refuseConflicts(jobs: readonly NotificationJob[]): Promise<void> {
    const withId = jobs.filter((j): j is NotificationJob & { id: string } => j.id !== undefined);
    if (withId.length === 0) return;
    const records = await enqueue(() => Promise.all(withId.map((j) => ledger.record(j.id))));
    withId.forEach((job, i) => {
      const record = records[i];
      if (record && record.digest !== notificationDigest(job)) throw new NotificationConflictError(job.id);
    });
  }

  /** BullMQ keeps the first job of an id and ignores a second one: other content is a conflict. */
  async function refuseKeptConflicts(jobs: readonly NotificationJob[], jobIds: readonly string[]): Promise<void> {
    const withId = jobs.flatMap((job, i) => (job.id === undefined ? [] : [{ job, jobId: jobIds[i]! }]));
    if (withId.length === 0) return;
    const kept = await enqueue(() => Promise.all(withId.map(({ jobId }) => Job.fromId(queue, jobId))));
    withId.forEach(({ job }, i) => {
      const data: unknown = kept[i]?.data;
      if (data === undefined) return; // already delivered and removed: the ledger check covered it
      if (!sameContent(data, job)) throw new NotificationConflictError(job.id!);
    });
  }

  return {
    queue,

    async notify(job, opts) {
      assertNotificationJob(job);
      assertJobId(job.id);
      const delay = delayOf(opts);
      await refuseConflicts([job]);
      const added = await enqueue(() => queue.add(NOTIFICATION_JOB_NAME, job, jobOptionsOf(job, delay)));
      await enqueue(replicated);
      await refuseKeptConflicts([job], [added.id!]);
      return { id: notificationIdOf(job, added.id!), jobId: added.id! };
    },

    async notifyMany(jobs, opts) {
      jobs.forEach((job, i) => {
        try {
          assertNotificationJob(job);
          assertJobId(job.id);
        } catch (err) {
          if (!(err instanceof SwitchboardError)) throw err;
          throw new SwitchboardError(err.code, `/${i}${err.message}`, { index: i, ...(err.details as object) });
        }
      });
      const delay = delayOf(opts);
      if (jobs.length === 0) return { ids: [], jobIds: [] };
      await refuseConflicts(jobs);
      const added = await enqueue(() =>
        queue.addBulk(jobs.map((job) => ({ name: NOTIFICATION_JOB_NAME, data: job, opts: jobOptionsOf(job, delay) }))),
      );
      const jobIds = added.map((j) => j.id!);
      await enqueue(replicated);
      await refuseKeptConflicts(jobs, jobIds);
      return { ids: jobs.map((job, i) => notificationIdOf(job, jobIds[i]!)), jobIds };
    },

    ready: whenReady,

    async close() {
      if (closed) return;
      closed = true;
      if (ownClient && client.status !== 'ready') {
        // BullMQ is still waiting for this client to be ready. Ending the client fails that wait,
        // and BullMQ reports the failure to the queue's listeners, which closing the queue would
        // remove (the failure would then be an unhandled rejection). The queue holds nothing but
        // this client: end the client and leave the queue to the garbage collector.
        client.disconnect();
        return;
      }
      await boundedClose(queue.close(), 2000);
      if (!ownClient) return;
      try {
        if (client.status === 'ready') await client.quit();
        else client.disconnect();
      } catch {
        client.disconnect();
      }
    },
  };
}

async function boundedClose(closing: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    closing.catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
