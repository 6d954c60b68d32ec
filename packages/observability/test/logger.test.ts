import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis, ReplyError } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger, serializeError } from '../src/index.js';

declare module 'vitest' {
  interface ProvidedContext {
    redisUrl: string;
  }
}

/** A destination that keeps every line pino writes. */
function capture(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

/** ioredis types `ReplyError` as `any`; this is its shape. */
type RedisReplyError = Error & { command: { name: string; args: unknown[] } };

describe('logged errors', () => {
  let redis: Redis;
  const key = `test-${randomUUID()}:wrongtype`;
  const marker = `payload-${randomUUID()}`;
  const payload = JSON.stringify({ marker, body: 'x'.repeat(64 * 1024) });
  let replyError: RedisReplyError;

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'));
    await redis.set(key, 'a string, not a list');
    // WRONGTYPE: the reply error carries the command, arguments included
    replyError = (await redis.lpush(key, payload).catch((err: unknown) => err)) as RedisReplyError;
  });
  afterAll(async () => {
    await redis.del(key);
    redis.disconnect();
  });

  it('a real ioredis ReplyError carries its payload (what pino would log by default)', () => {
    expect(replyError).toBeInstanceOf(ReplyError);
    expect(replyError.command).toEqual({ name: 'lpush', args: [key, payload] });
    const { stream, lines } = capture();
    pino({}, stream).error({ err: replyError }, 'default serializer');
    expect(lines().join('\n')).toContain(marker);
  });

  it('is logged with its name, message, code, stack and command name, never its arguments', () => {
    const { stream, lines } = capture();
    const logger = createLogger({ service: 'test', destination: stream });
    logger.error({ err: replyError }, 'top level');
    logger.warn({ job: { id: 'j1', err: replyError } }, 'nested');
    logger.error(replyError);
    logger.child({ role: 'child' }).error({ err: replyError }, 'in a child logger');
    logger.error({ err: new Error('wrapped', { cause: replyError }) }, 'as a cause');

    const out = lines();
    expect(out).toHaveLength(5);
    expect(out.join('\n')).not.toContain(marker);
    const parsed = out.map((l) => JSON.parse(l) as Record<string, unknown>);
    const errs = [parsed[0]!.err, (parsed[1]!.job as Record<string, unknown>).err, parsed[2]!.err, parsed[3]!.err, (parsed[4]!.err as Record<string, unknown>).cause];
    for (const err of errs) {
      expect(err).toEqual({
        type: 'ReplyError',
        message: expect.stringMatching(/^WRONGTYPE Operation against a key holding the wrong kind of value/),
        stack: expect.stringContaining('ReplyError: WRONGTYPE'),
        command: 'lpush',
      });
    }
    expect((parsed[1]!.job as Record<string, unknown>).id).toBe('j1');
    expect(parsed[2]!.msg).toMatch(/^WRONGTYPE/);
  });

  it('keeps codes and system-error fields, drops any other field', () => {
    const sys = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
      code: 'ECONNREFUSED',
      errno: -111,
      syscall: 'connect',
      address: '127.0.0.1',
      port: 1,
      validation: [{ value: 'user input' }],
      body: 'request body',
    });
    expect(serializeError(sys)).toEqual({
      type: 'Error',
      message: 'connect ECONNREFUSED 127.0.0.1:1',
      stack: expect.any(String),
      code: 'ECONNREFUSED',
      errno: -111,
      syscall: 'connect',
      address: '127.0.0.1',
      port: 1,
    });
    expect(serializeError({ message: 'plain object', code: 'X', data: 'payload' })).toEqual({ type: 'Object', message: 'plain object', code: 'X' });
    expect(serializeError('just a string')).toBe('just a string');
    expect(serializeError(undefined)).toBeUndefined();
  });
});
