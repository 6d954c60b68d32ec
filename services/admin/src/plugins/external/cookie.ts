import cookie from '@fastify/cookie';
import fp from 'fastify-plugin';

/** Cookie parsing and `reply.setCookie`, for the console's session cookie (no signing: the value is an opaque id). */
export default fp(
  async (app) => {
    await app.register(cookie);
  },
  { name: 'cookie' },
);
