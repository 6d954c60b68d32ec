import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '@switchboard/config';

export type { Cluster, Redis } from 'ioredis';

/** A command client on any topology: standalone or Sentinel (`Redis`), or Redis Cluster. */
export type RedisClient = Redis | Cluster;

export interface RedisLogger {
  warn(obj: object, msg: string): void;
}

/** Per-role settings of a client, the same on every topology. */
export interface ClientOptions {
  /** How often a command is retried across reconnections (`null`: forever, as BullMQ workers need). @default 20 */
  maxRetriesPerRequest?: number | null;
  /** Queue commands while disconnected (`false`: fail at once, as producers should). @default true */
  enableOfflineQueue?: boolean;
  /** Fail a command that has no answer after this long. */
  commandTimeout?: number;
  /** Redis Cluster: one subscriber connection per shard, for SSUBSCRIBE (the sharded adapter's subscriber). */
  shardedSubscriber?: boolean;
  /** Connect only when first used. @default false */
  lazyConnect?: boolean;
  /** Give up a connection attempt after this long. @default 10000 */
  connectTimeout?: number;
}

/** Whether a client talks to Redis Cluster. */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

/**
 * The one factory of Redis clients: every command client, subscriber and BullMQ connection of
 * every service and of the producer SDK is built here from the topology (SPEC §9), named
 * `switchboard:<role>` in `CLIENT LIST`, with an `error` listener (an unhandled one crashes the
 * process) that logs at most one line per 5 s.
 *
 * - standalone: `REDIS_URL` (it carries its own credentials and TLS);
 * - Sentinel: the primary named `REDIS_SENTINEL_NAME`, found through `REDIS_SENTINELS` and
 *   followed across failovers;
 * - Cluster: `REDIS_CLUSTER_NODES` as seeds; reads and writes on primaries (a replica may lag),
 *   the slot map refreshed on MOVED and after a failover.
 */
export function createRedisClient(config: RedisConfig, role: string, logger: RedisLogger, options: ClientOptions = {}): RedisClient {
  const connectionName = `switchboard:${role}`;
  const common: RedisOptions = {
    connectionName,
    ...(options.maxRetriesPerRequest !== undefined ? { maxRetriesPerRequest: options.maxRetriesPerRequest } : {}),
    ...(options.enableOfflineQueue !== undefined ? { enableOfflineQueue: options.enableOfflineQueue } : {}),
    ...(options.commandTimeout !== undefined ? { commandTimeout: options.commandTimeout } : {}),
    ...(options.lazyConnect ? { lazyConnect: true } : {}),
    ...(options.connectTimeout !== undefined ? { connectTimeout: options.connectTimeout } : {}),
  };
  const auth: RedisOptions = {
    ...(config.username ? { username: config.username } : {}),
    ...(config.password ? { password: config.password } : {}),
    ...(config.tls ? { tls: {} } : {}),
  };
  const t = config.topology;
  let client: RedisClient;
  switch (t.kind) {
    case 'standalone':
      client = new Redis(t.url, common);
      break;
    case 'sentinel':
      client = new Redis({
        ...common,
        ...auth,
        sentinels: t.sentinels,
        name: t.name,
        ...(config.sentinelPassword ? { sentinelPassword: config.sentinelPassword } : {}),
        ...(config.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      });
      break;
    case 'cluster': {
      const clusterOptions: ClusterOptions = {
        redisOptions: { ...common, ...auth },
        scaleReads: 'master',
        // during a failover nodes answer MOVED to the dead primary until a replica takes over:
        // spacing the redirections lets the slot map catch up instead of failing the command fast
        retryDelayOnMoved: 100,
        ...(options.enableOfflineQueue !== undefined ? { enableOfflineQueue: options.enableOfflineQueue } : {}),
        ...(options.lazyConnect ? { lazyConnect: true } : {}),
        ...(options.shardedSubscriber ? { shardedSubscribers: true } : {}),
      };
      client = new Cluster(t.nodes, clusterOptions);
      break;
    }
  }
  client.on('error', throttledWarning(logger, role));
  return client;
}

/**
 * `warn`, called at most once per `ms`: Redis outages are noisy (every client and queue reports
 * every reconnection attempt). The one throttle of every service's Redis warnings.
 */
export function throttled<A extends unknown[]>(warn: (...args: A) => void, ms: number): (...args: A) => void {
  let last = -Infinity;
  return (...args) => {
    const now = Date.now();
    if (now - last < ms) return;
    last = now;
    warn(...args);
  };
}

/** An `error` listener that logs what failed (never a command's arguments), throttled. */
function throttledWarning(logger: RedisLogger, role: string): (err: Error) => void {
  return throttled((err: Error) => {
    logger.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, role }, 'redis error');
  }, 5000);
}

