import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';

/** The OpenAPI 3.1 document, built from the routes' schemas, and the Swagger UI at `/docs`. */
export default fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Switchboard admin API',
          version: '1',
          description:
            'Cluster stats, presence, rooms, disconnects, server-side publish, notifications and queue inspection. ' +
            'Every `/v1` route needs `Authorization: Bearer <credential>`: an admin API key, or an access token with the ' +
            'role `admin`. Errors are `{ error: { code, message, details? } }`. Room names in paths are URL-encoded ' +
            '(`encodeURIComponent`).',
        },
        components: {
          securitySchemes: {
            bearer: {
              type: 'http',
              scheme: 'bearer',
              description: 'An admin API key (`ADMIN_API_KEYS`) or an access token whose `roles` include `admin`.',
            },
            consoleSession: {
              type: 'apiKey',
              in: 'cookie',
              name: 'sb_console',
              description:
                'The operator console’s session, set by `POST /console/session`. The `/v1` routes accept it too ' +
                '(state-changing ones only from this origin and with the session’s `X-CSRF-Token`).',
            },
          },
        },
        tags: [
          { name: 'ops', description: 'Health, readiness, metrics and this document (no auth)' },
          { name: 'stats', description: 'Cluster counts' },
          { name: 'users', description: 'Online users, presence, disconnects' },
          { name: 'rooms', description: 'Rooms, members and server-side publish' },
          { name: 'notifications', description: 'The notification queue' },
          { name: 'webhooks', description: 'Lifecycle-event webhooks: endpoints, failed batches, retries' },
          { name: 'console', description: 'The operator console: its page, sign-in and sign-out' },
        ],
      },
      transformObject: (documentObject) => {
        if (!('openapiObject' in documentObject)) return documentObject.swaggerObject;
        const { openapiObject } = documentObject;
        return {
          ...openapiObject,
          paths: {
            ...openapiObject.paths,
            // Served by @fastify/swagger-ui, whose routes are hidden from the document.
            '/docs': {
              get: {
                tags: ['ops'],
                summary: 'Swagger UI for this document',
                responses: { 200: { description: 'HTML page', content: { 'text/html': { schema: { type: 'string' } } } } },
              },
            },
          },
        };
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true, persistAuthorization: false } });
  },
  { name: 'swagger' },
);
