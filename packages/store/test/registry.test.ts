import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { deleteKeys, randomKeyPrefix } from '@switchboard/testkit';
import { keys } from '../src/keys.js';
import { ReadModel } from '../src/read-model.js';
import { Registry, UnknownSocketError, type InstanceRef, type SocketRef } from '../src/registry.js';

let redis: Redis;
let prefix: string;
let registry: Registry;
let model: ReadModel;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  redis.on('error', () => {});
});
afterAll(() => redis.quit());
beforeEach(async (context) => {
  prefix = randomKeyPrefix();
  registry = new Registry(redis, prefix);
  model = new ReadModel(redis, prefix);
  context.onTestFinished(() => deleteKeys(redis, prefix));
});

const inst = (id: string, pod = 'pod-a'): InstanceRef => ({ id, pod });
const user = (socketId: string, userId: string, guest = false): SocketRef => ({ socketId, userId, guest });
const redisNow = async () => {
  const [sec, usec] = await redis.time();
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
};

async function connect(instance: InstanceRef, s: SocketRef, maxConnections = 10) {
  const r = await registry.connect({ ...s, instance, maxConnections });
  if (!r.accepted) throw new Error(`refused: ${r.reason}`);
  return r;
}

describe('registry connect with the unread count', () => {
  it('reads the user\'s unread count in the same call, for a new and for a retried registration', async () => {
    const a = inst('i-1');
    await registry.heartbeat(a);
    await redis.sadd(keys(prefix).inboxUnread('ann'), 'n1', 'n2');
    expect(registry.countsUnread).toBe(true);
    const first = await registry.connect({ ...user('s-1', 'ann'), instance: a, maxConnections: 10, countUnread: true });
    expect(first).toMatchObject({ accepted: true, cameOnline: true, unread: 2 });
    const again = await registry.connect({ ...user('s-1', 'ann'), instance: a, maxConnections: 10, countUnread: true });
    expect(again).toMatchObject({ accepted: true, cameOnline: false, userSockets: 1, unread: 2 });
    const without = await registry.connect({ ...user('s-2', 'ann'), instance: a, maxConnections: 10 });
    expect(without.accepted && without.unread).toBeUndefined();
    const refused = await registry.connect({ ...user('s-3', 'ann'), instance: a, maxConnections: 2, countUnread: true });
    expect(refused).toEqual({ accepted: false, reason: 'limit', userSockets: 2 });
    expect((await model.counts()).connections).toBe(2);
  });
});

describe('registry keys', () => {
  it("keeps apart users whose ids would spell each other's keys", async () => {
    const a = inst('i-1');
    await registry.heartbeat(a);
    await connect(a, user('s-ann', 'ann'));
    await connect(a, user('s-other', 'ann:sockets'));
    expect((await model.user('ann'))?.sockets.map((s) => s.id)).toEqual(['s-ann']);
    expect((await model.user('ann:sockets'))?.sockets.map((s) => s.id)).toEqual(['s-other']);
    expect(await redis.type(keys(prefix).userSockets('ann'))).toBe('set');
    expect(await redis.type(keys(prefix).user('ann:sockets'))).toBe('hash');
    await registry.disconnect(a, user('s-other', 'ann:sockets'), []);
    expect((await model.user('ann'))?.sockets.map((s) => s.id)).toEqual(['s-ann']);
    expect((await model.user('ann:sockets'))?.online).toBe(false);
  });

  it("keeps apart instances whose ids would spell each other's keys", async () => {
    await registry.heartbeat(inst('gw', 'gw'));
    await registry.heartbeat(inst('gw:sockets', 'gw:sockets'));
    await connect(inst('gw', 'gw'), user('p-1', 'pat'));
    await connect(inst('gw:sockets', 'gw:sockets'), user('p-2', 'pat'));
    const pods = (await model.counts()).pods;
    expect(Object.fromEntries(pods.map((p) => [p.instance, p.connections]))).toEqual({ gw: 1, 'gw:sockets': 1 });
    expect(await redis.type(keys(prefix).instanceSockets('gw'))).toBe('set');
    expect(await redis.type(keys(prefix).instance('gw:sockets'))).toBe('hash');
  });

  it('keeps every registry key in one hash slot, and per-user and per-room keys in their own', () => {
    const k = keys(prefix);
    const tag = (key: string) => /\{([^}]*)\}/.exec(key)?.[1];
    const registryKeys = [
      k.instances, k.instance('i'), k.instanceSockets('i'), k.socket('s'), k.socketRooms('s'), k.userSockets('u'), k.user('u'),
      k.online, k.roomUsers('public:r'), k.roomMembers('public:r'), k.rooms, k.counters, k.reaperLock,
    ];
    expect(new Set(registryKeys.map(tag))).toEqual(new Set(['reg']));
    expect([k.inbox('ann'), k.inboxItems('ann'), k.inboxUnread('ann'), k.publishBudget('ann')].map(tag)).toEqual(['ann', 'ann', 'ann', 'ann']);
    expect([k.history('public:r'), k.historyMeta('public:r')].map(tag)).toEqual(['public:r', 'public:r']);
  });
});

