import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isRedisUnavailable, pingWithin, queuePrefix, ReplicationTimeoutError, throttled, waitForReplicas } from '../src/redis.js';

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
