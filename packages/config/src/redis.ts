import { Type } from '@sinclair/typebox';
import { Bool, ConfigError, list, parseEnv, shownValue, type Env } from './env.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Where Redis is (SPEC §9): one of a URL, a Sentinel group, or Redis Cluster seed nodes. */
export type RedisTopology =
  | { kind: 'standalone'; url: string }
  | { kind: 'sentinel'; sentinels: HostPort[]; name: string }
  | { kind: 'cluster'; nodes: HostPort[] };

/**
 * `classic`: PUBLISH / SUBSCRIBE, every pod receives every broadcast (works on every topology).
 * `sharded`: SPUBLISH / SSUBSCRIBE per room, each pod subscribes only to the rooms it holds
 * members of (SPEC §8): what lets Redis Cluster carry more pods.
 */
export type PubSubMode = 'classic' | 'sharded';

export interface RedisConfig {
  topology: RedisTopology;
  /** Sentinel and Cluster: the data nodes' (and sentinels') credentials; a URL carries its own. */
  username?: string;
  password?: string;
  /** Sentinel: the sentinels' own password, when they have one. */
  sentinelPassword?: string;
  /** Sentinel and Cluster: connect with TLS (a URL says so with `rediss://`). */
  tls: boolean;
  /** @default `sharded` on Cluster, else `classic` */
  pubsubMode: PubSubMode;
  /**
   * Replicas that must have a write before it counts as done (Redis `WAIT`): an enqueued
   * notification, a delivered one. With Sentinel or Cluster, 1 keeps a failover from losing what
   * was acknowledged. @default 0
   */
  waitReplicas?: number;
  /** How long to wait for those replicas before the write is treated as failed. @default 1000 */
  waitTimeoutMs?: number;
}

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** The topology variables of every service (SPEC §9), for `parseEnv`. */
export const RedisEnv = {
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_SENTINELS: Type.Optional(Type.String()),
  REDIS_SENTINEL_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String()),
  REDIS_USERNAME: Type.Optional(Type.String()),
  REDIS_PASSWORD: Type.Optional(Type.String()),
  REDIS_SENTINEL_PASSWORD: Type.Optional(Type.String()),
  REDIS_TLS: Bool(false),
  PUBSUB_MODE: Type.Optional(Type.Union([Type.Literal('classic'), Type.Literal('sharded')])),
  REDIS_WAIT_REPLICAS: Type.Integer({ minimum: 0, maximum: 16, default: 0 }),
  REDIS_WAIT_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 1000 }),
};

export interface RedisEnvValues {
  REDIS_URL?: string;
  REDIS_SENTINELS?: string;
  REDIS_SENTINEL_NAME?: string;
  REDIS_CLUSTER_NODES?: string;
  REDIS_USERNAME?: string;
  REDIS_PASSWORD?: string;
  REDIS_SENTINEL_PASSWORD?: string;
  REDIS_TLS: boolean;
  PUBSUB_MODE?: PubSubMode;
  REDIS_WAIT_REPLICAS: number;
  REDIS_WAIT_TIMEOUT_MS: number;
}

/**
 * The schema only checks the scheme. A URL the Redis client cannot parse would fail later with
 * an error that carries the whole URL, password included; refuse it here, redacted.
 */
function checkRedisUrl(value: string): void {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (!url) throw new ConfigError('REDIS_URL', `is not a valid URL${shownValue('REDIS_URL', value)}`);
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    throw new ConfigError('REDIS_URL', 'has a malformed %-escape in its user name or password');
  }
}

/** `host:port` items, IPv6 hosts in brackets (`[::1]:26379`). */
export function parseHostPorts(variable: string, value: string): HostPort[] {
  const items = list(value);
  if (items.length === 0) throw new ConfigError(variable, 'needs at least one host:port');
  return items.map((item) => {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(item);
    const port = Number(m?.[3]);
    if (!m || port < 1 || port > 65535) throw new ConfigError(variable, `has an entry that is not host:port${shownValue(variable, item)}`);
    return { host: m[1] ?? m[2]!, port };
  });
}

/**
 * The Redis topology from the environment, checked: exactly one of `REDIS_URL`,
 * `REDIS_SENTINELS` (with `REDIS_SENTINEL_NAME`) or `REDIS_CLUSTER_NODES`; `REDIS_URL`'s default
 * when none is set.
 */