describe('connect', () => {
  it('decides the connections-per-user limit in the same step, for concurrent connects too', async () => {
    const a = inst('i-limit');
    await registry.heartbeat(a);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => registry.connect({ ...user(`l-${i}`, 'lim'), instance: a, maxConnections: 5 })),
    );
    expect(results.filter((r) => r.accepted)).toHaveLength(5);
    expect(results.filter((r) => !r.accepted && r.reason === 'limit')).toHaveLength(7);
    expect(await model.userSocketCount('lim')).toBe(5);
    expect((await model.counts()).connections).toBe(5);
  });

  it('refuses a socket of an instance that has no heartbeat (new, or reaped while it was silent)', async () => {
    const r = await registry.connect({ ...user('u-1', 'nobody'), instance: inst('i-unknown'), maxConnections: 5 });
    expect(r).toEqual({ accepted: false, reason: 'unknown-instance' });
    expect((await model.counts()).connections).toBe(0);
  });

  it('takes the connection time from Redis, not from the pod', async () => {
    const a = inst('i-time');
    await registry.heartbeat(a);
    const before = await redisNow();
    const r = await connect(a, user('t-1', 'tim'));
    expect(r.now).toBeGreaterThanOrEqual(before);
    expect((await model.user('tim'))?.sockets[0]?.connectedAt).toBe(r.now);
  });
});

describe('disconnect', () => {
  it('leaves every room the registry holds, also those the pod did not pass', async () => {
    const a = inst('i-rooms');
    await registry.heartbeat(a);
    const s = user('r-1', 'rob');
    await connect(a, s);
    await registry.join(s, 'public:one');
    await registry.join(s, 'public:two');
    const left = await registry.disconnect(a, s, ['public:one']);
    expect(left).toMatchObject({ userId: 'rob', wentOffline: true });
    expect(left?.roomsLeft.sort()).toEqual(['public:one', 'public:two']);
    expect((await model.counts()).rooms).toBe(0);
    expect(await registry.disconnect(a, s, [])).toBeUndefined();
  });

  it('leaves nothing of a guest after its last socket', async () => {
    const a = inst('i-guest');
    await registry.heartbeat(a);
    const g1 = user('g-1', 'guest:abc', true);
    const g2 = user('g-2', 'guest:abc', true);
    await connect(a, g1);
    await connect(a, g2);
    await registry.join(g1, 'public:lobby');
    await registry.disconnect(a, g1, ['public:lobby']);
    expect(await redis.exists(keys(prefix).user('guest:abc'))).toBe(1);
    await registry.disconnect(a, g2, []);
    const left = await redis.keys(`${prefix}:*guest:abc*`);
    expect(left).toEqual([]);
    // a signed-in user's presence is kept for a while
    const u = user('u-1', 'kept');
    await connect(a, u);
    await registry.disconnect(a, u, []);
    expect(await redis.ttl(keys(prefix).user('kept'))).toBeGreaterThan(0);
  });

  it('refuses a join of a socket the registry does not hold, with a typed error', async () => {
    await expect(registry.join(user('ghost', 'nobody'), 'public:x')).rejects.toBeInstanceOf(UnknownSocketError);
  });
});

