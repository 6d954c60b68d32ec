import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { Type } from '@sinclair/typebox';
import { jwksUrlProblem } from '@switchboard/auth';
import { DEFAULT_IDEMPOTENCY_WINDOW_SEC, DEFAULT_KEY_PREFIX } from '@switchboard/protocol';
import { Bool, ConfigError, list, parseEnv, Port, PositiveInt, shownValue, type Env } from './env.js';
import { redisConfig, RedisEnv, type RedisConfig, type RedisEnvValues } from './redis.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

const Common = {
  ...RedisEnv,
  // No braces: the key schema places hash tags itself (packages/store/src/keys.ts).
  KEY_PREFIX: Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$', default: DEFAULT_KEY_PREFIX }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  POD_ID: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$' })),
  SHUTDOWN_TIMEOUT_MS: PositiveInt(10_000, 100),
};

const Jwt = {
  JWT_SECRET: Type.Optional(Type.String()),
  JWT_PUBLIC_KEY: Type.Optional(Type.String()),
  JWT_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  JWT_ALGORITHMS: Type.Optional(Type.String()),
  JWT_ISSUER: Type.Optional(Type.String()),
  JWT_AUDIENCE: Type.Optional(Type.String()),
  JWT_CLOCK_TOLERANCE_SEC: PositiveInt(5, 0),
};

/** Lifecycle events (SPEC §7a): on with `EVENTS_QUEUE=true` or `WEBHOOK_URLS`, for the gateways (which write them) and the dispatcher (which delivers them). */
const Events = {
  EVENTS_QUEUE: Bool(false),
  WEBHOOK_URLS: Type.Optional(Type.String()),
  EVENTS_OUTBOX_MAX: PositiveInt(200_000, 100),
};

/** Written by the registry scripts with each change; absent when events are off. */
export interface EventsConfig {
  /** The outbox's bound, in entries (one per registry change), about: beyond it (no relay keeping up) the oldest are lost, and counted. @default 200000 */
  outboxMax: number;
}

function events(e: { EVENTS_QUEUE: boolean; WEBHOOK_URLS?: string; EVENTS_OUTBOX_MAX: number }): EventsConfig | undefined {
  return e.EVENTS_QUEUE || list(e.WEBHOOK_URLS).length > 0 ? { outboxMax: e.EVENTS_OUTBOX_MAX } : undefined;
}

export interface CommonConfig {
  /** Where Redis is and how to talk to it. */
  redis: RedisConfig;
  keyPrefix: string;
  logLevel: LogLevel;
  podId: string;
  /** Longest a graceful shutdown may take before the process exits anyway. @default 10000 */
  shutdownTimeoutMs: number;
}

export interface JwtConfig {
  secret?: string;
  /** PEM; `\n` escapes are turned into newlines so the key fits in one variable. */
  publicKey?: string;
  jwksUrl?: string;
  algorithms?: string[];
  issuer?: string;
  audience?: string;
  clockToleranceSec: number;
}

function common(
  e: RedisEnvValues & {
    KEY_PREFIX: string;
    LOG_LEVEL: string;
    POD_ID?: string;
    SHUTDOWN_TIMEOUT_MS: number;
  },
): CommonConfig {
  return {
    redis: redisConfig(e),
    keyPrefix: e.KEY_PREFIX,
    logLevel: e.LOG_LEVEL as LogLevel,
    podId: e.POD_ID ?? `${hostname()}-${process.pid}`,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
  };
}

