import { presenceRoom, SwitchboardError } from '@switchboard/protocol';
import type { GatewayContext } from '../context.js';
import type { HandlerMap } from '../handler.js';

export function createPresenceHandlers(ctx: GatewayContext) {
  const { pod, readModel, config, io } = ctx;
  const guestsForbidden = () => new SwitchboardError('FORBIDDEN', 'Guests have no presence');

  return {
    'presence:set': async ({ data }, { status, text }) => {
      if (data.guest) throw guestsForbidden();
      const online = await pod.setStatus(data.userId, status, text);
      io.to(presenceRoom(data.userId)).emit('presence:changed', { userId: data.userId, online, status });
      return { status };
    },

    'presence:watch': async ({ socket, data, state }, { userIds }) => {
      if (data.guest) throw guestsForbidden();
      const ids = [...new Set(userIds)];
      const added = ids.filter((id) => !state.watched.has(id));
      if (state.watched.size + added.length > config.limits.maxWatchedUsers) {
        throw new SwitchboardError('LIMIT_EXCEEDED', `At most ${config.limits.maxWatchedUsers} watched users per connection`, {
          limit: config.limits.maxWatchedUsers,
          watching: state.watched.size,
        });
      }
      // Watch first (this socket in the users' presence rooms, this pod in the cluster's watched
      // index), then read, so no change falls between the read and the watch.
      for (const id of added) state.watched.add(id);
      if (added.length) void socket.join(added.map(presenceRoom));
      try {
        if (added.length) await pod.watch(added);
        return { presence: await readModel.presence(ids) };
      } catch (err) {
        // a failed watch changes nothing: what the socket still holds of it (a disconnect meanwhile
        // took back all it held) leaves its rooms and the pod's count
        const held = added.filter((id) => state.watched.delete(id));
        for (const id of held) void socket.leave(presenceRoom(id));
        pod.unwatch(held);
        throw err;
      }
    },

    'presence:unwatch': ({ socket, state }, { userIds }) => {
      const removed: string[] = [];
      for (const id of userIds) {
        if (state.watched.delete(id)) {
          removed.push(id);
          void socket.leave(presenceRoom(id));
        }
      }
      pod.unwatch(removed);
      return {};
    },
  } satisfies Partial<HandlerMap>;
}
