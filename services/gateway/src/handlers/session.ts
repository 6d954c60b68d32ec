import { AuthError } from '@switchboard/auth';
import { SwitchboardError } from '@switchboard/protocol';
import type { GatewayContext } from '../context.js';
import type { HandlerMap } from '../handler.js';

export function createSessionHandlers(ctx: GatewayContext) {
  const { verifier, clock } = ctx;

  return {
    'session:ping': () => ({ ts: Date.now() }),

    'auth:refresh': async ({ socket, data }, { token }) => {
      if (data.guest) throw new SwitchboardError('FORBIDDEN', 'Guests have no token to refresh');
      let claims;
      try {
        claims = await verifier.verifyAccess(token);
      } catch (err) {
        if (err instanceof AuthError) throw new SwitchboardError('FORBIDDEN', err.message, { reason: err.code });
        throw err;
      }
      if (claims.sub !== data.userId) throw new SwitchboardError('FORBIDDEN', 'Token is for another user');
      data.exp = claims.exp;
      data.roles = claims.roles;
      data.rooms = claims.rooms;
      // the clock ignores a socket that closed while the token was being verified
      clock.schedule(socket, claims.exp);
      return { exp: claims.exp };
    },
  } satisfies Partial<HandlerMap>;
}
