import { SwitchboardError, userRoom } from '@switchboard/protocol';
import type { GatewayContext } from '../context.js';
import type { HandlerMap } from '../handler.js';

export function createNotificationHandlers(ctx: GatewayContext) {
  const { inbox, io } = ctx;
  const guestsForbidden = () => new SwitchboardError('FORBIDDEN', 'Guests have no inbox');

  return {
    'notification:list': async ({ data }, query) => {
      if (data.guest) throw guestsForbidden();
      return inbox.list(data.userId, query);
    },

    'notification:read': async ({ socket, data }, which) => {
      if (data.guest) throw guestsForbidden();
      const unread = await inbox.markRead(data.userId, 'all' in which ? 'all' : which.ids);
      // the user's other devices update their badge; this one has the ack
      io.to(userRoom(data.userId)).except(socket.id).emit('notification:unread', { unread });
      return { unread };
    },
  } satisfies Partial<HandlerMap>;
}
