import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Job } from 'bullmq';
import type { Static } from '@sinclair/typebox';
import type { WebhookJob } from '@switchboard/protocol';
import { describePrincipal } from '../../plugins/app/auth.js';
import {
  AUTH_ERRORS,
  BEARER,
  DEFAULT_FAILED_JOBS,
  errorResponses,
  JobParams,
  QueueQuery,
  RetryResponse,
  WebhookQueueResponse,
  WebhooksResponse,
  type FailedWebhookBatch,
} from '../../schemas.js';

/** What is shown of a failed batch: its bookkeeping and the span of its events, never their data. */
function failedBatch(job: Job<WebhookJob>): Static<typeof FailedWebhookBatch> | undefined {
  if (job.id === undefined) return undefined;
  const events = job.data.kind === 'dropped' && Array.isArray(job.data.events) ? job.data.events : [];
  const out: Static<typeof FailedWebhookBatch> = {
    id: job.id,
    name: job.name,
    failedReason: job.failedReason ?? '',
    attemptsMade: job.attemptsMade,
    timestamp: job.timestamp,
    endpoint: String(job.data.endpoint ?? ''),
    events: events.length,
  };
  if (job.finishedOn !== undefined) out.finishedOn = job.finishedOn;
  if (events.length) {
    out.firstSeq = events[0]!.seq;
    out.lastSeq = events[events.length - 1]!.seq;
  }
  return out;
}

/**
 * Webhook deliveries (SPEC §7a): the endpoints' state, and the batches an endpoint that stayed down
 * lost beyond WEBHOOK_MAX_PENDING, kept failed for inspection and retry.
 */
const webhooksRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const queue = app.webhooksQueue;
  const backlog = app.webhookBacklog;

  app.get(
    '/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Webhook endpoints and their delivery state',
        description: 'Empty when no dispatcher runs with WEBHOOK_URLS.',
        security: BEARER,
        response: { 200: WebhooksResponse, ...errorResponses(...AUTH_ERRORS) },
      },
    },
    async () => {
      const endpoints = await app.withQueue(() => backlog.endpoints());
      const states = await app.withQueue(() => Promise.all(endpoints.map((e) => backlog.state(e.id))));
      return { endpoints: endpoints.map((e, i) => ({ ...e, ...states[i]! })).sort((a, b) => a.url.localeCompare(b.url)) };
    },
  );

  app.get(
    '/queues/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Job counts and the most recent failed batches of the webhooks queue',
        security: BEARER,
        querystring: QueueQuery,
        response: { 200: WebhookQueueResponse, ...errorResponses('INVALID_PAYLOAD', ...AUTH_ERRORS) },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? DEFAULT_FAILED_JOBS;
      const [counts, jobs] = await Promise.all([app.queueCounts(queue), app.withQueue(() => queue.getFailed(0, limit - 1))]);
      return { counts, failed: jobs.flatMap((job) => failedBatch(job) ?? []) };
    },
  );

  app.post(
    '/queues/webhooks/jobs/:id/retry',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Send a failed batch again',
        description:
          'Moves a failed batch back to waiting: its events are posted once more, outside the endpoint\u2019s order ' +
          '(receivers order by `seq`). 404 for an unknown job, 409 for a job that is not failed.',
        security: BEARER,
        params: JobParams,
        response: { 202: RetryResponse, ...errorResponses('INVALID_PAYLOAD', 'NOT_FOUND', 'CONFLICT', ...AUTH_ERRORS) },
      },
    },
    async (request, reply) => {
      // attempts are not reset: a set-aside batch fails only on its first attempt
      const { id } = request.params;
      await app.retryFailedJob(queue, id);
      request.log.info({ principal: describePrincipal(request.principal), jobId: id }, 'admin retried a failed webhook batch');
      return reply.code(202).send({ id });
    },
  );
};

export default webhooksRoutes;
