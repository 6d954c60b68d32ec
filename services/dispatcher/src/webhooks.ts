import type { Queue} from 'bullmq';
import { UnrecoverableError, Worker, type Job, type JobsOptions } from 'bullmq';
import { signWebhook } from '@switchboard/auth';
import type { WebhookEndpoint, WebhooksConfig } from '@switchboard/config';
import type { Logger } from '@switchboard/observability';
import {
  type LifecycleEvent,
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
  WEBHOOKS_QUEUE,
  type WebhookJob,
} from '@switchboard/protocol';
import { throttled, WebhookBacklog, type RedisClient } from '@switchboard/store';
import type { EventMetrics } from './metrics.js';

/**
 * Webhook delivery (SPEC §7a): a BullMQ worker on the queue `webhooks`. Each endpoint has one
 * `deliver` job at a time (its chain, see WebhookBacklog), which posts the endpoint's oldest
 * pending events as one signed batch and, on a 2xx answer, acknowledges them and adds the next
 * job; any other answer, or none, fails the attempt, retried with backoff capped at 10 s for as
 * long as it takes. One job per endpoint at a time keeps the order per room and per user; many
 * endpoints are delivered in parallel, by any number of dispatchers.
 */

/** Attempts of a deliver job: as many as it takes (the endpoint keeps its events meanwhile). */
const FOREVER = 2 ** 31 - 1;
/** The first retry's delay; doubled each time up to the cap. */
const RETRY_BASE_MS = 250;
export const RETRY_CAP_MS = 10_000;

export const deliverJobOptions: JobsOptions = {
  attempts: FOREVER,
  backoff: { type: 'webhook' },
  // kept a minute after completing: the relay's sweep tells a finished job from a missing one
  removeOnComplete: { age: 60 },
  removeOnFail: { count: 1000 },
};

/** Dropped batches fail at once and stay (for inspection and retry) until removed. */
export const dropJobOptions: JobsOptions = { attempts: 1, removeOnComplete: { age: 3600 }, removeOnFail: false };

/** Backoff before attempt `attemptsMade + 1`: 250 ms doubling, capped at 10 s, with ±20 % jitter below the cap. */
export function retryDelay(attemptsMade: number, random = Math.random): number {
  const exp = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.max(0, Math.min(attemptsMade - 1, 20)));
  return Math.min(RETRY_CAP_MS, Math.round(exp * (0.8 + 0.4 * random())));
}

/** A request that did not deliver: the answer's status, or what happened instead. */
export class WebhookDeliveryError extends Error {
  override name = 'WebhookDeliveryError';
  constructor(
    message: string,
    readonly result: 'http_error' | 'timeout' | 'network',
  ) {
    super(message);
  }
}

export interface WebhookWorkerDeps {
  redis: RedisClient;
  connection: RedisClient;
  logger: Logger;
  metrics: EventMetrics;
  /** The queue the next batch jobs are added to (the relay's). */
  queue: Queue<WebhookJob>;
}

export interface WebhookWorkerOptions {
  keyPrefix: string;
  queuePrefix: string;
  webhooks: WebhooksConfig;
  stalledIntervalMs: number;
}

/** Posts one signed batch; resolves on a 2xx answer, throws a WebhookDeliveryError otherwise. */
export async function postBatch(endpoint: WebhookEndpoint, secret: string, events: LifecycleEvent[], timeoutMs: number): Promise<number> {
  const body = JSON.stringify({ events });
  const timestamp = Date.now();
  let response: Response;
  try {
    response = await fetch(endpoint.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'switchboard-webhooks',
        [WEBHOOK_TIMESTAMP_HEADER]: String(timestamp),
        [WEBHOOK_SIGNATURE_HEADER]: signWebhook(secret, timestamp, body),
      },
      body,
      // a redirect is not an answer: it would repost the batch elsewhere
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const e = err as Error;
    if (e.name === 'TimeoutError') throw new WebhookDeliveryError(`no answer within ${timeoutMs} ms`, 'timeout');
    const cause = (e.cause as { code?: string; message?: string } | undefined) ?? {};
    throw new WebhookDeliveryError(`request failed: ${cause.code ?? cause.message ?? e.message}`, 'network');
  }
  // the body is not read: drain it so that the connection is reused
  await response.body?.cancel().catch(() => {});
  if (response.status < 200 || response.status > 299) throw new WebhookDeliveryError(`answered HTTP ${response.status}`, 'http_error');
  return response.status;
}

