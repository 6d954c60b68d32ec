import { AuthError } from '@switchboard/auth';
import { claimGrants, jsonSize, roomKind, SwitchboardError, type SocketData } from '@switchboard/protocol';
import { publishRoomMessageWithin } from '@switchboard/store';
import type { GatewayContext, HandlerScope } from '../context.js';
import type { HandlerMap } from '../handler.js';

/** History returned with a `room:join` that carries `since`. */
const JOIN_HISTORY_LIMIT = 100;
const DEFAULT_HISTORY_LIMIT = 50;
const DEFAULT_MEMBERS_LIMIT = 50;

const forbidden = (message: string) => new SwitchboardError('FORBIDDEN', message);

function requireMember(scope: HandlerScope, room: string): void {
  if (!scope.state.rooms.has(room)) throw forbidden('Not a member of this room');
}

function requireUser(data: SocketData, what: string): void {
  if (data.guest) throw forbidden(`Guests cannot ${what}`);
}

export function createRoomHandlers(ctx: GatewayContext) {
  const { pod, readModel, history, budget, verifier, config, metrics } = ctx;

  /** The room policy of SPEC §4. */
  async function authorizeJoin(data: SocketData, room: string, token: string | undefined): Promise<void> {
    const kind = roomKind(room);
    if (kind === 'user') throw forbidden('User rooms are joined automatically');
    if (data.guest) {
      if (kind === 'public') return;
      throw forbidden('Guests may only join public rooms');
    }
    if (claimGrants(data.rooms, room)) return;
    if (kind === 'public') return;
    if (kind === 'private') {
      if (!token) throw forbidden('A room token is required');
      try {
        await verifier.verifyRoomToken(token, { userId: data.userId, room });
        return;
      } catch (err) {
        if (err instanceof AuthError) throw new SwitchboardError('FORBIDDEN', err.message, { reason: err.code });
        throw err;
      }
    }
    throw forbidden('Not allowed to join this room');
  }

  return {
    'room:join': async (scope, { room, token, since }) => {
      const { socket, data, state } = scope;
      await authorizeJoin(data, room, token);
      let members: number;
      if (state.rooms.has(room)) {
        members = await readModel.roomMemberCount(room);
      } else {
        if (state.rooms.size >= config.limits.maxRoomsPerSocket) {
          throw new SwitchboardError('LIMIT_EXCEEDED', `At most ${config.limits.maxRoomsPerSocket} rooms per connection`);
        }
        state.rooms.add(room); // reserved now, so concurrent joins cannot pass the limit
        let change;
        try {
          change = await pod.join(state.ref, room);
        } catch (err) {
          state.rooms.delete(room); // a failed join changes nothing
          throw err;
        }
        void socket.join(room);
        members = change.members;
        if (change.userChanged) {
          socket.to(room).emit('room:member_joined', { room, userId: data.userId, ...(data.name ? { name: data.name } : {}) });
        }
      }
      if (since === undefined) return { room, members };
      return { room, members, history: await history.range(room, since, JOIN_HISTORY_LIMIT) };
    },

    'room:leave': async ({ socket, data, state }, { room }) => {
      if (roomKind(room) === 'user') throw forbidden('User rooms cannot be left');
      if (!state.rooms.has(room)) return { room };
      const change = await pod.leave(state.ref, room); // a failed leave changes nothing
      state.rooms.delete(room);
      void socket.leave(room);
      if (change.userChanged) socket.to(room).emit('room:member_left', { room, userId: data.userId });
      return { room };
    },

    'room:publish': async (scope, { room, type, data: body }) => {
      const { socket, data } = scope;
      requireUser(data, 'publish');
      if (roomKind(room) === 'user') throw forbidden('Only the server publishes to user rooms');
      requireMember(scope, room);
      const size = jsonSize(body);
      if (size > config.limits.maxPayloadBytes) {
        throw new SwitchboardError('PAYLOAD_TOO_LARGE', `data is larger than ${config.limits.maxPayloadBytes} bytes`, {
          limit: config.limits.maxPayloadBytes,
        });
      }
      const from = data.name ? { userId: data.userId, name: data.name } : { userId: data.userId };
      const decision = await publishRoomMessageWithin(history, budget, size, socket.to(room), {
        room,
        ...(type === undefined ? {} : { type }),
        from,
        data: body,
      });
      if (!decision.allowed) {
        const { messages, bytes, windowMs } = budget.limits;
        throw new SwitchboardError('RATE_LIMITED', 'Publish budget exhausted, retry later', {
          retryAfterMs: decision.retryAfterMs,
          budget: { messages, bytes, windowMs },
        });
      }
      const { message } = decision;
      metrics.messagesTotal.inc();
      return { id: message.id, ts: message.ts };
    },

    'room:typing': (scope, { room, typing }) => {
      const { socket, data } = scope;
      requireUser(data, 'type');
      if (roomKind(room) === 'user') throw forbidden('Not allowed in user rooms');
      requireMember(scope, room);
      socket.volatile.to(room).emit('room:typing', { room, userId: data.userId, typing });
      return {};
    },

    'room:members': async (scope, { room, cursor, limit }) => {
      requireMember(scope, room);
      return readModel.roomMembers(room, cursor, limit ?? DEFAULT_MEMBERS_LIMIT);
    },

    'room:history': async (scope, { room, since, limit }) => {
      requireMember(scope, room);
      return history.range(room, since, limit ?? DEFAULT_HISTORY_LIMIT);
    },
  } satisfies Partial<HandlerMap>;
}
