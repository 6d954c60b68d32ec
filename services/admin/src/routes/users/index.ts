import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { userRoom, type Member } from '@switchboard/protocol';
import { asStatus } from '@switchboard/store';
import { notFound } from '../../errors.js';
import { describePrincipal } from '../../plugins/app/auth.js';
import {
  AUTH_ERRORS,
  BEARER,
  DEFAULT_PAGE,
  DisconnectResponse,
  errorResponses,
  UserParams,
  UserResponse,
  UsersQuery,
  UsersResponse,
} from '../../schemas.js';

const usersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  /** Name and status of many users in one round trip. */
  async function summaries(ids: string[]): Promise<Member[]> {
    if (ids.length === 0) return [];
    const pipe = app.redis.pipeline();
    for (const id of ids) pipe.hmget(app.readModel.keys.user(id), 'name', 'status');
    const res = (await pipe.exec()) ?? [];
    return ids.map((userId, i) => {
      const [err, value] = res[i] ?? [new Error('no reply')];
      if (err) throw err;
      const [name, status] = value as (string | null)[];
      return { userId, ...(name ? { name } : {}), status: asStatus(status) };
    });
  }

  app.get(
    '/users',
    {
      schema: {
        tags: ['users'],
        summary: 'Online users, in id order',
        security: BEARER,
        querystring: UsersQuery,
        response: { 200: UsersResponse, ...errorResponses('INVALID_PAYLOAD', ...AUTH_ERRORS) },
      },
    },
    async (request) => {
      const { cursor, limit } = request.query;
      const page = await app.readModel.onlineUsers(cursor, limit ?? DEFAULT_PAGE);
      const users = await summaries(page.items);
      return { users, ...(page.nextCursor !== undefined ? { nextCursor: page.nextCursor } : {}) };
    },
  );

  app.get(
    '/users/:userId',
    {
      schema: {
        tags: ['users'],
        summary: 'A user: presence, sockets on every pod, rooms',
        description: 'Known while online and for a while after (the registry keeps status and `lastSeen`); 404 otherwise.',
        security: BEARER,
        params: UserParams,
        response: { 200: UserResponse, ...errorResponses('INVALID_PAYLOAD', 'NOT_FOUND', ...AUTH_ERRORS) },
      },
    },
    async (request) => {
      const user = await app.readModel.user(request.params.userId);
      if (!user) throw notFound('User');
      return user;
    },
  );

  app.post(
    '/users/:userId/disconnect',
    {
      schema: {
        tags: ['users'],
        summary: 'Disconnect every socket of a user, on every pod',
        description:
          'Sent to every gateway through Redis; each drops the user’s sockets it holds. `sockets` is how many the ' +
          'registry counted when asked (0 for a user who is not connected: nothing to do). Their lifecycle events have ' +
          '`cause: admin`. Clients may reconnect: ' +
          'revoke their tokens to keep them out.',
        security: BEARER,
        params: UserParams,
        response: { 202: DisconnectResponse, ...errorResponses('INVALID_PAYLOAD', ...AUTH_ERRORS) },
      },
    },
    async (request, reply) => {
      const { userId } = request.params;
      // the departures that follow are `cause: admin` lifecycle events (SPEC §7a)
      const sockets = await app.registry.markKicked(userId);
      await app.emitter.in(userRoom(userId)).disconnectSockets(true);
      request.log.info({ principal: describePrincipal(request.principal), userId, sockets }, 'admin disconnected a user');
      return reply.code(202).send({ userId, sockets });
    },
  );
};

export default usersRoutes;