export function createWebhookWorker(deps: WebhookWorkerDeps, options: WebhookWorkerOptions): Worker<WebhookJob> {
  const { logger, metrics } = deps;
  const { webhooks } = options;
  const backlog = new WebhookBacklog(deps.redis, options.keyPrefix);
  const endpoints = new Map(webhooks.endpoints.map((e) => [e.id, e]));
  const warn = throttled((obj: object, msg: string) => logger.warn(obj, msg), 5000);

  async function send(endpoint: WebhookEndpoint, events: LifecycleEvent[]): Promise<void> {
    const stop = metrics.webhookRequestDuration.startTimer({ endpoint: endpoint.label });
    try {
      await postBatch(endpoint, webhooks.secret, events, webhooks.timeoutMs);
      stop();
      metrics.webhookRequests.inc({ endpoint: endpoint.label, result: 'delivered' });
      metrics.webhookEvents.inc({ endpoint: endpoint.label, result: 'delivered' }, events.length);
      const now = Date.now();
      for (const e of events) metrics.webhookLatency.observe({ endpoint: endpoint.label }, Math.max(0, now - e.ts) / 1000);
    } catch (err) {
      const result = err instanceof WebhookDeliveryError ? err.result : 'network';
      metrics.webhookRequests.inc({ endpoint: endpoint.label, result });
      await backlog.recordFailure(endpoint.id, (err as Error).message).catch(() => {});
      throw err;
    }
  }

  const worker = new Worker<WebhookJob>(
    WEBHOOKS_QUEUE,
    async (job: Job<WebhookJob>) => {
      const data = job.data;
      const endpoint = endpoints.get(data.endpoint);
      // another dispatcher's endpoint (WEBHOOK_URLS differ): retried, to be taken by one that has it
      if (!endpoint) throw new Error(`endpoint ${data.endpoint} is not in this dispatcher's WEBHOOK_URLS`);
      if (data.kind === 'dropped') {
        // set aside: failed at once, kept; a retry (admin API, queue UI) sends them
        if (job.attemptsMade === 0) throw new UnrecoverableError(data.reason);
        await send(endpoint, data.events);
        return 'delivered';
      }
      // a job the chain has moved past (added again by a sweep that raced its completion) sends nothing
      if ((await backlog.inflight(endpoint.id)) !== job.id) return 'stale';
      const batch = await backlog.peek(endpoint.id, webhooks.batchMax);
      if (batch.events.length) await send(endpoint, batch.events);
      const next = await backlog.ack(endpoint.id, batch.last, job.id!);
      if (next) await deps.queue.add('deliver', { kind: 'deliver', endpoint: endpoint.id }, { ...deliverJobOptions, jobId: next });
      return batch.events.length ? 'delivered' : 'empty';
    },
    {
      connection: deps.connection,
      prefix: options.queuePrefix,
      concurrency: webhooks.concurrency,
      stalledInterval: options.stalledIntervalMs,
      lockDuration: Math.max(options.stalledIntervalMs, webhooks.timeoutMs * 2),
      maxStalledCount: FOREVER,
      autorun: false,
      settings: { backoffStrategy: (attemptsMade: number) => retryDelay(attemptsMade) },
    },
  );

  worker.on('failed', (job, err) => {
    if (!job) return;
    const endpoint = endpoints.get(job.data.endpoint)?.label ?? job.data.endpoint;
    if (job.data.kind === 'dropped' && job.attemptsMade <= 1 && err.name === 'UnrecoverableError') return; // logged by the relay when it set them aside
    const base = { endpoint, jobId: job.id, attemptsMade: job.attemptsMade, reason: err.message };
    if (job.data.kind === 'dropped') logger.warn(base, 'set-aside webhook batch not delivered: kept failed');
    else warn(base, 'webhook delivery failed, will retry');
  });
  worker.on('error', (err) => warn({ err: { message: err.message } }, 'webhook worker error'));
  return worker;
}
