import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, BEARER, errorResponses, NotificationBody, NotificationResponse } from '../../schemas.js';

const notificationsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/notifications',
    {
      schema: {
        tags: ['notifications'],
        summary: 'Enqueue a notification',
        description:
          'The body is a notification job (SPEC §6), enqueued on the `notifications` queue for the dispatcher. ' +
          'The answer\'s `id` is the notification id clients see (the body\'s `id`, or `job:<job id>` when it has none). ' +
          'An `id` is delivered once within the idempotency window; the same `id` with other content is 409. ' +
          '503 while Redis is down.',
        security: BEARER,
        body: NotificationBody,
        response: { 202: NotificationResponse, ...errorResponses('INVALID_PAYLOAD', 'CONFLICT', 'PAYLOAD_TOO_LARGE', ...AUTH_ERRORS) },
      },
    },
    async (request, reply) => {
      const { id, jobId } = await app.producer.notify(request.body);
      return reply.code(202).send({ id, jobId });
    },
  );
};

export default notificationsRoutes;
