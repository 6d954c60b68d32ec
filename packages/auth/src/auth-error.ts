import type { HandshakeErrorCode } from '@switchboard/protocol';

/** The handshake error codes a token check can end with. */
export type AuthErrorCode = Extract<HandshakeErrorCode, 'AUTH_REQUIRED' | 'AUTH_INVALID' | 'AUTH_EXPIRED'>;

/**
 * A rejected token. `code` and `message` are safe to send to the client: the message is a fixed
 * phrase and never contains the token. The underlying verification error, if any, is `cause`.
 */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly code: AuthErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
