import type { AddressInfo } from 'node:net';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { createVerifier } from '@switchboard/auth';
import { loadAdminConfig, loadDispatcherConfig, type AdminConfig } from '@switchboard/config';
import { createDispatcher, type Dispatcher } from '@switchboard/dispatcher';
import { createLogger, type Logger } from '@switchboard/observability';
import { createProducer, type Producer } from '@switchboard/producer';
import { ioKey } from '@switchboard/protocol';
import { Broadcaster, closeRedis, createRedisClient, waitReady, type RedisClient } from '@switchboard/store';
import { redisEnvOf, TEST_JWT_SECRET } from '@switchboard/testkit';

const quiet = { warn: () => {} };
import { buildAdmin, type AdminDeps } from '../src/index.js';

export const API_KEY = 'admin-test-key-0123456789abcdef';
export const SECOND_KEY = 'admin-second-key-fedcba9876543210';

export interface Answer<T> {
  status: number;
  headers: Headers;
  body: T;
}

export interface CallOptions {
  /** JSON body. */
  body?: unknown;
  /** A raw body, sent as is (with `headers` for its content type). */
  rawBody?: string;
  /** Bearer credential; `null` sends no `Authorization`. @default API_KEY */
  auth?: string | null;
  headers?: Record<string, string>;
}

export interface TestAdmin {
  app: FastifyInstance;
  /** `http://127.0.0.1:<port>` */
  url: string;
  config: AdminConfig;
  redis: RedisClient;
  producer: Producer;
  metrics: Registry;
  /** A real HTTP request to the admin. */
  call<T = unknown>(method: string, path: string, options?: CallOptions): Promise<Answer<T>>;
  close(): Promise<void>;
}

export interface StartAdminOptions {
  /** A `REDIS_URL`, or the Redis environment of the cluster under test. */
  redis: string | Record<string, string>;
  keyPrefix: string;
  /** Admin environment on top of the test defaults. */
  env?: Record<string, string>;
  /** Replaces the deps the helper would build (the helper then does not close them). */
  deps?: Partial<AdminDeps>;
  logger?: Logger;
}

/** The admin as `main.ts` wires it, on the given Redis and key prefix, listening on a free port. */
export async function startAdmin(options: StartAdminOptions): Promise<TestAdmin> {
  const config = loadAdminConfig({
    ...redisEnvOf(options.redis),
    KEY_PREFIX: options.keyPrefix,
    JWT_SECRET: TEST_JWT_SECRET,
    ADMIN_API_KEYS: `${API_KEY},${SECOND_KEY}`,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    ...options.env,
  });
  const logger = options.logger ?? createLogger({ service: 'admin', level: process.env.SB_TEST_LOG_LEVEL ?? 'silent' });
  const redis = options.deps?.redis ?? createRedisClient(config.redis, 'test-admin', quiet, { maxRetriesPerRequest: 1 });
  const producer =
    options.deps?.producer ?? createProducer({ connection: config.redis, keyPrefix: config.keyPrefix, onError: () => {} });
  const metrics = options.deps?.metrics ?? new Registry();
  const deps: AdminDeps = {
    redis,
    emitter: options.deps?.emitter ?? new Broadcaster(redis, ioKey(config.keyPrefix), config.redis.pubsubMode),
    producer,
    logger,
    metrics,
    ...(config.jwt ? { verifier: createVerifier(config.jwt) } : {}),
    ...options.deps,
  };
  // as main.ts does before it listens: the client is connected (a Cluster client needs its slot
  // map), unless Redis refuses it (the tests of an unreachable Redis)
  if (!options.deps?.redis) {
    await Promise.race([waitReady(redis, 10_000), new Promise((resolve) => redis.once('error', resolve))]).catch(() => undefined);
  }
  const app = await buildAdmin(deps, config);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  async function call<T>(method: string, path: string, o: CallOptions = {}): Promise<Answer<T>> {
    const auth = o.auth === undefined ? API_KEY : o.auth;
    const headers: Record<string, string> = { ...(auth === null ? {} : { authorization: `Bearer ${auth}` }) };
    let body: string | undefined;
    if (o.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(o.body);
    } else if (o.rawBody !== undefined) {
      body = o.rawBody;
    }
    const res = await fetch(`${url}${path}`, { method, headers: { ...headers, ...o.headers }, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    const json = (res.headers.get('content-type') ?? '').includes('application/json');
    return { status: res.status, headers: res.headers, body: (json && text ? JSON.parse(text) : text) as T };
  }

  let closed: Promise<void> | undefined;
  return {
    app,
    url,
    config,
    redis,
    producer,
    metrics,
    call,
    close: () =>
      (closed ??= (async () => {
        await app.close();
        if (!options.deps?.producer) await producer.close();
        if (!options.deps?.redis) await closeRedis(redis);
      })()),
  };
}

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

/** Throws unless `value` has the shape `schema` declares (the route's own response schema). */
export function assertShape(schema: TSchema, value: unknown): void {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  if (check.Check(value)) return;
  const errors = [...check.Errors(value)].slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`);
  throw new Error(`answer does not match its schema: ${errors.join('; ')}\n${JSON.stringify(value).slice(0, 2000)}`);
}

export interface ErrorAnswer {
  error: { code: string; message: string; details?: unknown };
}

export interface TestDispatcher {
  dispatcher: Dispatcher;
  close(): Promise<void>;
}

/** `createDispatcher` in this process, with its own Redis clients, the way its `main.ts` wires it. */
export async function startDispatcher(redisEnv: string | Record<string, string>, keyPrefix: string): Promise<TestDispatcher> {
  const config = loadDispatcherConfig({
    ...redisEnvOf(redisEnv),
    KEY_PREFIX: keyPrefix,
    OPS_PORT: '0',
    HOST: '127.0.0.1',
    STALLED_INTERVAL_MS: '1000',
  });
  const connection = createRedisClient(config.redis, 'test-dispatcher-worker', quiet, { maxRetriesPerRequest: null });
  const redis = createRedisClient(config.redis, 'test-dispatcher', quiet, { maxRetriesPerRequest: null });
  const dispatcher = createDispatcher(
    { connection, redis, logger: createLogger({ service: 'dispatcher', level: 'silent' }), registry: new Registry() },
    config,
  );
  await dispatcher.start();
  return {
    dispatcher,
    close: async () => {
      await dispatcher.close();
      await Promise.all([closeRedis(connection), closeRedis(redis)]);
    },
  };
}

/** Every `/v1` route with a path that reaches its handler once authenticated. */
export const V1_ROUTES: [method: string, path: string][] = [
  ['GET', '/v1/stats'],
  ['GET', '/v1/users'],
  ['GET', '/v1/users/someone'],
  ['POST', '/v1/users/someone/disconnect'],
  ['GET', '/v1/rooms'],
  ['GET', '/v1/rooms/public%3Alobby'],
  ['POST', '/v1/rooms/public%3Alobby/messages'],
  ['POST', '/v1/notifications'],
  ['GET', '/v1/queues/notifications'],
  ['POST', '/v1/queues/notifications/jobs/some-job/retry'],
];
