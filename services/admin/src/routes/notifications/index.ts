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
          'With an `id`, the same notification is enqueued once while the job is kept. 503 while Redis is down.',
        security: BEARER,
        body: NotificationBody,
        response: { 202: NotificationResponse, ...errorResponses('INVALID_PAYLOAD', 'PAYLOAD_TOO_LARGE', ...AUTH_ERRORS) },
      },
    },
    async (request, reply) => {
      const { id } = await app.producer.notify(request.body);
      return reply.code(202).send({ id });
    },
  );
};

export default notificationsRoutes;
