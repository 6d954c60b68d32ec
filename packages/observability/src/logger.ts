import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Paths whose values never reach a log line. */
export const REDACT_PATHS = [
  'token',
  '*.token',
  'auth.token',
  '*.auth.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'secret',
  '*.secret',
  'password',
  '*.password',
  'apiKey',
  '*.apiKey',
  'redisUrl',
  '*.redisUrl',
  'jwt.secret',
  '*.jwt.secret',
  'adminApiKeys',
  '*.adminApiKeys',
];

export interface LoggerSettings {
  /** Service name, logged on every line. */
  service: string;
  /** @default 'info' */
  level?: string;
  /** Pod id, logged on every line. */
  pod?: string;
  /** Where to write; defaults to stdout. */
  destination?: pino.DestinationStream;
}

/** What a logged error keeps. */
export interface SerializedError {
  /** The error's name (pino's key for it). */
  type: string;
  message: string;
  stack?: string;
  code?: string | number;
  /** Of a failed Redis command: its name only, never its arguments. */
  command?: string;
  errno?: number;
  syscall?: string;
  address?: string;
  port?: number;
  statusCode?: number;
  cause?: SerializedError | string;
}

/** Fields of an error that describe it without carrying data; everything else is dropped. */
const ERROR_FIELDS = {
  code: ['string', 'number'],
  errno: ['number'],
  syscall: ['string'],
  address: ['string'],
  port: ['number'],
  statusCode: ['number'],
} as const;
const MAX_CAUSES = 3;

/**
 * The `err` serializer: name, message, stack, code and a few system-error fields, the command
 * name of an ioredis error, and the cause chain. Never anything else an error carries: pino's
 * default copies every own property, so an ioredis `ReplyError` logged the arguments of its
 * command (whole message and notification payloads) and a validation error its input.
 */
export function serializeError(value: unknown, depth = 0): SerializedError | string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object') return String(value);
  const e = value as Record<string, unknown>;
  const out: SerializedError = {
    type: typeof e.name === 'string' ? e.name : value instanceof Error ? value.constructor.name : 'Object',
    message: typeof e.message === 'string' ? e.message : '',
  };
  if (typeof e.stack === 'string') out.stack = e.stack;
  for (const [field, types] of Object.entries(ERROR_FIELDS)) {
    const v = e[field];
    if ((types as readonly string[]).includes(typeof v)) Object.assign(out, { [field]: v });
  }
  const command = e.command;
  if (typeof command === 'object' && command !== null && 'name' in command && typeof command.name === 'string') {
    out.command = command.name;
  }
  if (e.cause !== undefined && depth < MAX_CAUSES) {
    const cause = serializeError(e.cause, depth + 1);
    if (cause !== undefined) out.cause = cause;
  }
  return out;
}

/** `{ job: { err } }`: errors one level down get the same serializer as a top-level `err`. */
function serializeNestedErrors(obj: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'err' || typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Error) continue;
    if (!('err' in value)) continue;
    copy ??= { ...obj };
    copy[key] = { ...value, err: serializeError((value as { err: unknown }).err) };
  }
  return copy ?? obj;
}

/** JSON logs with secrets redacted (SPEC §8) and errors reduced to what describes them. */
export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? 'info',
    base: { service: settings.service, ...(settings.pod ? { pod: settings.pod } : {}) },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: serializeError },
    formatters: { log: serializeNestedErrors },
  };
  return settings.destination ? pino(options, settings.destination) : pino(options);
}

/** Removes credentials from a Redis URL before it is logged. */
export function safeRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.username && u.password) u.username = '***';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