function jwt(
  e: {
    JWT_SECRET?: string;
    JWT_PUBLIC_KEY?: string;
    JWT_JWKS_URL?: string;
    JWT_ALGORITHMS?: string;
    JWT_ISSUER?: string;
    JWT_AUDIENCE?: string;
    JWT_CLOCK_TOLERANCE_SEC: number;
  },
  required: boolean,
): JwtConfig | undefined {
  const given = [e.JWT_SECRET && 'JWT_SECRET', e.JWT_PUBLIC_KEY && 'JWT_PUBLIC_KEY', e.JWT_JWKS_URL && 'JWT_JWKS_URL'].filter(
    Boolean,
  );
  if (given.length > 1) throw new ConfigError(given.join('/'), 'are exclusive: set exactly one');
  if (given.length === 0) {
    if (required) throw new ConfigError('JWT_SECRET', 'is required (or JWT_PUBLIC_KEY, or JWT_JWKS_URL)');
    return undefined;
  }
  const jwksProblem = e.JWT_JWKS_URL ? jwksUrlProblem(e.JWT_JWKS_URL) : undefined;
  if (jwksProblem) throw new ConfigError('JWT_JWKS_URL', jwksProblem);
  const algorithms = list(e.JWT_ALGORITHMS);
  return {
    ...(e.JWT_SECRET ? { secret: e.JWT_SECRET } : {}),
    ...(e.JWT_PUBLIC_KEY ? { publicKey: e.JWT_PUBLIC_KEY.replace(/\\n/g, '\n') } : {}),
    ...(e.JWT_JWKS_URL ? { jwksUrl: e.JWT_JWKS_URL } : {}),
    ...(algorithms.length ? { algorithms } : {}),
    ...(e.JWT_ISSUER ? { issuer: e.JWT_ISSUER } : {}),
    ...(e.JWT_AUDIENCE ? { audience: e.JWT_AUDIENCE } : {}),
    clockToleranceSec: e.JWT_CLOCK_TOLERANCE_SEC,
  };
}

const GatewayEnv = Type.Object({
  ...Common,
  ...Jwt,
  ...Events,
  PORT: Port(3000),
  OPS_PORT: Port(9100),
  HOST: Type.String({ default: '0.0.0.0' }),
  CORS_ORIGINS: Type.Optional(Type.String()),
  HEARTBEAT_INTERVAL_MS: PositiveInt(5000, 50),
  ALLOW_GUESTS: Bool(false),
  ALLOW_QUERY_TOKEN: Bool(false),
  TOKEN_COOKIE: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$', default: 'sb_token' }),
  TOKEN_EXPIRY_WARNING_SEC: PositiveInt(60),
  MAX_PAYLOAD_BYTES: PositiveInt(64 * 1024, 16),
  MAX_ROOMS_PER_SOCKET: PositiveInt(100),
  MAX_CONNECTIONS_PER_USER: PositiveInt(20),
  MAX_WATCHED_USERS: PositiveInt(200),
  RATE_LIMIT_PER_SEC: PositiveInt(20),
  RATE_LIMIT_BURST: PositiveInt(40),
  HANDSHAKE_RATE_PER_SEC: PositiveInt(50),
  TRUST_PROXY: Bool(false),
  HISTORY_MAX_LENGTH: PositiveInt(200, 0),
  HISTORY_MAX_BYTES: PositiveInt(1024 * 1024, 1024),
  HISTORY_TTL_SEC: PositiveInt(86_400),
  PUBLISH_BUDGET_MESSAGES: PositiveInt(100),
  PUBLISH_BUDGET_BYTES: PositiveInt(1024 * 1024, 16),
  PUBLISH_BUDGET_WINDOW_SEC: PositiveInt(10),
});

export interface GatewayLimits {
  /** Largest event payload, as JSON bytes. @default 65536 */
  maxPayloadBytes: number;
  /** @default 100 */
  maxRoomsPerSocket: number;
  /** Connections of one user across the cluster. @default 20 */
  maxConnectionsPerUser: number;
  /** Users one socket may watch. @default 200 */
  maxWatchedUsers: number;
  /** Token bucket: events per second per socket. @default 20 */
  ratePerSec: number;
  /** Token bucket size. @default 40 */
  rateBurst: number;
  /** New handshakes per second per client address on one pod. @default 50 */
  handshakeRatePerSec: number;
  /**
   * What one user may publish to rooms per window, across the cluster, whatever the number of
   * connections. @default 100 messages and 1 MiB per 10 s
   */
  publishBudget: { messages: number; bytes: number; windowMs: number };
}

/** Room history bounds, shared by the gateway and the admin API (both publish). */
export interface HistoryConfig {
  /** Messages kept per room (0 turns history off). @default 200 */
  maxLength: number;
  /** Bytes of messages kept per room; the oldest go first. @default 1048576 */
  maxBytes: number;
  /** @default 86400 */
  ttlSec: number;
}

