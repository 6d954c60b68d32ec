import type { ErrorCode, HandshakeErrorCode, SessionErrorCode } from '@switchboard/protocol';

/**
 * Why a call or a connection failed: a server error code (SPEC §3), a handshake refusal
 * (SPEC §2), or one of the client's own:
 * - `TIMEOUT`: no answer within the request timeout;
 * - `DISCONNECTED`: the connection was lost before the answer came, or the client is closed.
 */
export type ClientErrorCode = ErrorCode | HandshakeErrorCode | 'TIMEOUT' | 'DISCONNECTED';

/** Every failure the client reports: a rejected call, a refused handshake, a failed resume. */
export class SwitchboardClientError extends Error {
  override readonly name = 'SwitchboardClientError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** The server's `details`, or the `connect_error` data. */
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The server's closed set of event error codes, kept in step with the protocol by the compiler. */
const SERVER_CODES = {
  INVALID_PAYLOAD: true,
  FORBIDDEN: true,
  NOT_FOUND: true,
  RATE_LIMITED: true,
  PAYLOAD_TOO_LARGE: true,
  LIMIT_EXCEEDED: true,
  UNAVAILABLE: true,
  INTERNAL: true,
} satisfies Record<ErrorCode, true>;

const HANDSHAKE_CODES = {
  AUTH_REQUIRED: true,
  AUTH_INVALID: true,
  AUTH_EXPIRED: true,
  ORIGIN_FORBIDDEN: true,
  CONNECTION_LIMIT: true,
  RATE_LIMITED: true,
} satisfies Record<HandshakeErrorCode, true>;

function isServerCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(SERVER_CODES, code);
}

export function isHandshakeCode(code: unknown): code is HandshakeErrorCode {
  return typeof code === 'string' && Object.hasOwn(HANDSHAKE_CODES, code);
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A failed `emitWithAck`: Socket.IO rejects with "operation has timed out" after the timeout,
 * and with "socket has been disconnected" when the connection drops first.
 */
export function transportError(event: string, err: unknown, timeoutMs: number): SwitchboardClientError {
  if (err instanceof Error && /timed out/i.test(err.message)) {
    return new SwitchboardClientError('TIMEOUT', `${event}: no answer within ${timeoutMs} ms`, undefined, { cause: err });
  }
  return new SwitchboardClientError('DISCONNECTED', `${event}: ${describe(err)}`, undefined, { cause: err });
}

export function isDisconnected(err: unknown): boolean {
  return err instanceof SwitchboardClientError && err.code === 'DISCONNECTED';
}

/** The code a locally detected failure is reported with in a `session:error` payload. */
export function sessionErrorCode(err: unknown): SessionErrorCode {
  return err instanceof SwitchboardClientError && isServerCode(err.code) ? err.code : 'UNAVAILABLE';
}
