import helmet from '@fastify/helmet';
import fp from 'fastify-plugin';

/**
 * Security headers on every response. Helmet's default CSP already lets the Swagger UI at
 * `/docs` work (its scripts and styles are served from this origin, its images are `data:`
 * URIs, and its validator badge is off); `upgrade-insecure-requests` is dropped because the
 * admin API is often reached over plain HTTP (a port-forward, an internal network), where it
 * would break the page.
 */
export default fp(
  async (app) => {
    await app.register(helmet, {
      contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
    });
  },
  { name: 'helmet' },
);