export interface GatewayConfig extends CommonConfig {
  port: number;
  opsPort: number;
  host: string;
  jwt: JwtConfig;
  /** Allowed browser origins; `'*'` only when set so; empty: non-browser clients only. */
  corsOrigins: string[] | '*';
  heartbeatIntervalMs: number;
  allowGuests: boolean;
  allowQueryToken: boolean;
  tokenCookie: string;
  tokenExpiryWarningSec: number;
  /** Take the client address from `X-Forwarded-For` (behind a trusted load balancer). */
  trustProxy: boolean;
  limits: GatewayLimits;
  history: HistoryConfig;
  /** Lifecycle events on: the registry writes them. */
  events?: EventsConfig;
}

function origins(value: string | undefined): string[] | '*' {
  const items = list(value);
  if (items.includes('*')) return '*';
  for (const o of items) {
    if (!/^https?:\/\/[^/\s]+$/.test(o)) throw new ConfigError('CORS_ORIGINS', `has an invalid origin${shownValue('CORS_ORIGINS', o)}`);
  }
  return items;
}

export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  const e = parseEnv(GatewayEnv, env);
  if (e.PUBLISH_BUDGET_BYTES < e.MAX_PAYLOAD_BYTES) {
    throw new ConfigError('PUBLISH_BUDGET_BYTES', `must be at least MAX_PAYLOAD_BYTES (${e.MAX_PAYLOAD_BYTES}), or no message of the largest size could be published`);
  }
  return {
    ...common(e),
    port: e.PORT,
    opsPort: e.OPS_PORT,
    host: e.HOST,
    jwt: jwt(e, true)!,
    corsOrigins: origins(e.CORS_ORIGINS),
    heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
    allowGuests: e.ALLOW_GUESTS,
    allowQueryToken: e.ALLOW_QUERY_TOKEN,
    tokenCookie: e.TOKEN_COOKIE,
    tokenExpiryWarningSec: e.TOKEN_EXPIRY_WARNING_SEC,
    trustProxy: e.TRUST_PROXY,
    limits: {
      maxPayloadBytes: e.MAX_PAYLOAD_BYTES,
      maxRoomsPerSocket: e.MAX_ROOMS_PER_SOCKET,
      maxConnectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
      maxWatchedUsers: e.MAX_WATCHED_USERS,
      ratePerSec: e.RATE_LIMIT_PER_SEC,
      rateBurst: e.RATE_LIMIT_BURST,
      handshakeRatePerSec: e.HANDSHAKE_RATE_PER_SEC,
      publishBudget: {
        messages: e.PUBLISH_BUDGET_MESSAGES,
        bytes: e.PUBLISH_BUDGET_BYTES,
        windowMs: e.PUBLISH_BUDGET_WINDOW_SEC * 1000,
      },
    },
    history: history(e),
    ...optional('events', events(e)),
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function history(e: { HISTORY_MAX_LENGTH: number; HISTORY_MAX_BYTES: number; HISTORY_TTL_SEC: number }): HistoryConfig {
  return { maxLength: e.HISTORY_MAX_LENGTH, maxBytes: e.HISTORY_MAX_BYTES, ttlSec: e.HISTORY_TTL_SEC };
}

const DispatcherEnv = Type.Object({
  ...Common,
  OPS_PORT: Port(9101),
  HOST: Type.String({ default: '0.0.0.0' }),
  DISPATCHER_CONCURRENCY: PositiveInt(16),
  INBOX_MAX_ITEMS: PositiveInt(200),
  INBOX_TTL_SEC: PositiveInt(30 * 86_400),
  STALLED_INTERVAL_MS: PositiveInt(30_000, 100),
  REDIS_DOWN_EXIT_MS: PositiveInt(30_000, 100),
  IDEMPOTENCY_WINDOW_SEC: PositiveInt(DEFAULT_IDEMPOTENCY_WINDOW_SEC),
  ...Events,
  EVENTS_QUEUE_MAX: PositiveInt(100_000, 10),
  WEBHOOK_SECRET: Type.Optional(Type.String()),
  WEBHOOK_ROOM_PREFIXES: Type.Optional(Type.String()),
  WEBHOOK_BATCH_MS: PositiveInt(50, 0),
  WEBHOOK_BATCH_MAX: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  WEBHOOK_MAX_PENDING: PositiveInt(100_000, 1),
  WEBHOOK_TIMEOUT_MS: PositiveInt(5000, 100),
  WEBHOOK_CONCURRENCY: PositiveInt(8),
});

/** One webhook endpoint. */
export interface WebhookEndpoint {
  /** Stable id: a hash of the URL (its keys in Redis, its batch jobs). */
  id: string;
  url: string;
  /** The URL without credentials or query, for logs, metrics (`endpoint` label) and the admin API. */
  label: string;
}

export interface WebhooksConfig {
  endpoints: WebhookEndpoint[];
  secret: string;
  /** Room events pass only for rooms with one of these prefixes (none: all); user events always pass. */
  roomPrefixes: string[];
  /** Longest an event waits to be batched. @default 50 */
  batchMs: number;
  /** Most events in one request. @default 100 */
  batchMax: number;
  /** Events kept per endpoint that does not answer; beyond, the oldest are failed (kept, retryable). @default 100000 */
  maxPending: number;
  /** A request without an answer this long failed. @default 5000 */
  timeoutMs: number;
  /** Batch jobs processed at once by one dispatcher (one per endpoint at a time). @default 8 */
  concurrency: number;
}

export interface DispatcherEventsConfig extends EventsConfig {
  /** `EVENTS_QUEUE=true`: every event is a job on the queue `events`, at most `maxJobs` kept per state. */
  queue?: { maxJobs: number };
  webhooks?: WebhooksConfig;
}

export interface DispatcherConfig extends CommonConfig {
  opsPort: number;
  host: string;
  concurrency: number;
  inbox: { maxItems: number; ttlSec: number };
  stalledIntervalMs: number;
  /** Exit non-zero when Redis stays unreachable this long. @default 30000 */
  redisDownExitMs: number;
  /** A notification id is delivered at most once this long (SPEC §6). @default 86400 */
  idempotencyWindowSec: number;
  /** Lifecycle events on: this dispatcher relays them to the queue and the webhooks. */
  events?: DispatcherEventsConfig;
}

/** The endpoints of `WEBHOOK_URLS`: http(s) URLs, each once. */
export function webhookEndpoints(value: string | undefined): WebhookEndpoint[] {
  const out: WebhookEndpoint[] = [];
  for (const raw of list(value)) {
    const url = URL.canParse(raw) ? new URL(raw) : undefined;
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new ConfigError('WEBHOOK_URLS', `has an entry that is not an http(s) URL${shownValue('WEBHOOK_URLS', raw)}`);
    }
    const id = createHash('sha256').update(raw).digest('hex').slice(0, 16);
    if (out.some((e) => e.id === id)) throw new ConfigError('WEBHOOK_URLS', `names an endpoint twice${shownValue('WEBHOOK_URLS', raw)}`);
    out.push({ id, url: raw, label: `${url.protocol}//${url.host}${url.pathname}` });
  }
  return out;
}

