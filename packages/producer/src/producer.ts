import { Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import {
  assertNotificationJob,
  DEFAULT_KEY_PREFIX,
  NOTIFICATIONS_QUEUE,
  SwitchboardError,
  type NotificationJob,
} from '@switchboard/protocol';

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
   * A Redis URL, or an ioredis client to share. A URL gets a client that fails fast when Redis is
   * unreachable (`enableOfflineQueue: false`). A shared client is not closed by `close()`.
   */
  connection: string | Redis;
  /** Prefix of every Redis key; the queue's BullMQ `prefix`. Must match the dispatcher's `KEY_PREFIX`. @default 'sb' */
  keyPrefix?: string;
  /** Job options merged over {@link RECOMMENDED_JOB_OPTIONS}. */
  jobOptions?: JobsOptions;
  /** How long a call waits for Redis to be connected before it rejects with `UNAVAILABLE`. @default 1000 */
  connectTimeoutMs?: number;
  /** Called with Redis and queue errors; calls report their own failures by rejecting. */
  onError?: (err: Error) => void;
}

export interface NotifyOptions {
  /** Deliver no sooner than this many ms from now. @default 0 */
  delayMs?: number;
}

export interface Producer {
  /** The underlying BullMQ queue, for inspection. */
  readonly queue: Queue;
  /**
   * Validates and enqueues one notification. Resolves with its id: the job's `id` when given
   * (enqueued once per id while the job is kept), else the id BullMQ assigns.
   * Rejects with `SwitchboardError`: `INVALID_PAYLOAD` / `PAYLOAD_TOO_LARGE` (nothing enqueued),
   * `UNAVAILABLE` when Redis cannot be reached.
   */
  notify(job: NotificationJob, opts?: NotifyOptions): Promise<{ id: string }>;
  /** Like `notify` for many jobs in one round trip. Nothing is enqueued when any job is invalid. */
  notifyMany(jobs: readonly NotificationJob[], opts?: NotifyOptions): Promise<{ ids: string[] }>;
  /** Closes the queue, and the Redis client when the producer made it. */
  close(): Promise<void>;
}

const REDIS_FAILURE_NAMES = new Set(['ReplyError', 'MaxRetriesPerRequestError', 'ConnectionClosedError', 'AbortError']);
const REDIS_FAILURE_MESSAGE = /connection is closed|stream isn't writeable|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|timed out/i;

function isRedisFailure(err: unknown): boolean {
  return err instanceof Error && (REDIS_FAILURE_NAMES.has(err.name) || REDIS_FAILURE_MESSAGE.test(err.message));
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

function jobOptionsOf(job: NotificationJob, delay: JobsOptions): JobsOptions {
  return { ...delay, ...(job.id !== undefined ? { jobId: job.id } : {}) };
}

/** A typed producer of notification jobs for backend services (SPEC §6). */
export function createProducer(options: ProducerOptions): Producer {
  const ownClient = typeof options.connection === 'string';
  const connectTimeoutMs = options.connectTimeoutMs ?? 1000;
  const onError = options.onError ?? (() => {});
  const client =
    typeof options.connection === 'string'
      ? new Redis(options.connection, {
          connectionName: 'switchboard:producer',
          enableOfflineQueue: false,
          connectTimeout: connectTimeoutMs,
          maxRetriesPerRequest: 1,
        })
      : options.connection;
  if (ownClient) client.on('error', onError);

  const queue = new Queue(NOTIFICATIONS_QUEUE, {
    connection: client,
    prefix: options.keyPrefix ?? DEFAULT_KEY_PREFIX,
    defaultJobOptions: { ...RECOMMENDED_JOB_OPTIONS, ...options.jobOptions },
  });
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
      if (isRedisFailure(err) || client.status !== 'ready') throw unavailable(err);
      throw err;
    }
  }

  return {
    queue,

    async notify(job, opts) {
      assertNotificationJob(job);
      assertJobId(job.id);
      const delay = delayOf(opts);
      const added = await enqueue(() => queue.add(NOTIFICATION_JOB_NAME, job, jobOptionsOf(job, delay)));
      return { id: added.id! };
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
      if (jobs.length === 0) return { ids: [] };
      const added = await enqueue(() =>
        queue.addBulk(jobs.map((job) => ({ name: NOTIFICATION_JOB_NAME, data: job, opts: jobOptionsOf(job, delay) }))),
      );
      return { ids: added.map((j) => j.id!) };
    },

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
