import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AdminConfig } from '@switchboard/config';
import { jsonSize, SERVER_SENDER } from '@switchboard/protocol';
import { publishRoomMessage } from '@switchboard/store';
import { AdminError, notFound } from '../../errors.js';
import { describePrincipal } from '../../plugins/app/auth.js';
import {
  AUTH_ERRORS,
  BEARER,
  DEFAULT_PAGE,
  errorResponses,
  PublishBody,
  PublishResponse,
  RoomParams,
  RoomQuery,
  RoomResponse,
  RoomsQuery,
  RoomsResponse,
} from '../../schemas.js';

export interface RoomsRouteOptions {
  /** Largest `data` of a published message, as JSON bytes. */
  maxPayloadBytes: AdminConfig['maxPayloadBytes'];
}

const roomsRoutes: FastifyPluginAsyncTypebox<RoomsRouteOptions> = async (app, { maxPayloadBytes }) => {
  app.get(
    '/rooms',
    {
      schema: {
        tags: ['rooms'],
        summary: 'Rooms with at least one member, in name order, with member counts',
        security: BEARER,
        querystring: RoomsQuery,
        response: { 200: RoomsResponse, ...errorResponses('INVALID_PAYLOAD', ...AUTH_ERRORS) },
      },
    },
    async (request) => {
      const { cursor, limit, prefix } = request.query;
      const page = await app.readModel.rooms(cursor, limit ?? DEFAULT_PAGE, prefix ?? '');
      return { rooms: page.items, ...(page.nextCursor !== undefined ? { nextCursor: page.nextCursor } : {}) };
    },
  );

  app.get(
    '/rooms/:room',
    {
      schema: {
        tags: ['rooms'],
        summary: 'A room: member count and a page of its users, in id order',
        description: 'The room name is URL-encoded (`public%3Ateam%2Fa` for `public:team/a`). 404 when the room has no members.',
        security: BEARER,
        params: RoomParams,
        querystring: RoomQuery,
        response: { 200: RoomResponse, ...errorResponses('INVALID_PAYLOAD', 'NOT_FOUND', ...AUTH_ERRORS) },
      },
    },
    async (request) => {
      const { room } = request.params;
      const { cursor, limit } = request.query;
      const members = await app.readModel.roomMemberCount(room);
      if (members === 0) throw notFound('Room');
      const page = await app.readModel.roomMembers(room, cursor, limit ?? DEFAULT_PAGE);
      return { room, members, users: page.members, ...(page.nextCursor !== undefined ? { nextCursor: page.nextCursor } : {}) };
    },
  );

  app.post(
    '/rooms/:room/messages',
    {
      schema: {
        tags: ['rooms'],
        summary: 'Publish a message to a room, from the server',
        description:
          'Stored in the room’s history, then sent as `room:message` to every member on every pod, from ' +
          '`{ userId: "#server" }`, a sender no access token can produce (`#` is not a user-id character). Any valid room, `user:<id>` rooms included. `data` is at most ' +
          '`ADMIN_MAX_PAYLOAD_BYTES` as JSON (413 otherwise).',
        security: BEARER,
        params: RoomParams,
        body: PublishBody,
        response: { 202: PublishResponse, ...errorResponses('INVALID_PAYLOAD', 'PAYLOAD_TOO_LARGE', ...AUTH_ERRORS) },
      },
    },
    async (request, reply) => {
      const { room } = request.params;
      const { type, data } = request.body;
      if (jsonSize(data) > maxPayloadBytes) {
        throw new AdminError('PAYLOAD_TOO_LARGE', `data is larger than ${maxPayloadBytes} bytes as JSON`, { limit: maxPayloadBytes });
      }
      const message = await publishRoomMessage(app.roomHistory, app.emitter.to(room), {
        room,
        ...(type === undefined ? {} : { type }),
        from: SERVER_SENDER,
        data,
      });
      request.log.info({ principal: describePrincipal(request.principal), room, id: message.id }, 'admin published a message');
      return reply.code(202).send({ id: message.id, ts: message.ts });
    },
  );
};

export default roomsRoutes;
