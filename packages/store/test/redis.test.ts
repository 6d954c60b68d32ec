import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { loadRedisConfig } from '@switchboard/config';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedisClient, isRedisUnavailable, pingWithin, queuePrefix, ReplicationTimeoutError, throttled, waitForReplicas } from '../src/redis.js';

describe('isRedisUnavailable', () => {
  it('tells "retry later" from bugs and refused commands', () => {
    const unavailable = [
      new Error('Connection is closed.'),
      new Error('connect ECONNREFUSED 127.0.0.1:6379'),
      new Error('Too many Cluster redirections. Last error: ReplyError: MOVED 7664 127.0.0.1:37915'),
      new Error('CLUSTERDOWN The cluster is down'),
      new Error('READONLY You can\'t write against a read only replica.'),
      new Error('OOM command not allowed when used memory > \'maxmemory\'.'),
      Object.assign(new Error('x'), { name: 'MaxRetriesPerRequestError' }),
      new ReplicationTimeoutError(1, 0),
    ];
    for (const err of unavailable) expect({ m: err.message, u: isRedisUnavailable(err) }).toEqual({ m: err.message, u: true });
    for (const err of [new Error('WRONGTYPE Operation against a key holding the wrong kind of value'), new TypeError('x is undefined'), 'a string']) {
      expect(isRedisUnavailable(err)).toBe(false);
    }
  });
});

describe('helpers', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
    redis.on('error', () => {});
  });
  afterAll(() => redis.quit());

  it('puts the queue prefix in braces on Redis Cluster only', () => {
    expect(queuePrefix('sb', false)).toBe('sb');
    expect(queuePrefix('sb', true)).toBe('{sb}');
  });

  it('waits for replicas with WAIT, and fails a write no replica has in time', async () => {
    await waitForReplicas(redis, 0);
    await redis.set('redis-test-wait', '1');
    const err = await waitForReplicas(redis, 1, 50).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplicationTimeoutError);
    expect((err as ReplicationTimeoutError).message).toBe('a write reached 0 of 1 replicas in time');
    await redis.del('redis-test-wait');
  });

  it('pings within a bound', async () => {
    expect(await pingWithin(redis, 1000)).toBe(true);
    const down = new Redis({ port: 1, lazyConnect: true, retryStrategy: () => null });
    down.on('error', () => {});
    expect(await pingWithin(down, 100)).toBe(false);
    down.disconnect();
  });

  it('throttles a warning to once per interval', () => {
    const seen: number[] = [];
    const warn = throttled((n: number) => seen.push(n), 60_000);
    for (let i = 0; i < 5; i++) warn(i);
    expect(seen).toEqual([0]);
  });
});

describe('createRedisClient with autoPipelining', () => {
  it('pipelines the commands of one turn of the event loop and answers each on its own, errors included', async () => {
    const client = createRedisClient(loadRedisConfig({ REDIS_URL: inject('redisUrl') }), 'test-autopipeline', { warn: () => {} }, { autoPipelining: true });
    try {
      const key = `test-autopipeline:${randomUUID()}`;
      const answers = await Promise.all([client.set(key, 'a'), client.get(key), client.incr(`${key}:n`), client.incr(`${key}:n`), client.hget(key, 'x').catch((err: Error) => err.message)]);
      expect(answers.slice(0, 4)).toEqual(['OK', 'a', 1, 2]);
      expect(String(answers[4])).toMatch(/WRONGTYPE/);
      expect((client as Redis).options.enableAutoPipelining).toBe(true);
      await client.del(key, `${key}:n`);
    } finally {
      await client.quit();
    }
  });
});
