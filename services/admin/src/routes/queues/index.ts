import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Job } from 'bullmq';
import { jobSummary } from '../../jobs.js';
import { describePrincipal } from '../../plugins/app/auth.js';
import {
  AUTH_ERRORS,
  BEARER,
  DEFAULT_FAILED_JOBS,
  errorResponses,
  JobParams,
  QueueQuery,
  QueueResponse,
  RetryResponse,
  type FailedJob,
} from '../../schemas.js';

/** What is shown of a failed job: its bookkeeping, the notification type and target kind, never its data. */
function failedJob(job: Job): FailedJob | undefined {
  if (job.id === undefined) return undefined;
  const out: FailedJob = {
    id: job.id,
    name: job.name,
    failedReason: job.failedReason ?? '',
    attemptsMade: job.attemptsMade,
    timestamp: job.timestamp,
  };
  if (job.finishedOn !== undefined) out.finishedOn = job.finishedOn;
  return { ...out, ...jobSummary(job.data) };
}

const queuesRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const queue = app.notificationsQueue;

  app.get(
    '/queues/notifications',
    {
      schema: {
        tags: ['notifications'],
        summary: 'Job counts and the most recent failed jobs',
        security: BEARER,
        querystring: QueueQuery,
        response: { 200: QueueResponse, ...errorResponses('INVALID_PAYLOAD', ...AUTH_ERRORS) },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? DEFAULT_FAILED_JOBS;
      const [counts, jobs] = await Promise.all([app.queueCounts(), app.withQueue(() => queue.getFailed(0, limit - 1))]);
      const failed = jobs.flatMap((job) => failedJob(job) ?? []);
      return { counts, failed };
    },
  );

  app.post(
    '/queues/notifications/jobs/:id/retry',
    {
      schema: {
        tags: ['notifications'],
        summary: 'Retry a failed job',
        description: 'Moves a failed job back to waiting with its attempts reset. 404 for an unknown job, 409 for a job that is not failed.',
        security: BEARER,
        params: JobParams,
        response: { 202: RetryResponse, ...errorResponses('INVALID_PAYLOAD', 'NOT_FOUND', 'CONFLICT', ...AUTH_ERRORS) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      await app.retryFailedJob(queue, id, { resetAttempts: true });
      request.log.info({ principal: describePrincipal(request.principal), jobId: id }, 'admin retried a failed job');
      return reply.code(202).send({ id });
    },
  );
};

export default queuesRoutes;
