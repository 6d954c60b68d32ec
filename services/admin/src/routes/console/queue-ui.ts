import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { WebhookJob } from '@switchboard/protocol';
import type { FastifyInstance } from 'fastify';
import { AdminError, toHttpError, unauthorized } from '../../errors.js';
import { jobSummary } from '../../jobs.js';
import { describePrincipal } from '../../plugins/app/auth.js';
import { isUnsafeMethod } from '../../plugins/app/console-sessions.js';

/** Where Bull Board is mounted, behind the console's sign-in. */
export const QUEUE_UI_PATH = '/console/queues';

/**
 * Bull Board's page sets inline styles, so its CSP allows them; nothing else is loosened (its
 * web-font stylesheet from a CDN is refused: the page falls back to system fonts).
 */
const QUEUE_UI_HELMET = {
  contentSecurityPolicy: {
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'", "'unsafe-inline'"],
      imgSrc: ["'self'", 'data:'],
      fontSrc: ["'self'", 'data:'],
      connectSrc: ["'self'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
      objectSrc: ["'none'"],
      upgradeInsecureRequests: null,
    },
  },
  frameguard: { action: 'deny' as const },
};

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A route's own @fastify/helmet options, where that plugin keeps them. */
    helmet?: typeof QUEUE_UI_HELMET;
  }
}

/**
 * Bull Board actions the console refuses: adding jobs would bypass the producer's validation,
 * editing data would overwrite a notification with the summary shown instead of it, and
 * obliterating deletes the queue. Retries, promotions, cleaning and pausing stay.
 */
export const REFUSED_QUEUE_UI_ROUTES: readonly string[] = [
  'POST /api/queues/:queueName/add',
  'PATCH /api/queues/:queueName/:jobId/update-data',
  'PUT /api/queues/:queueName/obliterate',
];

/**
 * Bull Board (`@bull-board/fastify`) for the `notifications` queue, under the console's session:
 * without one, pages redirect to the sign-in and API calls answer 401. State-changing calls need
 * this origin's `Origin` (Bull Board cannot send the CSRF token), go through the `/v1` rate limit
 * and are logged with who made them. Job data is shown as its type and target kind only, as in
 * `GET /v1/queues/notifications`.
 */
/** A webhook job as shown: its kind and endpoint, and the span of a set-aside batch. */
function webhookJobSummary(data: unknown): Record<string, unknown> {
  if (typeof data !== 'object' || data === null) return {};
  const d = data as Partial<WebhookJob>;
  const out: Record<string, unknown> = { kind: d.kind, endpoint: d.endpoint };
  if (d.kind === 'dropped' && Array.isArray(d.events)) {
    out.events = d.events.length;
    out.firstSeq = d.events[0]?.seq;
    out.lastSeq = d.events.at(-1)?.seq;
    out.reason = d.reason;
  }
  return out;
}

export default async function queueUi(app: FastifyInstance): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(QUEUE_UI_PATH);
  const queue = new BullMQAdapter(app.notificationsQueue, {
    allowRetries: true,
    description: 'Notifications for the dispatcher. Job data is shown as its type and target kind only.',
  });
  queue.setFormatter('data', (data: unknown) => jobSummary(data));
  const webhooks = new BullMQAdapter(app.webhooksQueue, {
    allowRetries: true,
    description: 'Lifecycle-event webhook batches (SPEC §7a): each endpoint\'s delivery chain, and the batches set aside beyond WEBHOOK_MAX_PENDING (failed; a retry sends them).',
  });
  webhooks.setFormatter('data', (data: unknown) => webhookJobSummary(data));
  createBullBoard({
    queues: [queue, webhooks],
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'Switchboard',
        miscLinks: [{ text: 'Back to the console', url: '/console' }],
      },
    },
  });
  // In the API's error format, with 5xx causes logged and never sent (Bull Board's own handler sends them).
  serverAdapter.setErrorHandler((err: Error) => {
    const http = toHttpError(err, app.redis.status !== 'ready');
    if (http.internal) app.log.error({ err }, 'queue UI request failed');
    return { status: http.status as 500, body: { error: http.body } };
  });

  const refused = new Set(REFUSED_QUEUE_UI_ROUTES.map((r) => r.replace(' ', ` ${QUEUE_UI_PATH}`)));

  // Set on the route config directly: @fastify/helmet has already read the `helmet` route option
  // by the time this scope's onRoute hook runs.
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, helmet: QUEUE_UI_HELMET };
  });
  app.addHook('onRequest', app.rateLimit());
  app.addHook('onRequest', async (request, reply) => {
    const session = await app.consoleSessions.find(request);
    if (!session) {
      const page = request.method === 'GET' && !request.url.startsWith(`${QUEUE_UI_PATH}/api/`);
      if (page) return reply.redirect('/console', 303);
      throw unauthorized('Not signed in to the console', app.consoleSessions.hasCookie(request));
    }
    if (isUnsafeMethod(request.method)) {
      app.consoleSessions.assertSameOrigin(request);
      if (refused.has(`${request.method} ${request.routeOptions.url ?? ''}`)) {
        throw new AdminError('FORBIDDEN', 'This action is not offered by the console');
      }
    }
    request.principal = session.principal;
    request.consoleSession = session;
    return undefined;
  });
  app.addHook('onResponse', async (request, reply) => {
    if (!isUnsafeMethod(request.method) || !request.consoleSession || reply.statusCode >= 400) return;
    request.log.info(
      {
        principal: describePrincipal(request.principal),
        action: `${request.method} ${(request.routeOptions.url ?? '').slice(QUEUE_UI_PATH.length)}`,
        params: request.params,
      },
      'admin changed the queue from the queue UI',
    );
  });

  await app.register(serverAdapter.registerPlugin());
}
