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

/** JSON logs with secrets redacted (SPEC §8). */
export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? 'info',
    base: { service: settings.service, ...(settings.pod ? { pod: settings.pod } : {}) },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
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
