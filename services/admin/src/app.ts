import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { TokenVerifier } from '@switchboard/auth';
import type { AdminConfig } from '@switchboard/config';
import type { Logger } from '@switchboard/observability';
import type { Producer } from '@switchboard/producer';
import type { Broadcaster, RedisClient } from '@switchboard/store';
import { bearerCredential, createApiKeyMatcher } from './api-keys.js';
import { validatorCompiler } from './validation.js';
import helmet from './plugins/external/helmet.js';
import cookie from './plugins/external/cookie.js';
import rateLimit from './plugins/external/rate-limit.js';
import swagger from './plugins/external/swagger.js';
import auth from './plugins/app/auth.js';
import consoleSessions from './plugins/app/console-sessions.js';
import emitter from './plugins/app/emitter.js';
import errorHandler from './plugins/app/error-handler.js';
import lifecycle from './plugins/app/lifecycle.js';
import metrics from './plugins/app/metrics.js';
import queue from './plugins/app/queue.js';
import store from './plugins/app/store.js';
import consoleRoutes from './routes/console/index.js';
import notificationsRoutes from './routes/notifications/index.js';
import opsRoutes from './routes/ops/index.js';
import queuesRoutes from './routes/queues/index.js';
import webhooksRoutes from './routes/webhooks/index.js';
import roomsRoutes from './routes/rooms/index.js';
import statsRoutes from './routes/stats/index.js';
import usersRoutes from './routes/users/index.js';

export interface AdminDeps {
  /** Commands: registry reads, room history, readiness. Closed by the caller after the app. */
  redis: RedisClient;
  /** Publishes to the gateways; its key must be `ioKey(KEY_PREFIX)`, its mode the gateways' `PUBSUB_MODE`. */
  emitter: Broadcaster;
  /** Enqueues notifications; its queue is inspected and retried. Closed by the caller. */
  producer: Producer;
  /** Verifies admin access tokens; without it only API keys are accepted. */
  verifier?: TokenVerifier;
  logger: Logger;
  metrics: Registry;
}

/** Room names are at most 200 characters, up to three times that URL-encoded. */
const MAX_PARAM_LENGTH = 1024;
/** Fastify's default body limit, raised when messages may be larger. */
const MIN_BODY_LIMIT = 1024 * 1024;

/**
 * The admin API (SPEC §7): external plugins (security headers, rate limiting, OpenAPI, cookies),
 * then the app's plugins (errors, lifecycle, metrics, Redis-backed stores, emitter, queue,
 * console sessions, auth), then the routes: probes, the operator console, `/v1`. The caller
 * listens and closes; the deps' clients stay the caller's.
 */
export async function buildAdmin(deps: AdminDeps, config: AdminConfig): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: Math.max(MIN_BODY_LIMIT, config.maxPayloadBytes * 2),
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // The lifecycle plugin answers during shutdown, in the API's error format.
    return503OnClosing: false,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // A JSON API: anything but JSON bodies is 415.
  app.removeContentTypeParser('text/plain');

  const matchApiKey = createApiKeyMatcher(config.adminApiKeys);
  const rateLimitKey = async (request: FastifyRequest): Promise<string> => {
    const credential = bearerCredential(request.headers.authorization);
    if (credential !== undefined) {
      const key = matchApiKey(credential);
      return key >= 0 ? `key:${key}` : `ip:${request.ip}`;
    }
    // A console session signed in with an API key shares that key's budget. A failed lookup
    // (Redis away) is answered by `authenticate`, which sees the same lookup.
    const session = await app.consoleSessions.find(request).catch(() => null);
    return session?.principal.kind === 'api-key' ? `key:${session.principal.key}` : `ip:${request.ip}`;
  };

  await app.register(helmet);
  await app.register(rateLimit, { max: config.rateLimitPerMin, keyGenerator: rateLimitKey });
  await app.register(swagger);
  await app.register(cookie);

  await app.register(errorHandler, { redisReady: () => deps.redis.status === 'ready' });
  await app.register(lifecycle);
  await app.register(metrics, { registry: deps.metrics });
  await app.register(store, { redis: deps.redis, keyPrefix: config.keyPrefix, history: config.history });
  await app.register(emitter, { emitter: deps.emitter });
  await app.register(queue, { producer: deps.producer });
  await app.register(consoleSessions, {
    keyPrefix: config.keyPrefix,
    apiKeys: config.adminApiKeys,
    ttlSec: config.console.sessionTtlSec,
  });
  await app.register(auth, { matchApiKey, ...(deps.verifier ? { verifier: deps.verifier } : {}) });

  await app.register(opsRoutes);
  await app.register(consoleRoutes, { heartbeatIntervalMs: config.heartbeatIntervalMs });
  await app.register(
    async (v1) => {
      v1.addHook('onRequest', v1.rateLimit());
      v1.addHook('onRequest', v1.authenticate);
      await v1.register(statsRoutes);
      await v1.register(usersRoutes);
      await v1.register(roomsRoutes, { maxPayloadBytes: config.maxPayloadBytes });
      await v1.register(notificationsRoutes);
      await v1.register(queuesRoutes);
      await v1.register(webhooksRoutes);
    },
    { prefix: '/v1' },
  );
  return app;
}
