import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { unauthorized } from '../../errors.js';
import { describePrincipal } from '../../plugins/app/auth.js';
import type { ConsoleSession } from '../../plugins/app/console-sessions.js';
import {
  CONSOLE_SESSION,
  ConsoleSessionResponse,
  ConsoleSignInBody,
  errorResponses,
} from '../../schemas.js';
import queueUi, { QUEUE_UI_PATH } from './queue-ui.js';

export interface ConsoleRouteOptions {
  /** The gateways' heartbeat interval, handed to the page for the pod states. */
  heartbeatIntervalMs: number;
}

/** The console's static front end: `index.html` and `assets/` (plain ES modules and CSS, no build step). */
export const CONSOLE_DIR = fileURLToPath(new URL('../../../console/', import.meta.url));

/** Sign-in attempts per minute per client address, on each admin instance. */
export const SIGN_IN_ATTEMPTS_PER_MIN = 10;

/**
 * The console's pages run only this origin's scripts and styles, and are never framed
 * (clickjacking the disconnect buttons).
 */
export const CONSOLE_HELMET = {
  contentSecurityPolicy: {
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", 'data:'],
      fontSrc: ["'self'"],
      connectSrc: ["'self'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
      objectSrc: ["'none'"],
      upgradeInsecureRequests: null,
    },
  },
  frameguard: { action: 'deny' as const },
};

const HTML = { description: 'HTML page', content: { 'text/html': { schema: { type: 'string' } } } } as const;

/**
 * The operator console (SPEC §7 `GET /console`): a page served from this origin that calls the
 * `/v1` API with a session cookie, the sign-in and sign-out routes, and Bull Board for the queue.
 *
 * CSRF: the cookie is `SameSite=Strict`, and a state-changing request made with it must carry an
 * `Origin` naming this service and the session's `X-CSRF-Token` (Bull Board's own calls cannot
 * carry the token: they get the `Origin` check).
 */
const consoleRoutes: FastifyPluginAsyncTypebox<ConsoleRouteOptions> = async (app, { heartbeatIntervalMs }) => {
  const page = readFileSync(`${CONSOLE_DIR}index.html`, 'utf8');
  const sessions = app.consoleSessions;

  const sendPage = {
    helmet: CONSOLE_HELMET,
    handler: async (_request: FastifyRequest, reply: FastifyReply) =>
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(page),
  };
  app.get('/console', {
    ...sendPage,
    schema: {
      tags: ['console'],
      summary: 'The operator console',
      description:
        'Sign in with an admin API key or an admin access token; then the cluster overview, users, rooms, ' +
        'notifications and the queue, on top of the `/v1` API.',
      response: { 200: HTML },
    },
  });
  app.get('/console/', { ...sendPage, schema: { hide: true } });

  await app.register(fastifyStatic, {
    root: `${CONSOLE_DIR}assets`,
    prefix: '/console/assets/',
    decorateReply: false,
    // One route per file that exists, so unknown names are the API's 404 and metrics stay bounded.
    wildcard: false,
    index: false,
    schemaHide: true,
  });

  const view = (session: ConsoleSession) => ({
    principal: describePrincipal(session.principal),
    expiresAt: session.expiresAt,
    csrfToken: session.csrfToken,
    heartbeatIntervalMs,
  });
  const noStore = { 'cache-control': 'no-store' };

  app.get(
    '/console/session',
    {
      onRequest: app.rateLimit(),
      schema: {
        tags: ['console'],
        summary: 'The console session of this browser',
        description: 'Answered from the `sb_console` session cookie; 401 when there is none or it has ended.',
        security: CONSOLE_SESSION,
        response: { 200: ConsoleSessionResponse, ...errorResponses('UNAUTHORIZED', 'RATE_LIMITED', 'UNAVAILABLE') },
      },
    },
    async (request, reply) => {
      const session = await sessions.find(request);
      if (!session) throw unauthorized('Not signed in', sessions.hasCookie(request));
      return reply.headers(noStore).send(view(session));
    },
  );

  app.post(
    '/console/session',
    {
      onRequest: [
        app.rateLimit({ max: SIGN_IN_ATTEMPTS_PER_MIN, keyGenerator: (request) => `sign-in:${request.ip}` }),
        async (request) => sessions.assertSameOrigin(request),
      ],
      schema: {
        tags: ['console'],
        summary: 'Sign in to the console',
        description:
          'Checks the credential as Bearer auth does, then sets the `sb_console` cookie (HttpOnly, SameSite=Strict, ' +
          '`Secure` over HTTPS): an opaque id of a session kept in Redis, never the credential. The request must ' +
          `come from this origin (\`Origin\`). At most ${SIGN_IN_ATTEMPTS_PER_MIN} attempts per minute per client address.`,
        body: ConsoleSignInBody,
        response: {
          201: ConsoleSessionResponse,
          ...errorResponses('INVALID_PAYLOAD', 'UNAUTHORIZED', 'FORBIDDEN', 'RATE_LIMITED', 'UNAVAILABLE'),
        },
      },
    },
    async (request, reply) => {
      const verified = await app.verifyAdminCredential(request.body.credential, request);
      // Signing in again replaces this browser's session: the old id stops working at once.
      const previous = await sessions.find(request);
      if (previous) await sessions.destroy(previous);
      const created = await sessions.create(verified.principal, verified.expiresAt);
      sessions.setCookie(request, reply, created);
      request.log.info(
        { principal: describePrincipal(created.session.principal), expiresAt: created.session.expiresAt },
        'admin signed in to the console',
      );
      return reply.code(201).headers(noStore).send(view(created.session));
    },
  );

  app.delete(
    '/console/session',
    {
      onRequest: app.rateLimit(),
      schema: {
        tags: ['console'],
        summary: 'Sign out of the console',
        description:
          'Ends the session in Redis and clears the cookie. With a live session the request needs this origin’s ' +
          '`Origin` and the session’s `X-CSRF-Token`; without one it only clears the cookie.',
        security: CONSOLE_SESSION,
        response: {
          204: { description: 'Signed out', type: 'null' },
          ...errorResponses('FORBIDDEN', 'RATE_LIMITED', 'UNAVAILABLE'),
        },
      },
    },
    async (request, reply) => {
      const session = await sessions.find(request);
      if (session) {
        sessions.assertCsrf(request, session);
        await sessions.destroy(session);
        request.log.info({ principal: describePrincipal(session.principal) }, 'admin signed out of the console');
      }
      sessions.clearCookie(request, reply);
      return reply.code(204).send();
    },
  );

  await app.register(queueUi, { prefix: QUEUE_UI_PATH });
};

export default consoleRoutes;
