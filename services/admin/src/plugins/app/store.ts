import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { AdminConfig } from '@switchboard/config';
import { ReadModel, RoomHistory } from '@switchboard/store';

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis;
    /** Registry reads: counts, online users, rooms, members, presence. */
    readModel: ReadModel;
    /** Room history, for server-side publish. */
    roomHistory: RoomHistory;
    /** Redis answers a ping within `timeoutMs`. */
    redisReady(timeoutMs?: number): Promise<boolean>;
  }
}

export interface StoreOptions {
  redis: Redis;
  keyPrefix: string;
  history: AdminConfig['history'];
}

/**
 * The registry and room history on the shared Redis client. The client belongs to the caller
 * (`main.ts` closes it after the app), so it is not closed here.
 */
export default fp<StoreOptions>(
  async (app, { redis, keyPrefix, history }) => {
    app.decorate('redis', redis);
    app.decorate('readModel', new ReadModel(redis, keyPrefix));
    app.decorate('roomHistory', new RoomHistory(redis, keyPrefix, history));
    app.decorate('redisReady', async (timeoutMs = 1000) => {
      if (redis.status !== 'ready') return false;
      let timer: NodeJS.Timeout | undefined;
      try {
        const pong = await Promise.race([
          redis.ping(),
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
    });
  },
  { name: 'store' },
);
