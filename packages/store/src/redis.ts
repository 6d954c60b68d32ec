import { Redis, type Cluster, type RedisOptions } from 'ioredis';

export type { Cluster, Redis } from 'ioredis';

/** A command client on any topology: standalone or Sentinel (`Redis`), or Redis Cluster. */
export type RedisClient = Redis | Cluster;

export interface RedisLogger {
  warn(obj: object, msg: string): void;
}

/**
 * An ioredis client with an `error` listener (an unhandled one crashes the process).
 * `role` names it in logs. Workers need `maxRetriesPerRequest: null`; producers
 * `enableOfflineQueue: false`.
 */
export function createRedis(url: string, role: string, logger: RedisLogger, options: RedisOptions = {}): Redis {
  const client = new Redis(url, { connectionName: `switchboard:${role}`, ...options });
  let lastLogged = 0;
  client.on('error', (err: Error) => {
    const now = Date.now();
    if (now - lastLogged > 5000) {
      lastLogged = now;
      logger.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, role }, 'redis error');
    }
  });
  return client;
}

/** Resolves when the client is ready, or rejects after `timeoutMs`. */
export async function waitReady(client: Redis, timeoutMs = 10_000): Promise<void> {
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

/** Closes a client: QUIT when connected, else disconnect. Never throws. */
export async function closeRedis(client: Redis): Promise<void> {
  try {
    if (client.status === 'ready') await client.quit();
    else client.disconnect();
  } catch {
    client.disconnect();
  }
}