export function loadDispatcherConfig(env: Env = process.env): DispatcherConfig {
  const e = parseEnv(DispatcherEnv, env);
  const on = events(e);
  const endpoints = webhookEndpoints(e.WEBHOOK_URLS);
  if (endpoints.length && !e.WEBHOOK_SECRET) throw new ConfigError('WEBHOOK_SECRET', 'is required with WEBHOOK_URLS (it signs every request)');
  if (e.WEBHOOK_SECRET !== undefined && Buffer.byteLength(e.WEBHOOK_SECRET) < 32) throw new ConfigError('WEBHOOK_SECRET', 'must be at least 32 bytes');
  const roomPrefixes = list(e.WEBHOOK_ROOM_PREFIXES);
  for (const p of roomPrefixes) {
    if (!/^[A-Za-z0-9._:@/-]{1,200}$/.test(p)) throw new ConfigError('WEBHOOK_ROOM_PREFIXES', `has an entry that no room name can start with${shownValue('WEBHOOK_ROOM_PREFIXES', p)}`);
  }
  return {
    ...common(e),
    opsPort: e.OPS_PORT,
    host: e.HOST,
    concurrency: e.DISPATCHER_CONCURRENCY,
    inbox: { maxItems: e.INBOX_MAX_ITEMS, ttlSec: e.INBOX_TTL_SEC },
    stalledIntervalMs: e.STALLED_INTERVAL_MS,
    redisDownExitMs: e.REDIS_DOWN_EXIT_MS,
    idempotencyWindowSec: e.IDEMPOTENCY_WINDOW_SEC,
    ...optional(
      'events',
      on && {
        ...on,
        ...optional('queue', e.EVENTS_QUEUE ? { maxJobs: e.EVENTS_QUEUE_MAX } : undefined),
        ...optional(
          'webhooks',
          endpoints.length
            ? {
                endpoints,
                secret: e.WEBHOOK_SECRET!,
                roomPrefixes,
                batchMs: e.WEBHOOK_BATCH_MS,
                batchMax: e.WEBHOOK_BATCH_MAX,
                maxPending: e.WEBHOOK_MAX_PENDING,
                timeoutMs: e.WEBHOOK_TIMEOUT_MS,
                concurrency: e.WEBHOOK_CONCURRENCY,
              }
            : undefined,
        ),
      },
    ),
  };
}

