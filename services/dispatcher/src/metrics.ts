import type { Queue } from 'bullmq';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '@switchboard/observability';

export type JobResult = 'completed' | 'duplicate' | 'failed' | 'retried' | 'invalid' | 'conflict';
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

/** Delivery latency spans queueing too: seconds to a minute. */
const DELIVERY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface DispatcherMetrics {
  jobs: Counter<'result'>;
  jobDuration: Histogram;
  deliveryLatency: Histogram;
  queueJobs: Gauge<'state'>;
}

/**
 * The dispatcher's metrics. Queue counts are read from Redis at scrape time; when Redis does not
 * answer within `countsTimeoutMs` the gauge is left empty rather than stale.
 */
export function createDispatcherMetrics(registry: Registry, queue: Queue, countsTimeoutMs = 1000): DispatcherMetrics {
  const registers = [registry];
  const jobs = new Counter({
    name: 'switchboard_dispatcher_jobs_total',
    help: 'Notification jobs processed, by result: completed, duplicate (its id was delivered already: nothing sent), failed (for good), retried (an attempt failed), invalid (rejected data), conflict (id reused with other content)',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of ['completed', 'duplicate', 'failed', 'retried', 'invalid', 'conflict'] satisfies JobResult[]) jobs.inc({ result }, 0);

  const jobDuration = new Histogram({
    name: 'switchboard_dispatcher_job_duration_seconds',
    help: 'Time to process one notification job attempt',
    buckets: LATENCY_BUCKETS,
    registers,
  });

  const deliveryLatency = new Histogram({
    name: 'switchboard_notification_delivery_latency_seconds',
    help: 'Time from enqueueing a notification (plus its delay) to its publication',
    buckets: DELIVERY_BUCKETS,
    registers,
  });

  const queueJobs = new Gauge({
    name: 'switchboard_queue_jobs',
    help: 'Jobs in the notifications queue, by state',
    labelNames: ['state'] as const,
    registers,
    async collect() {
      let timer: NodeJS.Timeout | undefined;
      try {
        const counts = await Promise.race([
          queue.getJobCounts('waiting', 'prioritized', ...QUEUE_STATES),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('queue counts timed out')), countsTimeoutMs);
          }),
        ]);
        const waiting = (counts.waiting ?? 0) + (counts.paused ?? 0) + (counts.prioritized ?? 0);
        this.set({ state: 'waiting' }, waiting);
        for (const state of QUEUE_STATES) if (state !== 'waiting') this.set({ state }, counts[state] ?? 0);
      } catch {
        this.reset();
      } finally {
        clearTimeout(timer);
      }
    },
  });

  return { jobs, jobDuration, deliveryLatency, queueJobs };
}