export function redisConfig(e: RedisEnvValues): RedisConfig {
  const given = [e.REDIS_URL && 'REDIS_URL', e.REDIS_SENTINELS && 'REDIS_SENTINELS', e.REDIS_CLUSTER_NODES && 'REDIS_CLUSTER_NODES'].filter(
    (v): v is string => Boolean(v),
  );
  if (given.length > 1) throw new ConfigError(given.join('/'), 'are exclusive: set one of them');
  if (e.REDIS_SENTINEL_NAME && !e.REDIS_SENTINELS) throw new ConfigError('REDIS_SENTINELS', 'is required with REDIS_SENTINEL_NAME');
  let topology: RedisTopology;
  if (e.REDIS_SENTINELS) {
    if (!e.REDIS_SENTINEL_NAME) throw new ConfigError('REDIS_SENTINEL_NAME', 'is required with REDIS_SENTINELS (the primary\'s name)');
    topology = { kind: 'sentinel', sentinels: parseHostPorts('REDIS_SENTINELS', e.REDIS_SENTINELS), name: e.REDIS_SENTINEL_NAME };
  } else if (e.REDIS_CLUSTER_NODES) {
    topology = { kind: 'cluster', nodes: parseHostPorts('REDIS_CLUSTER_NODES', e.REDIS_CLUSTER_NODES) };
  } else {
    const url = e.REDIS_URL ?? DEFAULT_REDIS_URL;
    checkRedisUrl(url);
    topology = { kind: 'standalone', url };
  }
  if (e.REDIS_SENTINEL_PASSWORD && topology.kind !== 'sentinel') {
    throw new ConfigError('REDIS_SENTINEL_PASSWORD', 'is for Sentinel (with REDIS_SENTINELS)');
  }
  if (topology.kind === 'standalone') {
    for (const v of ['REDIS_USERNAME', 'REDIS_PASSWORD'] as const) {
      if (e[v]) throw new ConfigError(v, 'is for Sentinel and Cluster: with REDIS_URL, put credentials in the URL');
    }
    if (e.REDIS_TLS) throw new ConfigError('REDIS_TLS', 'is for Sentinel and Cluster: with REDIS_URL, use rediss://');
  }
  return {
    topology,
    ...(e.REDIS_USERNAME ? { username: e.REDIS_USERNAME } : {}),
    ...(e.REDIS_PASSWORD ? { password: e.REDIS_PASSWORD } : {}),
    ...(e.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: e.REDIS_SENTINEL_PASSWORD } : {}),
    tls: e.REDIS_TLS,
    pubsubMode: e.PUBSUB_MODE ?? (topology.kind === 'cluster' ? 'sharded' : 'classic'),
    ...(e.REDIS_WAIT_REPLICAS > 0 ? { waitReplicas: e.REDIS_WAIT_REPLICAS, waitTimeoutMs: e.REDIS_WAIT_TIMEOUT_MS } : {}),
  };
}

/** A description of the topology for logs: hosts, never credentials. */
export function describeRedis(redis: RedisConfig): Record<string, unknown> {
  const t = redis.topology;
  const hosts = (list: HostPort[]) => list.map((h) => (h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`));
  switch (t.kind) {
    case 'standalone': {
      const u = new URL(t.url);
      return { topology: 'standalone', host: `${u.hostname}:${u.port || 6379}`, tls: u.protocol === 'rediss:', pubsub: redis.pubsubMode };
    }
    case 'sentinel':
      return { topology: 'sentinel', name: t.name, sentinels: hosts(t.sentinels), tls: redis.tls, pubsub: redis.pubsubMode };
    case 'cluster':
      return { topology: 'cluster', nodes: hosts(t.nodes), tls: redis.tls, pubsub: redis.pubsubMode };
  }
}

/**
 * The Redis settings alone from an environment (`process.env` by default), checked as the
 * services check them: for tools, tests and backends that talk to Switchboard's Redis.
 */
export function loadRedisConfig(env: Env = process.env): RedisConfig {
  return redisConfig(parseEnv(Type.Object(RedisEnv), env) as RedisEnvValues);
}