const AdminEnv = Type.Object({
  ...Common,
  ...Jwt,
  PORT: Port(8080),
  HOST: Type.String({ default: '0.0.0.0' }),
  ADMIN_API_KEYS: Type.Optional(Type.String()),
  ADMIN_RATE_LIMIT_PER_MIN: PositiveInt(600),
  ADMIN_MAX_PAYLOAD_BYTES: PositiveInt(64 * 1024, 16),
  ADMIN_CONSOLE_SESSION_TTL_SEC: Type.Integer({ minimum: 60, maximum: 7 * 86_400, default: 8 * 3600 }),
  HEARTBEAT_INTERVAL_MS: PositiveInt(5000, 50),
  HISTORY_MAX_LENGTH: PositiveInt(200, 0),
  HISTORY_MAX_BYTES: PositiveInt(1024 * 1024, 1024),
  HISTORY_TTL_SEC: PositiveInt(86_400),
});

export interface AdminConfig extends CommonConfig {
  port: number;
  host: string;
  /** Absent: only admin access tokens are accepted. */
  jwt?: JwtConfig;
  adminApiKeys: string[];
  rateLimitPerMin: number;
  /** Largest `data` of a message published through the admin API, as JSON bytes. @default 65536 */
  maxPayloadBytes: number;
  /** The gateways' heartbeat interval, for the pod states the console shows. @default 5000 */
  heartbeatIntervalMs: number;
  console: {
    /** Lifetime of a console sign-in (shorter for an access token that expires first). @default 28800 */
    sessionTtlSec: number;
  };
  history: HistoryConfig;
}

export function loadAdminConfig(env: Env = process.env): AdminConfig {
  const e = parseEnv(AdminEnv, env);
  const adminApiKeys = list(e.ADMIN_API_KEYS);
  for (const k of adminApiKeys) {
    if (k.length < 16) throw new ConfigError('ADMIN_API_KEYS', 'has a key shorter than 16 characters');
  }
  const j = jwt(e, false);
  if (!j && adminApiKeys.length === 0) {
    throw new ConfigError('ADMIN_API_KEYS', 'is required when no JWT_SECRET / JWT_PUBLIC_KEY / JWT_JWKS_URL is set');
  }
  return {
    ...common(e),
    port: e.PORT,
    host: e.HOST,
    ...(j ? { jwt: j } : {}),
    adminApiKeys,
    rateLimitPerMin: e.ADMIN_RATE_LIMIT_PER_MIN,
    maxPayloadBytes: e.ADMIN_MAX_PAYLOAD_BYTES,
    heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
    console: { sessionTtlSec: e.ADMIN_CONSOLE_SESSION_TTL_SEC },
    history: history(e),
  };
}