describe('reaping', () => {
  it('reaps an instance silent for longer than the bound, in Redis time, with exact counts', async () => {
    const dead = inst('i-dead', 'pod-x');
    const live = inst('i-live', 'pod-y');
    await registry.heartbeat(dead);
    await registry.heartbeat(live);
    for (let i = 0; i < 450; i++) {
      const s = user(`d-${i}`, `u${i % 300}`);
      await connect(dead, s);
      await registry.join(s, `public:r${i % 7}`);
    }
    const keep = user('l-1', 'u1');
    await connect(live, keep);
    await registry.join(keep, 'public:r1');
    expect((await registry.reapSilentInstances(60_000, 5000))).toEqual([]); // nobody is silent that long
    // the dead instance's last beat is old; the live one beats now
    await redis.zadd(keys(prefix).instances, (await redisNow()) - 10_000, dead.id);
    await registry.heartbeat(live);
    const reaped = await registry.reapSilentInstances(5000, 5000);
    expect(reaped).toHaveLength(450);
    expect(new Set(reaped.map((r) => r.pod))).toEqual(new Set(['pod-x']));
    expect(reaped.filter((r) => r.wentOffline)).toHaveLength(299); // u1 stays online through the live socket
    const counts = await model.counts();
    expect(counts).toMatchObject({ connections: 1, usersOnline: 1, rooms: 1 });
    expect(counts.pods.map((p) => p.instance)).toEqual(['i-live']);
    expect(await model.roomMemberCount('public:r1')).toBe(1);
    expect(await redis.exists(keys(prefix).instanceSockets(dead.id), keys(prefix).instance(dead.id))).toBe(0);
  });

  it('stops reaping an instance that beats again between batches, and keeps what it still has', async () => {
    const a = inst('i-stall');
    await registry.heartbeat(a);
    for (let i = 0; i < 500; i++) await connect(a, user(`s-${i}`, `v${i}`));
    await redis.zadd(keys(prefix).instances, (await redisNow()) - 10_000, a.id);
    let batches = 0;
    const reaped = await registry.reapSilentInstances(5000, 5000, {
      onBatch: async () => {
        batches++;
        if (batches === 1) await registry.heartbeat(a); // it wakes up after the first batch
      },
    });
    expect(batches).toBe(1);
    expect(reaped.length).toBeGreaterThan(0);
    expect(reaped.length).toBeLessThan(500);
    const counts = await model.counts();
    expect(counts.connections).toBe(500 - reaped.length);
    expect(counts.pods.map((p) => [p.instance, p.connections])).toEqual([[a.id, 500 - reaped.length]]);
  });

  it('leaves an instance whose clean shutdown could not unregister every socket to the next reaper', async () => {
    const a = inst('i-unclean');
    await registry.heartbeat(a);
    await connect(a, user('x-1', 'xavier'));
    await connect(a, user('x-2', 'yolanda'));
    await registry.disconnect(a, user('x-2', 'yolanda'), []);
    expect(await registry.leaveCluster(a)).toBe('left-to-reaper');
    const reaped = await registry.reapSilentInstances(60_000, 5000); // long bound: marked silent since forever
    expect(reaped.map((r) => r.userId)).toEqual(['xavier']);
    expect((await model.counts())).toMatchObject({ pods: [], connections: 0, usersOnline: 0 });
    const b = inst('i-clean');
    await registry.heartbeat(b);
    expect(await registry.leaveCluster(b)).toBe('removed');
  });
});

