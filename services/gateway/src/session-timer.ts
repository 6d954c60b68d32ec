import type { SocketState } from './context.js';
import type { GatewaySocket } from './handshake.js';

/** setTimeout clamps delays above 2^31-1 ms; longer waits are chained. */
const MAX_DELAY = 2 ** 31 - 1;

function at(when: number, fn: () => void, keep: (timer: NodeJS.Timeout) => void): void {
  const delay = when - Date.now();
  if (delay > MAX_DELAY) keep(setTimeout(() => at(when, fn, keep), MAX_DELAY));
  else keep(setTimeout(fn, Math.max(0, delay)));
}

export function clearExpiry(state: SocketState): void {
  clearTimeout(state.timers.warn);
  clearTimeout(state.timers.expire);
  state.timers = {};
}

/**
 * Enforces the access token's lifetime on a live socket (SPEC §2): `session:expiring` shortly
 * before `exp`, then `session:error` `AUTH_EXPIRED` and a disconnect at `exp`, unless
 * `auth:refresh` moved `exp` first.
 */
export function scheduleExpiry(socket: GatewaySocket, state: SocketState, exp: number, warningSec: number): void {
  clearExpiry(state);
  const expMs = exp * 1000;
  const warnMs = expMs - warningSec * 1000;
  at(
    warnMs,
    () => socket.emit('session:expiring', { exp }),
    (t) => (state.timers.warn = t),
  );
  at(
    expMs,
    () => {
      socket.emit('session:error', { code: 'AUTH_EXPIRED', message: 'Access token expired' });
      socket.disconnect(true);
    },
    (t) => (state.timers.expire = t),
  );
}
