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
});