describe('restore', () => {
  it('puts back what a live instance holds after it was reaped: sockets, rooms, presence; drops what it no longer has', async () => {
    const a = inst('i-back', 'pod-back');
    await registry.heartbeat(a);
    const s1 = user('b-1', 'bea');
    const s2 = user('b-2', 'bea');
    const s3 = user('b-3', 'cal');
    for (const s of [s1, s2, s3]) await connect(a, s);
    await registry.join(s1, 'public:a');
    await registry.join(s3, 'public:a');
    await registry.setStatus('bea', 'busy');
    await redis.zadd(keys(prefix).instances, 0, a.id);
    expect(await registry.reapSilentInstances(5000, 5000)).toHaveLength(3);
    expect((await model.counts()).connections).toBe(0);

    // it was alive: it beats (unknown), then restores what it holds; meanwhile s3 is gone and s2 joined a room
    expect((await registry.heartbeat(a)).known).toBe(false);
    const restored = await registry.restore(a, [
      { ...s1, connectedAt: 1, rooms: ['public:a'] },
      { ...s2, connectedAt: 2, rooms: ['public:b'] },
    ]);
    expect(restored.registered).toBe(2);
    expect(restored.cameOnline).toEqual([{ userId: 'bea', status: 'busy' }]);
    expect(restored.joined.map((j) => `${j.room}/${j.userId}`).sort()).toEqual(['public:a/bea', 'public:b/bea']);
    expect(await model.counts()).toMatchObject({ connections: 2, usersOnline: 1, rooms: 2 });
    expect((await model.user('bea'))?.status).toBe('busy');

    // a second restore changes nothing; one after Redis lost a write fixes it both ways
    expect((await registry.restore(a, [{ ...s1, connectedAt: 1, rooms: ['public:a'] }, { ...s2, connectedAt: 2, rooms: ['public:b'] }])).registered).toBe(0);
    await connect(a, user('stray', 'dan'));
    await registry.join(s2, 'public:c'); // the registry holds s2 in a room the pod does not
    const fixed = await registry.restore(a, [{ ...s1, connectedAt: 1, rooms: ['public:a'] }, { ...s2, connectedAt: 2, rooms: ['public:b'] }]);
    expect(fixed.dropped.map((d) => d.userId)).toEqual(['dan']);
    expect(fixed.left).toEqual([{ room: 'public:c', userId: 'bea' }]);
    expect(await model.counts()).toMatchObject({ connections: 2, usersOnline: 1, rooms: 2 });
  });

  it('restores thousands of sockets in a few script calls, not a round trip each', async () => {
    const a = inst('i-big');
    await registry.heartbeat(a);
    const held = Array.from({ length: 2000 }, (_, i) => ({ ...user(`big-${i}`, `w${i}`), connectedAt: i, rooms: [`public:g${i % 10}`] }));
    // count what this connection sends while it restores
    const port = redis.stream.localPort;
    const monitor = await redis.monitor();
    const sent: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source.endsWith(`:${port}`)) sent.push(String(args[0]).toLowerCase());
    });
    const result = await registry.restore(a, held);
    await redis.ping();
    monitor.disconnect();
    expect(result.registered).toBe(2000);
    expect((await model.counts()).connections).toBe(2000);
    const scripts = sent.filter((c) => c === 'evalsha' || c === 'eval').length;
    expect(scripts).toBeGreaterThan(0);
    expect(scripts).toBeLessThanOrEqual(2 * (2000 / 200)); // EVALSHA, at worst once more as EVAL
  });
});

describe('heartbeat', () => {
  it('records beats in Redis time and keeps the first start time', async () => {
    const a = inst('i-hb');
    const before = await redisNow();
    const first = await registry.heartbeat(a);
    expect(first.known).toBe(false);
    expect(first.now).toBeGreaterThanOrEqual(before);
    expect(first.startedAt).toBe(first.now);
    const second = await registry.heartbeat(a, first.startedAt);
    expect(second.known).toBe(true);
    expect(second.startedAt).toBe(first.startedAt);
    expect(Number(await redis.zscore(keys(prefix).instances, a.id))).toBe(second.now);
  });
});