/**
 * The BullMQ `prefix` of Switchboard's queues: `KEY_PREFIX`, in braces on Redis Cluster so that
 * all of a queue's keys share one hash slot, as BullMQ needs (SPEC §6).
 */
export function queuePrefix(keyPrefix: string, cluster: boolean): string {
  return cluster ? `{${keyPrefix}}` : keyPrefix;
}

const UNAVAILABLE_NAMES = new Set(['MaxRetriesPerRequestError', 'ConnectionClosedError', 'AbortError', 'ClusterAllFailedError', 'ReplicationTimeoutError']);
const UNAVAILABLE_MESSAGE =
  /connection is closed|stream isn't writeable|command timed out|enableOfflineQueue|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|Failed to refresh slots cache|Too many Cluster redirections|None of the sentinels|All sentinels are unreachable|^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|OOM|NOREPLICAS|BUSY)\b/i;

/**
 * Whether an error means "Redis cannot be reached or cannot serve right now" (retry later), as
 * opposed to a bug or a refused command. The one test every service uses.
 */
export function isRedisUnavailable(err: unknown): boolean {
  return err instanceof Error && (UNAVAILABLE_NAMES.has(err.name) || UNAVAILABLE_MESSAGE.test(err.message));
}

/** Fewer replicas than asked for had a write in time: it may be lost in a failover (retry it). */
export class ReplicationTimeoutError extends Error {
  override readonly name = 'ReplicationTimeoutError';
  constructor(
    readonly wanted: number,
    readonly got: number,
  ) {
    super(`a write reached ${got} of ${wanted} replicas in time`);
  }
}

/**
 * Waits until `replicas` replicas have every write this client sent so far (Redis `WAIT`, on
 * each primary of a Cluster: the connections that carried the writes). Rejects with
 * `ReplicationTimeoutError` when they did not in `timeoutMs`. A no-op for 0 replicas.
 */
export async function waitForReplicas(client: RedisClient, replicas: number | undefined, timeoutMs = 1000): Promise<void> {
  if (!replicas) return;
  const nodes = isCluster(client) ? client.nodes('master') : [client];
  const acks = await Promise.all(nodes.map((node) => node.wait(replicas, timeoutMs)));
  const least = Math.min(...acks);
  if (least < replicas) throw new ReplicationTimeoutError(replicas, least);
}

/**
 * Makes the promises of `methods` of `client` handled: a library that calls them without
 * awaiting (the Socket.IO Redis adapters publish and subscribe fire-and-forget) would otherwise
 * leave an unhandled rejection when Redis is away, which takes the process down. Callers that
 * await still get the rejection; `onError` hears of every failure.
 */
export function handleRejections(client: RedisClient, methods: readonly string[], onError: (err: unknown, method: string) => void): void {
  const target = client as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const method of methods) {
    const original = target[method];
    if (typeof original !== 'function') continue;
    target[method] = (...args: unknown[]) => {
      const result = original.apply(client, args);
      if (result instanceof Promise) result.catch((err: unknown) => onError(err, method));
      return result;
    };
  }
}

/** Resolves when the client is ready, or rejects after `timeoutMs`. */
export async function waitReady(client: RedisClient, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`redis not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      client.off('ready', onReady);
    };
    client.on('ready', onReady);
  });
}

/** Whether Redis answers a PING within `timeoutMs`: the readiness probe of every service. */
export async function pingWithin(client: RedisClient, timeoutMs = 1000): Promise<boolean> {
  if (client.status !== 'ready') return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const pong = await Promise.race([
      client.ping(),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      }),
    ]);
    return pong === 'PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Closes a client: QUIT when connected, else disconnect. Never throws. */
export async function closeRedis(client: RedisClient): Promise<void> {
  try {
    if (client.status === 'ready') await client.quit();
    else client.disconnect();
  } catch {
    client.disconnect();
  }
}
