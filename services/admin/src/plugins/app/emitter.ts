import type { Emitter } from '@socket.io/redis-emitter';
import fp from 'fastify-plugin';
import type { ServerToClientEvents } from '@switchboard/protocol';

declare module 'fastify' {
  interface FastifyInstance {
    /** Reaches the gateways' sockets through Redis; its `key` is `ioKey(KEY_PREFIX)`. */
    emitter: Emitter<ServerToClientEvents>;
  }
}

export interface EmitterOptions {
  emitter: Emitter<ServerToClientEvents>;
}

export default fp<EmitterOptions>(
  async (app, { emitter }) => {
    app.decorate('emitter', emitter);
  },
  { name: 'emitter' },
);
