/** Error codes an event ack or `session:error` can carry (SPEC §3). Closed set. */
export const ERROR_CODES = [
  'INVALID_PAYLOAD',
  'FORBIDDEN',
  'NOT_FOUND',
  'RATE_LIMITED',
  'PAYLOAD_TOO_LARGE',
  'LIMIT_EXCEEDED',
  'UNAVAILABLE',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Codes a refused handshake carries in `connect_error` (SPEC §2). Closed set. */
export const HANDSHAKE_ERROR_CODES = [
  'AUTH_REQUIRED',
  'AUTH_INVALID',
  'AUTH_EXPIRED',
  'ORIGIN_FORBIDDEN',
  'CONNECTION_LIMIT',
  'RATE_LIMITED',
] as const;
export type HandshakeErrorCode = (typeof HANDSHAKE_ERROR_CODES)[number];

/** `AUTH_EXPIRED` is also sent as a `session:error` when a live socket's token runs out. */
export type SessionErrorCode = ErrorCode | 'AUTH_EXPIRED';

export interface ErrorBody<C extends string = ErrorCode> {
  code: C;
  message: string;
  details?: unknown;
}

/** An error whose code and message may be shown to a client. Anything else becomes `INTERNAL`. */
export class SwitchboardError extends Error {
  override readonly name = 'SwitchboardError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  toBody(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** A refused handshake: becomes `connect_error` with `message = code` and `data = { code, message }`. */
export class HandshakeError extends Error {
  override readonly name = 'HandshakeError';
  readonly data: ErrorBody<HandshakeErrorCode>;
  constructor(
    readonly code: HandshakeErrorCode,
    description: string,
  ) {
    super(code);
    this.data = { code, message: description };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
