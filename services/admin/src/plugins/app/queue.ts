import { Job, Queue } from 'bullmq';
import { WEBHOOKS_QUEUE, type WebhookJob } from '@switchboard/protocol';
import fp from 'fastify-plugin';
import { Gauge } from 'prom-client';
import type { Producer } from '@switchboard/producer';
import type { Static } from '@sinclair/typebox';
import { AdminError, notFound } from '../../errors.js';
import type { QueueCounts } from '../../schemas.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Validates and enqueues notifications (SPEC §6). */
    producer: Producer;
    /** The `notifications` queue, for inspection and retries. */
    notificationsQueue: Queue;
    /** The `webhooks` queue (SPEC §7a): failed batches, for inspection and retries. */
    webhooksQueue: Queue<WebhookJob>;
    /** Job counts of a queue (the notifications queue by default) by state; `waiting` includes paused and prioritized jobs. */
    queueCounts(queue?: Queue): Promise<Static<typeof QueueCounts>>;
    /**
     * Moves a failed job of `queue` back to waiting: `NOT_FOUND` for an unknown job, `CONFLICT` for
     * one that is not failed (also when another admin retried it first).
     */
    retryFailedJob(queue: Queue, id: string, options?: { resetAttempts?: boolean }): Promise<void>;
    /**
     * Runs a queue operation, failing fast with `UNAVAILABLE` while Redis is unreachable (BullMQ
     * would otherwise wait for its connection) or when the operation takes too long.
     */
    withQueue<T>(operation: () => Promise<T>): Promise<T>;
  }
}

export interface QueueOptions {
  producer: Producer;
}

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;
const COUNTS_TIMEOUT_MS = 1000;
const OPERATION_TIMEOUT_MS = 5000;

async function within<T>(operation: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      operation,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(error()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The notification queue through the producer SDK (which fails fast while Redis is down). Also
 * exports `switchboard_queue_jobs{state}`, read at scrape time, as the dispatcher does.
 * The producer belongs to the caller, which closes it after the app.
 */
export default fp<QueueOptions>(
  async (app, { producer }) => {
    const queue = producer.queue;
    app.decorate('producer', producer);
    app.decorate('notificationsQueue', queue);
    // the dispatchers' webhooks queue, with the notifications queue's prefix, on the app's client
    const webhooksQueue = new Queue<WebhookJob>(WEBHOOKS_QUEUE, { connection: app.redis, prefix: queue.opts.prefix! });
    webhooksQueue.on('error', () => {}); // its operations fail through withQueue
    app.decorate('webhooksQueue', webhooksQueue);
    app.addHook('onClose', () => webhooksQueue.close());

    const unavailable = () => new AdminError('UNAVAILABLE', 'Redis is unavailable, retry later');
    async function withQueue<T>(operation: () => Promise<T>): Promise<T> {
      if (app.redis.status !== 'ready') throw unavailable();
      // the queue's own client fails fast while it is not connected yet (its first connection, a
      // failover): wait for it, bounded, instead of refusing at once
      const run = async () => {
        await producer.ready();
        return operation();
      };
      return within(run(), OPERATION_TIMEOUT_MS, unavailable);
    }
    app.decorate('withQueue', withQueue);

    async function queueCounts(of: Queue = queue) {
      const c = await withQueue(() => of.getJobCounts('waiting', 'paused', 'prioritized', ...STATES));
      return {
        waiting: (c.waiting ?? 0) + (c.paused ?? 0) + (c.prioritized ?? 0),
        active: c.active ?? 0,
        delayed: c.delayed ?? 0,
        failed: c.failed ?? 0,
        completed: c.completed ?? 0,
      };
    }
    app.decorate('queueCounts', queueCounts);

    app.decorate('retryFailedJob', async (of: Queue, id: string, options: { resetAttempts?: boolean } = {}) => {
      const job = await withQueue(() => Job.fromId(of, id));
      if (!job) throw notFound('Job');
      const state = await withQueue(() => job.getState());
      if (state !== 'failed') throw new AdminError('CONFLICT', `Job is ${state}, not failed`, { state });
      const reset = options.resetAttempts ? { resetAttemptsMade: true, resetAttemptsStarted: true } : {};
      try {
        await withQueue(() => job.retry('failed', reset));
      } catch (err) {
        // Another admin retried it, or it was removed, between the check and the retry.
        const now = await withQueue(() => job.getState());
        if (now !== 'failed') throw new AdminError('CONFLICT', `Job is ${now}, not failed`, { state: now });
        throw err;
      }
    });

    if (!app.metrics.getSingleMetric('switchboard_queue_jobs')) {
      new Gauge({
        name: 'switchboard_queue_jobs',
        help: 'Jobs in the notifications queue, by state',
        labelNames: ['state'] as const,
        registers: [app.metrics],
        async collect() {
          try {
            const counts = await within(queueCounts(), COUNTS_TIMEOUT_MS, unavailable);
            for (const state of STATES) this.set({ state }, counts[state]);
          } catch {
            // Redis is away: an empty gauge rather than a stale one.
            this.reset();
          }
        },
      });
    }
  },
  { name: 'queue', dependencies: ['metrics', 'store'] },
);
