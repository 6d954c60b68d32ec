import fp from 'fastify-plugin';
import { AdminError, toHttpError } from '../../errors.js';

/**
 * The one error handler: every failure becomes `{ error: { code, message, details? } }` with the
 * status of its code. Server-side failures answer a generic message; their detail is logged.
 */
export interface ErrorHandlerOptions {
  /** Whether Redis is reachable right now. */
  redisReady: () => boolean;
}

export default fp<ErrorHandlerOptions>(
  async (app, { redisReady }) => {
    app.setErrorHandler((err, request, reply) => {
      const http = toHttpError(err, !redisReady());
      if (http.status === 503 && http.internal) request.log.warn({ err }, 'request failed: redis unavailable');
      else if (http.internal) request.log.error({ err }, 'request failed');
      return reply.code(http.status).headers(http.headers).send({ error: http.body });
    });

    app.setNotFoundHandler((request) => {
      const path = request.url.split('?')[0];
      throw new AdminError('NOT_FOUND', `Route ${request.method} ${path} not found`);
    });
  },
  { name: 'error-handler' },
);
