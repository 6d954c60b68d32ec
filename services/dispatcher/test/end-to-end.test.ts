import { Queue } from 'bullmq';
import { Cluster as RedisCluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createProducer, loadRedisConfig, type Producer } from '@switchboard/producer';
import { NOTIFICATIONS_QUEUE } from '@switchboard/protocol';
import { closeRedis, keys, type RedisClient } from '@switchboard/store';
import { collect, eventually, waitFor } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';
import { spawnDispatcher, type DispatcherProcess } from './helpers.js';

describe('notifications end to end: gateway processes, a dispatcher process, real clients', () => {
  let cluster: Cluster;
  let dispatcher: DispatcherProcess;
  let producer: Producer;
  let plain: Queue;
  let connection: RedisClient;
  let plainPrefix: string;

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2, processes: true });
    dispatcher = spawnDispatcher({ ...cluster.redisEnv, KEY_PREFIX: cluster.keyPrefix });
    // as a backend service sets it up: the topology from the same variables the services read
    producer = createProducer({ connection: loadRedisConfig(cluster.redisEnv), keyPrefix: cluster.keyPrefix });
    // a backend service with plain BullMQ and a stock ioredis client, set up as the README shows:
    // on Cluster the queue prefix is the key prefix in braces (SPEC §6)
    ({ connection, prefix: plainPrefix } = plainBullmqConnection(cluster.redisEnv, cluster.keyPrefix));
    plain = new Queue(NOTIFICATIONS_QUEUE, { connection, prefix: plainPrefix });
    plain.on('error', () => {});
  });
  afterAll(async () => {
    await producer?.close();
    await plain?.close();
    if (connection) await closeRedis(connection);
    await dispatcher?.kill('SIGTERM');
    await cluster?.stop();
  });

  it('delivers SDK and plain BullMQ jobs to every device of a user on every pod', async () => {
    const phone = await cluster.connect({ sub: 'nina', gateway: 0 });
    const laptop = await cluster.connect({ sub: 'nina', gateway: 1 });
    const atPhone = waitFor(phone, 'notification', 10_000);
    const atLaptop = waitFor(laptop, 'notification', 10_000);
    const { id } = await producer.notify({ id: 'sdk-1', to: { userId: 'nina' }, type: 'mention', title: 'You were mentioned' });
    expect(id).toBe('sdk-1');
    for (const n of [await atPhone, await atLaptop]) expect(n).toMatchObject({ id: 'sdk-1', type: 'mention', title: 'You were mentioned' });

    const again = waitFor(laptop, 'notification', 10_000);
    await plain.add('notification', { to: { userId: 'nina' }, type: 'plain', body: 'from plain BullMQ' });
    expect(await again).toMatchObject({ type: 'plain', body: 'from plain BullMQ' });
  });

  it('reaches exactly a room and everyone', async () => {
    const inRoom = await cluster.connect({ sub: 'room-member', gateway: 0 });
    const outside = await cluster.connect({ sub: 'outsider', gateway: 1 });
    await inRoom.emitWithAck('room:join', { room: 'public:announcements' });
    const outsideGot = collect(outside, 'notification');
    const roomMsg = waitFor(inRoom, 'notification', 10_000);
    await producer.notify({ to: { room: 'public:announcements' }, type: 'room-news' });
    expect((await roomMsg).type).toBe('room-news');
    const both = [waitFor(inRoom, 'notification', 10_000), waitFor(outside, 'notification', 10_000)];
    await producer.notify({ to: { broadcast: true }, type: 'everyone' });
    for (const n of await Promise.all(both)) expect(n.type).toBe('everyone');
    expect(outsideGot.map((n) => n.type)).toEqual(['everyone']);
  });

  it('keeps notifications for an offline user: unread on connect, list, and read on every device', async () => {
    await producer.notify({ id: 'later-1', to: { userId: 'oscar' }, type: 'invite', title: 'Join us' });
    await producer.notify({ id: 'later-2', to: { userIds: ['oscar', 'paula'] }, type: 'digest' });
    await eventually(async () => (await plain.getJobCounts('completed')).completed >= 1 && (await cluster.redis.zcard(keys(cluster.keyPrefix).inbox('oscar'))) === 2, { timeoutMs: 10_000 });

    const a = await cluster.connect({ sub: 'oscar', gateway: 0 });
    const b = await cluster.connect({ sub: 'oscar', gateway: 1 });
    expect(a.session.unread).toBe(2);
    const list = await a.emitWithAck('notification:list', {});
    if (!list.ok) throw new Error(list.error.message);
    expect(list.data.unread).toBe(2);
    expect(list.data.items.map((i) => [i.id, i.read])).toEqual([
      ['later-2', false],
      ['later-1', false],
    ]);

    const badge = waitFor(b, 'notification:unread', 5000);
    expect(await a.emitWithAck('notification:read', { ids: ['later-1'] })).toEqual({ ok: true, data: { unread: 1 } });
    expect(await badge).toEqual({ unread: 1 });
    const fromB = await b.emitWithAck('notification:list', { unreadOnly: true });
    expect(fromB.ok && fromB.data.items.map((i) => i.id)).toEqual(['later-2']);
    expect(await b.emitWithAck('notification:read', { all: true })).toEqual({ ok: true, data: { unread: 0 } });
    const c = await cluster.connect({ sub: 'oscar', gateway: 0 });
    expect(c.session.unread).toBe(0);
  });

  it('accepts back every id it hands out: assigned to a job without id, or to a repeated job', async () => {
    const u = await cluster.connect({ sub: 'rita', gateway: 0 });
    const got = collect(u, 'notification');
    const sdk = await producer.notify({ to: { userId: 'rita' }, type: 'assigned' });
    const viaPlain = await plain.add('notification', { to: { userId: 'rita' }, type: 'plain' });
    const repeated = await plain.upsertJobScheduler('rita-daily', { every: 86_400_000, limit: 1 }, {
      name: 'notification',
      data: { to: { userId: 'rita' }, type: 'repeated' },
    });
    await eventually(() => got.length === 3);
    await plain.removeJobScheduler('rita-daily');
    const ids = got.map((n) => n.id);
    expect(ids).toEqual(expect.arrayContaining([sdk.id, `job:${viaPlain.id}`]));
    expect(ids.find((id) => id.startsWith('job:repeat:'))).toBe(`job:${repeated.id}`);
    const list = await u.emitWithAck('notification:list', {});
    expect(list.ok && list.data.items.map((i) => i.id).sort()).toEqual([...ids].sort());
    for (const [i, id] of ids.entries()) {
      expect(await u.emitWithAck('notification:read', { ids: [id] })).toEqual({ ok: true, data: { unread: 2 - i } });
    }
  });

  it('stores and delivers an id enqueued three times once', async () => {
    const u = await cluster.connect({ sub: 'quinn', gateway: 1 });
    const got = collect(u, 'notification');
    await producer.notify({ id: 'dup-1', to: { userId: 'quinn' }, type: 'x' });
    await producer.notify({ id: 'dup-1', to: { userId: 'quinn' }, type: 'x' });
    const third = await plain.add('notification', { id: 'dup-1', to: { userId: 'quinn' }, type: 'x' });
    await eventually(async () => {
      const states = await Promise.all(['dup-1', third.id!].map(async (id) => (await plain.getJob(id))?.getState()));
      return got.length >= 1 && states.every((state) => state === 'completed');
    });
    // a later notification arrives after anything the duplicates could have sent
    const { id: marker } = await producer.notify({ to: { userId: 'quinn' }, type: 'marker', persist: false });
    await eventually(() => got.some((n) => n.id === marker));
    expect(got.map((n) => n.id)).toEqual(['dup-1', marker]);
    const list = await u.emitWithAck('notification:list', {});
    expect(list.ok && list.data.items.map((i) => i.id)).toEqual(['dup-1']);
    expect(list.ok && list.data.unread).toBe(1);
  });
});

/** What a backend without the SDK writes: ioredis from its own settings, no Switchboard package. */
function plainBullmqConnection(env: Record<string, string>, keyPrefix: string): { connection: RedisClient; prefix: string } {
  const hostPort = (address: string) => {
    const at = address.lastIndexOf(':');
    return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
  };
  if (env.REDIS_CLUSTER_NODES) {
    const connection = new RedisCluster(env.REDIS_CLUSTER_NODES.split(',').map(hostPort));
    return { connection, prefix: `{${keyPrefix}}` };
  }
  if (env.REDIS_SENTINELS) {
    const connection = new Redis({ sentinels: env.REDIS_SENTINELS.split(',').map(hostPort), name: env.REDIS_SENTINEL_NAME! });
    return { connection, prefix: keyPrefix };
  }
  return { connection: new Redis(env.REDIS_URL!), prefix: keyPrefix };
}
