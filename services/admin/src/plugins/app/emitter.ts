import type { Broadcaster } from '@switchboard/store';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    /** Reaches the gateways' sockets through Redis, in their adapter's format and pub/sub mode. */
    emitter: Broadcaster;
  }
}

export interface EmitterOptions {
  emitter: Broadcaster;
}

export default fp<EmitterOptions>(
  async (app, { emitter }) => {
    app.decorate('emitter', emitter);
  },
  { name: 'emitter' },
);