describe('the watched index', () => {
  const watched = async () => redis.hgetall(keys(prefix).watched);

  it('says whether an arrival or a departure has anyone to tell, counting each instance once', async () => {
    const a = inst('i-wa');
    const b = inst('i-wb');
    await registry.heartbeat(a);
    await registry.heartbeat(b);
    expect((await connect(a, user('w-1', 'nobody-watches'))).watched).toBe(false);
    expect((await registry.disconnect(a, user('w-1', 'nobody-watches'), []))?.watched).toBe(false);

    expect(await registry.watch(a, ['kim', 'lee'])).toBe(true);
    expect(await registry.watch(a, ['kim'])).toBe(true); // already counted: no change
    expect(await registry.watch(b, ['kim'])).toBe(true);
    expect(await watched()).toEqual({ kim: '2', lee: '1' });

    const first = await connect(b, user('k-1', 'kim'));
    expect(first).toMatchObject({ cameOnline: true, watched: true });
    expect((await connect(a, user('k-2', 'kim'))).cameOnline).toBe(false); // not an arrival: no flag
    expect((await registry.disconnect(b, user('k-1', 'kim'), []))?.wentOffline).toBe(false);

    await registry.unwatch(a, ['kim', 'lee', 'never-watched']);
    expect(await watched()).toEqual({ kim: '1' });
    expect((await registry.disconnect(a, user('k-2', 'kim'), []))).toMatchObject({ wentOffline: true, watched: true });
    await registry.unwatch(b, ['kim']);
    expect(await watched()).toEqual({});
    expect((await connect(a, user('k-3', 'kim'))).watched).toBe(false);
  });

  it('refuses a watch of an instance that is not registered, and changes nothing', async () => {
    expect(await registry.watch(inst('i-gone'), ['kim'])).toBe(false);
    expect(await watched()).toEqual({});
    expect(await redis.exists(keys(prefix).instanceWatched('i-gone'))).toBe(0);
  });

  it('takes back the watches of a reaped instance and of one that leaves cleanly, in batches', async () => {
    const dead = inst('i-wdead');
    const live = inst('i-wlive');
    const leaving = inst('i-wleaving');
    for (const i of [dead, live, leaving]) await registry.heartbeat(i);
    const many = Array.from({ length: 1200 }, (_, i) => `m${i}`);
    await registry.watch(dead, many);
    await registry.watch(live, ['m1']);
    await registry.watch(leaving, ['m2', 'zed']);
    expect(await redis.hlen(keys(prefix).watched)).toBe(1201);

    expect(await registry.leaveCluster(leaving)).toBe('removed');
    expect(await redis.hget(keys(prefix).watched, 'zed')).toBeNull();
    expect(await redis.exists(keys(prefix).instanceWatched(leaving.id))).toBe(0);

    await redis.zadd(keys(prefix).instances, (await redisNow()) - 10_000, dead.id);
    await registry.heartbeat(live);
    await registry.reapSilentInstances(5000, 5000);
    expect(await watched()).toEqual({ m1: '1' });
    expect(await redis.exists(keys(prefix).instanceWatched(dead.id), keys(prefix).instance(dead.id))).toBe(0);
    expect((await model.counts()).pods.map((p) => p.instance)).toEqual([live.id]);
  });

  it('keeps the watches of an instance that beats again while it is being reaped', async () => {
    const a = inst('i-wstall');
    await registry.heartbeat(a);
    for (let i = 0; i < 500; i++) await connect(a, user(`ws-${i}`, `ws${i}`));
    await registry.watch(a, Array.from({ length: 100 }, (_, i) => `s${i}`));
    await redis.zadd(keys(prefix).instances, (await redisNow()) - 10_000, a.id);
    const reaped = await registry.reapSilentInstances(5000, 5000, {
      onBatch: () => registry.heartbeat(a).then(() => undefined), // it wakes up after the first batch
    });
    expect(reaped.length).toBeLessThan(500);
    expect(await redis.hlen(keys(prefix).watched)).toBe(100);
    expect(await redis.scard(keys(prefix).instanceWatched(a.id))).toBe(100);
  });
});
