import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AUTH_ERRORS, BEARER, errorResponses, StatsResponse } from '../../schemas.js';

const statsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/stats',
    {
      schema: {
        tags: ['stats'],
        summary: 'Cluster counts: pods, connections, users online, rooms, queue',
        description:
          'Read from the counters the gateways keep in Redis: a few Redis round trips whatever the number of ' +
          'connections (never a scan of the sockets).',
        security: BEARER,
        response: { 200: StatsResponse, ...errorResponses(...AUTH_ERRORS) },
      },
    },
    async () => {
      const [counts, queue] = await Promise.all([app.readModel.counts(), app.queueCounts()]);
      return { ...counts, queue };
    },
  );
};

export default statsRoutes;
