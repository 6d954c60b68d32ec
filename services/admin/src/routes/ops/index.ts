import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { HealthResponse } from '../../schemas.js';

/** Probes, metrics and the OpenAPI document: no auth. */
const opsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/healthz',
    { schema: { tags: ['ops'], summary: 'Liveness: the process answers', response: { 200: HealthResponse } } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['ops'],
        summary: 'Readiness: Redis answers and the instance is not shutting down',
        response: { 200: HealthResponse, 503: HealthResponse },
      },
    },
    async (_request, reply) => {
      const ready = !app.isClosing() && (await app.redisReady());
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready' });
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['ops'],
        summary: 'Prometheus metrics',
        description:
          'Prometheus text format, without auth: expose it only to the network Prometheus scrapes from ' +
          '(a NetworkPolicy, or a firewall rule), like the rest of this service.',
        response: {
          200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } },
        },
      },
    },
    async (_request, reply) => {
      const body = await app.metrics.metrics();
      return reply.type(app.metrics.contentType).send(body);
    },
  );

  app.get(
    '/openapi.json',
    {
      schema: {
        tags: ['ops'],
        summary: 'This OpenAPI 3.1 document',
        response: { 200: { description: 'OpenAPI document', type: 'object', additionalProperties: true } },
      },
    },
    async () => app.swagger(),
  );
};

export default opsRoutes;
