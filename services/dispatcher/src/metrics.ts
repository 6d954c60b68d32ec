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
      try {
        const counts = await bounded(queue.getJobCounts('waiting', 'prioritized', ...QUEUE_STATES), countsTimeoutMs);
        const waiting = (counts.waiting ?? 0) + (counts.paused ?? 0) + (counts.prioritized ?? 0);
        this.set({ state: 'waiting' }, waiting);
        for (const state of QUEUE_STATES) if (state !== 'waiting') this.set({ state }, counts[state] ?? 0);
      } catch {
        this.reset();
      }
    },
  });

  return { jobs, jobDuration, deliveryLatency, queueJobs };
}

export interface EventMetrics {
  relayed: Counter<'type'>;
  lost: Counter;
  queueTrimmed: Counter;
  webhookRequests: Counter<'endpoint' | 'result'>;
  webhookEvents: Counter<'endpoint' | 'result'>;
  webhookRequestDuration: Histogram<'endpoint'>;
  webhookLatency: Histogram<'endpoint'>;
}

export interface EventMetricsSources {
  /** Outbox entries not yet relayed. */
  outboxLength(): Promise<number>;
  /** Per endpoint label, its pending events. */
  pending(): Promise<Map<string, number>>;
  /** The endpoints' labels. */
  endpoints: string[];
}

/** Read at scrape time within a bound; on failure the gauge is left empty rather than stale. */
async function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timed out')), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Metrics of the lifecycle-event relay and the webhook deliveries (SPEC §7a). */
export function createEventMetrics(registry: Registry, sources: EventMetricsSources, readTimeoutMs = 1000): EventMetrics {
  const registers = [registry];
  const relayed = new Counter({
    name: 'switchboard_events_relayed_total',
    help: 'Lifecycle events handed on from the outbox to the events queue and the webhook endpoints, by type',
    labelNames: ['type'] as const,
    registers,
  });
  const lost = new Counter({
    name: 'switchboard_events_lost_total',
    help: 'Registry changes (each with one or more lifecycle events) trimmed from a full outbox (EVENTS_OUTBOX_MAX) before the relay read them; counted by the relaying dispatcher',
    registers,
  });
  const queueTrimmed = new Counter({
    name: 'switchboard_events_queue_trimmed_total',
    help: 'Waiting jobs removed from the events queue beyond EVENTS_QUEUE_MAX (nobody consuming it)',
    registers,
  });
  new Gauge({
    name: 'switchboard_events_outbox_entries',
    help: 'Lifecycle events written and not yet relayed',
    registers,
    async collect() {
      try {
        this.set(await bounded(sources.outboxLength(), readTimeoutMs));
      } catch {
        this.reset();
      }
    },
  });
  const webhookRequests = new Counter({
    name: 'switchboard_webhook_requests_total',
    help: 'Webhook requests, by endpoint and result: delivered (2xx), http_error, timeout, network',
    labelNames: ['endpoint', 'result'] as const,
    registers,
  });
  const webhookEvents = new Counter({
    name: 'switchboard_webhook_events_total',
    help: 'Lifecycle events by endpoint and result: delivered, or dropped (beyond WEBHOOK_MAX_PENDING, kept as a failed batch)',
    labelNames: ['endpoint', 'result'] as const,
    registers,
  });
  for (const endpoint of sources.endpoints) {
    webhookRequests.inc({ endpoint, result: 'delivered' }, 0);
    webhookRequests.inc({ endpoint, result: 'http_error' }, 0);
    webhookEvents.inc({ endpoint, result: 'delivered' }, 0);
    webhookEvents.inc({ endpoint, result: 'dropped' }, 0);
  }
  new Gauge({
    name: 'switchboard_webhook_pending_events',
    help: 'Lifecycle events waiting for delivery to an endpoint',
    labelNames: ['endpoint'] as const,
    registers,
    async collect() {
      try {
        const pending = await bounded(sources.pending(), readTimeoutMs);
        for (const [endpoint, n] of pending) this.set({ endpoint }, n);
      } catch {
        this.reset();
      }
    },
  });
  const webhookRequestDuration = new Histogram({
    name: 'switchboard_webhook_request_duration_seconds',
    help: 'Time for an endpoint to answer a webhook request (delivered ones)',
    labelNames: ['endpoint'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const webhookLatency = new Histogram({
    name: 'switchboard_webhook_delivery_latency_seconds',
    help: 'Time from a lifecycle transition to its delivery to an endpoint (2xx)',
    labelNames: ['endpoint'] as const,
    buckets: DELIVERY_BUCKETS,
    registers,
  });
  return { relayed, lost, queueTrimmed, webhookRequests, webhookEvents, webhookRequestDuration, webhookLatency };
}
