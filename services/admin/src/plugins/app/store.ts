import fp from 'fastify-plugin';
import type { AdminConfig } from '@switchboard/config';
import { pingWithin, ReadModel, Registry, RoomHistory, WebhookBacklog, type RedisClient } from '@switchboard/store';

declare module 'fastify' {
  interface FastifyInstance {
    redis: RedisClient;
    /** Registry reads: counts, online users, rooms, members, presence. */
    readModel: ReadModel;
    /** Registry writes of the admin: marking a user's sockets as disconnected by an admin (the cause of their events). */
    registry: Registry;
    /** Webhook endpoints' delivery state (SPEC §7a). */
    webhookBacklog: WebhookBacklog;
    /** Room history, for server-side publish. */
    roomHistory: RoomHistory;
    /** Redis answers a ping within `timeoutMs`. */
    redisReady(timeoutMs?: number): Promise<boolean>;
  }
}

export interface StoreOptions {
  redis: RedisClient;
  keyPrefix: string;
  history: AdminConfig['history'];
}

/**
 * The registry and room history on the shared Redis client. The client belongs to the caller
 * (`main.ts` closes it after the app), so it is not closed here.
 */
export default fp<StoreOptions>(
  async (app, { redis, keyPrefix, history }) => {
    app.decorate<RedisClient>('redis', redis);
    app.decorate('readModel', new ReadModel(redis, keyPrefix));
    app.decorate('registry', new Registry(redis, keyPrefix));
    app.decorate('webhookBacklog', new WebhookBacklog(redis, keyPrefix));
    app.decorate('roomHistory', new RoomHistory(redis, keyPrefix, history));
    app.decorate('redisReady', (timeoutMs = 1000) => pingWithin(redis, timeoutMs));
  },
  { name: 'store' },
);
