import fp from 'fastify-plugin';
import { AdminError } from '../../errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** True once `close()` has begun: readiness fails and new requests get 503. */
    isClosing(): boolean;
  }
}

/** Draining: in-flight requests finish, requests arriving after `close()` began get `UNAVAILABLE`. */
export default fp(
  async (app) => {
    let closing = false;
    app.decorate('isClosing', () => closing);
    app.addHook('preClose', async () => {
      closing = true;
    });
    app.addHook('onRequest', async (request) => {
      const route = request.routeOptions.url;
      if (closing && route !== '/healthz' && route !== '/readyz') {
        throw new AdminError('UNAVAILABLE', 'Shutting down, retry on another instance');
      }
    });
  },
  { name: 'lifecycle' },
);
