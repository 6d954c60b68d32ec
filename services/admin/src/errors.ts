import { NotificationConflictError } from '@switchboard/producer';
import { SwitchboardError, type ErrorCode } from '@switchboard/protocol';
import { isRedisUnavailable } from '@switchboard/store';

/**
 * Codes of the admin API's error responses: the protocol's codes an HTTP API needs, plus
 * `UNAUTHORIZED` and `CONFLICT`. Closed set.
 */
export const ADMIN_ERROR_CODES = [
  'INVALID_PAYLOAD',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'RATE_LIMITED',
  'UNAVAILABLE',
  'INTERNAL',
] as const;
export type AdminErrorCode = (typeof ADMIN_ERROR_CODES)[number];

export const STATUS_OF: { readonly [C in AdminErrorCode]: number } = {
  INVALID_PAYLOAD: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

export interface AdminErrorBody {
  code: AdminErrorCode;
  message: string;
  details?: unknown;
}

/** An error whose code and message are shown to the caller. */
export class AdminError extends Error {
  override readonly name = 'AdminError';
  constructor(
    readonly code: AdminErrorCode,
    message: string,
    readonly details?: unknown,
    /** Response headers that go with the error (e.g. `WWW-Authenticate`). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get statusCode(): number {
    return STATUS_OF[this.code];
  }
}

export const notFound = (what: string) => new AdminError('NOT_FOUND', `${what} not found`);

/** The realm of the admin's `WWW-Authenticate` challenges. */
export const REALM = 'Bearer realm="switchboard-admin"';

/** 401 with its `WWW-Authenticate` challenge; `invalidToken` when a credential was given and refused. */
export function unauthorized(message: string, invalidToken: boolean): AdminError {
  return new AdminError('UNAUTHORIZED', message, undefined, {
    'www-authenticate': invalidToken ? `${REALM}, error="invalid_token"` : REALM,
  });
}

function fromProtocol(code: ErrorCode): AdminErrorCode {
  switch (code) {
    case 'INVALID_PAYLOAD':
    case 'FORBIDDEN':
    case 'NOT_FOUND':
    case 'RATE_LIMITED':
    case 'PAYLOAD_TOO_LARGE':
    case 'UNAVAILABLE':
    case 'INTERNAL':
      return code;
    case 'LIMIT_EXCEEDED':
      return 'CONFLICT';
  }
}

interface FastifyLikeError {
  statusCode?: number;
  code?: string;
  message: string;
  validation?: { instancePath?: string; message?: string }[];
  validationContext?: string;
}

function isFastifyLike(err: unknown): err is FastifyLikeError {
  return err instanceof Error && typeof (err as FastifyLikeError).statusCode === 'number';
}

export interface HttpError {
  status: number;
  body: AdminErrorBody;
  headers: Record<string, string>;
  /** A server-side failure: log it; its message was replaced by a generic one. */
  internal: boolean;
}

const internal = (): HttpError => ({
  status: 500,
  body: { code: 'INTERNAL', message: 'Internal server error' },
  headers: {},
  internal: true,
});

const unavailable = (): HttpError => ({
  status: 503,
  body: { code: 'UNAVAILABLE', message: 'Redis is unavailable, retry later' },
  headers: {},
  internal: true,
});

/**
 * Maps anything thrown while serving a request to the status and body the caller sees.
 * `redisDown`: whether Redis was unreachable; an unexpected failure then is one of its symptoms.
 */
export function toHttpError(err: unknown, redisDown = false): HttpError {
  if (err instanceof AdminError) {
    const body: AdminErrorBody = { code: err.code, message: err.message };
    if (err.details !== undefined) body.details = err.details;
    return err.code === 'INTERNAL' ? internal() : { status: err.statusCode, body, headers: err.headers, internal: false };
  }
  if (err instanceof NotificationConflictError) {
    return { status: 409, body: { code: 'CONFLICT', message: err.message, details: { id: err.id } }, headers: {}, internal: false };
  }
  if (err instanceof SwitchboardError) {
    const code = fromProtocol(err.code);
    if (code === 'INTERNAL') return internal();
    const body: AdminErrorBody = { code, message: err.message };
    if (err.details !== undefined) body.details = err.details;
    return { status: STATUS_OF[code], body, headers: {}, internal: false };
  }
  if (isFastifyLike(err) && err.validation) {
    const where = err.validationContext ?? 'request';
    const details = err.validation.map((v) => ({
      in: where,
      path: v.instancePath || '/',
      message: v.message ?? 'invalid value',
    }));
    const first = details[0];
    const message = first ? `${where}${first.path === '/' ? '' : first.path}: ${first.message}` : `invalid ${where}`;
    return { status: 400, body: { code: 'INVALID_PAYLOAD', message, details }, headers: {}, internal: false };
  }
  if (isFastifyLike(err) && err.statusCode! >= 400 && err.statusCode! < 500) {
    // Fastify's own client errors (bad JSON, body too large, unsupported media type): their
    // messages describe the request, never the server.
    const status = err.statusCode!;
    const code: AdminErrorCode =
      status === 404
        ? 'NOT_FOUND'
        : status === 413
          ? 'PAYLOAD_TOO_LARGE'
          : status === 429
            ? 'RATE_LIMITED'
            : 'INVALID_PAYLOAD';
    return { status, body: { code, message: err.message }, headers: {}, internal: false };
  }
  if (isRedisUnavailable(err) || redisDown) return unavailable();
  return internal();
}
