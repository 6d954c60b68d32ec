import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { deleteKeys, randomKeyPrefix } from '@switchboard/testkit';
import { keys } from '../src/keys.js';
import { ReadModel } from '../src/read-model.js';
import { Registry } from '../src/registry.js';

const prefix = randomKeyPrefix();
let redis: Redis;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  redis.on('error', () => {});
});

afterAll(async () => {
  await deleteKeys(redis, prefix);
  await redis.quit();
});

describe('registry keys', () => {
  it('keeps apart users whose ids would spell each other\'s keys', async () => {
    const registry = new Registry(redis, prefix);
    const model = new ReadModel(redis, prefix);
    // Without braces, the hash of user "ann:sockets" would be the socket set of user "ann".
    const connect = (socketId: string, userId: string) => registry.connect({ socketId, userId, pod: 'pod-a', maxConnections: 5 });
    expect((await connect('s-ann', 'ann')).accepted).toBe(true);
    expect((await connect('s-other', 'ann:sockets')).accepted).toBe(true);
    expect((await model.user('ann'))?.sockets.map((s) => s.id)).toEqual(['s-ann']);
    expect((await model.user('ann:sockets'))?.sockets.map((s) => s.id)).toEqual(['s-other']);
    expect(await redis.type(keys(prefix).userSockets('ann'))).toBe('set');
    expect(await redis.type(keys(prefix).user('ann:sockets'))).toBe('hash');

    await registry.disconnect('s-other');
    expect((await model.user('ann'))?.sockets.map((s) => s.id)).toEqual(['s-ann']);
    expect((await model.user('ann:sockets'))?.online).toBe(false);
  });

  it('keeps apart pods whose ids would spell each other\'s keys', async () => {
    const registry = new Registry(redis, prefix);
    const model = new ReadModel(redis, prefix);
    const now = Date.now();
    await registry.heartbeat('gw', now, now);
    await registry.heartbeat('gw:sockets', now, now);
    await registry.connect({ socketId: 'p-1', userId: 'pat', pod: 'gw', maxConnections: 5 });
    await registry.connect({ socketId: 'p-2', userId: 'pat', pod: 'gw:sockets', maxConnections: 5 });
    const pods = (await model.counts()).pods;
    expect(Object.fromEntries(pods.map((p) => [p.id, p.connections]))).toMatchObject({ gw: 1, 'gw:sockets': 1 });
    expect(await redis.type(keys(prefix).podSockets('gw'))).toBe('set');
    expect(await redis.type(keys(prefix).pod('gw:sockets'))).toBe('hash');
  });
});
