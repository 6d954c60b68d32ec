import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { keys, ReadModel, Registry } from '@switchboard/store';
import { collect, eventually, scrapeMetric, startRedis, waitFor, type RedisHandle } from '@switchboard/testkit';
import { startCluster, type Cluster, type ClusterGateway, type TestClient } from '@switchboard/harness';

const HEARTBEAT = 500;
/** A silent instance is reaped within three intervals; some slack for a loaded machine. */
const REAP_BOUND = 3 * HEARTBEAT + 1000;

const reaps = (g: ClusterGateway) => scrapeMetric(`${g.opsUrl}/metrics`, 'switchboard_registry_operation_duration_seconds_count', { op: 'reap' });
const reapedSockets = (g: ClusterGateway) => scrapeMetric(`${g.opsUrl}/metrics`, 'switchboard_registry_reaped_sockets_total');

/** Waits until every gateway has run its reaper `n` more times: time passed, with the reapers at work. */
async function reaperRounds(gateways: ClusterGateway[], n: number): Promise<void> {
  const start = await Promise.all(gateways.map(reaps));
  await eventually(async () => (await Promise.all(gateways.map(reaps))).every((c, i) => c >= start[i]! + n), {
    timeoutMs: 20_000,
    what: `${n} reaper rounds on every gateway`,
  });
}

describe('a gateway killed and restarted under the same POD_ID', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'),
      gateways: 2,
      processes: true,
      env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT), MAX_CONNECTIONS_PER_USER: '1' },
    });
  });
  afterAll(() => cluster.stop());

  it('is a new instance: the old one is reaped with the events of a clean disconnect, and no user piles up ghost sockets', async () => {
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    const room = 'public:restart';
    const gw = cluster.gateways[0]!;
    const watcher = await cluster.connect({ sub: 'rs-watcher', gateway: 1 });
    await watcher.emitWithAck('room:join', { room });
    await watcher.emitWithAck('presence:watch', { userIds: ['rs-stays', 'rs-gone'] });
    const left = collect(watcher, 'room:member_left');
    const presence = collect(watcher, 'presence:changed');

    for (let restart = 1; restart <= 3; restart++) {
      const stays = await cluster.connect({ sub: 'rs-stays', gateway: 0 });
      const gone = await cluster.connect({ sub: 'rs-gone', gateway: 0 });
      for (const c of [stays, gone]) expect((await c.emitWithAck('room:join', { room })).ok).toBe(true);
      const oldInstance = (await model.counts()).pods.find((p) => p.id === gw.podId)!.instance;
      left.length = 0;
      presence.length = 0;

      await gw.kill();
      await gw.respawn(); // same POD_ID and port, within a heartbeat
      stays.close();
      gone.close();

      // the old instance's sockets are reaped within the bound, with the departures a disconnect sends
      await eventually(async () => !(await model.counts()).pods.some((p) => p.instance === oldInstance), {
        timeoutMs: REAP_BOUND,
        what: `the old instance of ${gw.podId} reaped (restart ${restart})`,
      });
      await eventually(() => left.length === 2 && presence.filter((p) => !p.online).length === 2, { timeoutMs: 2000 });
      expect(left.map((l) => l.userId).sort()).toEqual(['rs-gone', 'rs-stays']);

      // one instance per pod, exact counts, and the user (limit: one connection) can connect again
      const counts = await model.counts();
      expect(counts.pods.map((p) => p.id).sort()).toEqual([cluster.gateways[0]!.podId, cluster.gateways[1]!.podId].sort());
      expect(counts.connections).toBe(1);
      expect(await model.roomMemberCount(room)).toBe(1);
      const again = await cluster.connect({ sub: 'rs-stays', gateway: 0 });
      again.close();
      await eventually(async () => (await model.userSocketCount('rs-stays')) === 0);
    }
  });
});

describe('a clean shutdown that cannot reach Redis', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2, env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT) } });
  });
  afterAll(() => cluster.stop());

  it('leaves the instance to the reaper, which removes its sockets with the usual departures', async () => {
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    const room = 'public:unclean';
    const watcher = await cluster.connect({ sub: 'uc-watcher', gateway: 1 });
    await watcher.emitWithAck('room:join', { room });
    await watcher.emitWithAck('presence:watch', { userIds: ['uc-1', 'uc-2'] });
    for (const u of ['uc-1', 'uc-2']) {
      const c = await cluster.connect({ sub: u, gateway: 0 });
      await c.emitWithAck('room:join', { room });
    }
    const left = collect(watcher, 'room:member_left');
    const presence = collect(watcher, 'presence:changed');
    const gw = cluster.gateways[0]!;
    const instance = gw.gateway!.instanceId;

    gw.clients!.commands.disconnect(); // every unregistration and the leave itself fail
    await gw.stop();
    expect((await model.counts()).pods.some((p) => p.instance === instance)).toBe(true);

    await eventually(async () => !(await model.counts()).pods.some((p) => p.instance === instance), { timeoutMs: REAP_BOUND });
    // (the online presence of their arrival may reach the watcher late: only the departures count)
    const offline = () => presence.filter((p) => !p.online);
    await eventually(() => left.length === 2 && offline().length === 2, { timeoutMs: 2000 });
    expect(offline().map((p) => p.userId).sort()).toEqual(['uc-1', 'uc-2']);
    expect(await model.counts()).toMatchObject({ connections: 1, usersOnline: 1 });
    expect(await cluster.redis.exists(keys(cluster.keyPrefix).instanceSockets(instance))).toBe(0);
  });
});

describe('a gateway reaped while alive (a stall longer than the bound)', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'),
      gateways: 2,
      processes: true,
      env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT) },
    });
  });
  afterAll(() => cluster.stop());

  it('puts all its sockets back in a few calls, tells watchers and members they are back, and is not reaped again', async () => {
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    const room = 'public:stall';
    const [stalled, other] = cluster.gateways as [ClusterGateway, ClusterGateway];
    const watcher = await cluster.connect({ sub: 'st-watcher', gateway: 1 });
    await watcher.emitWithAck('room:join', { room });
    const users = Array.from({ length: 300 }, (_, i) => `st-${i}`);
    const watched = users.slice(0, 50);
    await watcher.emitWithAck('presence:watch', { userIds: watched });
    const held: TestClient[] = [];
    for (let i = 0; i < users.length; i += 25) {
      const batch = await Promise.all(users.slice(i, i + 25).map((sub) => cluster.connect({ sub, gateway: 0 })));
      await Promise.all(batch.map((c, j) => (i + j < 100 ? c.emitWithAck('room:join', { room }) : undefined)));
      held.push(...batch);
    }
    const before = await model.counts();
    expect(before.connections).toBe(301);
    // a socket on the stalled pod watches someone not connected yet
    const lateWatcher = held[0]!;
    expect((await lateWatcher.emitWithAck('presence:watch', { userIds: ['st-late'] })).ok).toBe(true);
    const watchedLate = () => cluster.redis.hget(keys(cluster.keyPrefix).watched, 'st-late');
    expect(await watchedLate()).toBe('1');
    const presence = collect(watcher, 'presence:changed');
    const joined = collect(watcher, 'room:member_joined');
    const left = collect(watcher, 'room:member_left');

    stalled.pause();
    await eventually(async () => (await model.counts()).connections === 1, { timeoutMs: REAP_BOUND, what: 'the stalled pod reaped' });
    await eventually(() => presence.filter((p) => !p.online).length === 50 && left.length === 100, { timeoutMs: 2000 });
    const reapedByOther = await reapedSockets(other);
    expect(reapedByOther).toBe(300);
    await eventually(async () => (await watchedLate()) === null, { what: 'the stalled pod out of the watched index' });

    stalled.resume();
    await eventually(async () => (await model.counts()).connections === 301, { timeoutMs: 3 * HEARTBEAT + 1000, what: 'the sockets back' });
    await eventually(() => presence.filter((p) => p.online).length === 50 && joined.length === 100, { timeoutMs: 2000 });
    expect(new Set(joined.map((j) => j.userId))).toEqual(new Set(users.slice(0, 100)));
    const after = await model.counts();
    expect(after).toMatchObject({ connections: 301, usersOnline: 301, rooms: 1 });
    expect(await model.roomMemberCount(room)).toBe(101);

    // it stays: several reaper rounds later nothing more was reaped, and every client still works
    await reaperRounds([other], 4);
    expect(await reapedSockets(other)).toBe(reapedByOther);
    expect((await model.counts()).connections).toBe(301);
    const probe = held[3]!;
    expect((await probe.emitWithAck('room:publish', { room, data: 'still here' })).ok).toBe(true);
    // its watches are back too: an arrival elsewhere reaches its watcher
    await eventually(async () => (await watchedLate()) === '1', { what: 'the watch back in the index' });
    const late = waitFor(lateWatcher, 'presence:changed');
    await cluster.connect({ sub: 'st-late', gateway: 1 });
    expect(await late).toEqual({ userId: 'st-late', online: true, status: 'online' });
  });
});

describe('pods whose clocks disagree', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'),
      gateways: 2,
      processes: true,
      env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT) },
      // gateway 1's clock runs 10 s ahead: with ages measured on each pod's own clock it would take gateway 0 for dead
      nodeArgs: (i) => (i === 1 ? ['--import', 'data:text/javascript,const n=Date.now;Date.now=()=>n()+10000;'] : []),
    });
  });
  afterAll(() => cluster.stop());

  it('measure ages in Redis time: nobody is reaped', async () => {
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    const a = await cluster.connect({ sub: 'clock-a', gateway: 0 });
    const b = await cluster.connect({ sub: 'clock-b', gateway: 1 });
    await b.emitWithAck('room:join', { room: 'public:clock' });
    await a.emitWithAck('room:join', { room: 'public:clock' });
    const left = collect(b, 'room:member_left');
    await reaperRounds(cluster.gateways, 4);
    expect(await Promise.all(cluster.gateways.map(reapedSockets))).toEqual([0, 0]);
    expect(left).toEqual([]);
    expect(await model.counts()).toMatchObject({ connections: 2, usersOnline: 2 });
  });
});

describe('a Redis outage of a few seconds', () => {
  let redis: RedisHandle;
  let cluster: Cluster;
  beforeAll(async () => {
    redis = await startRedis({ fresh: true, appendonly: true });
    cluster = await startCluster({ redis: redis.url, gateways: 3, processes: true, env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT) } });
  });
  afterAll(async () => {
    await cluster?.stop();
    await redis?.stop();
  });

  it('makes no pod take the others for dead: no false departures, and the counts hold', async () => {
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    const room = 'public:outage';
    const watcher = await cluster.connect({ sub: 'ro-watcher', gateway: 2 });
    await watcher.emitWithAck('room:join', { room });
    const users = ['ro-0', 'ro-1', 'ro-2', 'ro-3'];
    await watcher.emitWithAck('presence:watch', { userIds: users });
    for (const [i, u] of users.entries()) {
      const c = await cluster.connect({ sub: u, gateway: i % 2 });
      await c.emitWithAck('room:join', { room });
    }
    const left = collect(watcher, 'room:member_left');
    const presence = collect(watcher, 'presence:changed');
    await reaperRounds(cluster.gateways, 1);

    const failures = () => Promise.all(cluster.gateways.map((g) => scrapeMetric(`${g.opsUrl}/metrics`, 'switchboard_registry_heartbeat_failures_total')));
    const failedBefore = await failures();
    await redis.kill!();
    try {
      // down for long enough that every heartbeat is older than the reaping bound
      await eventually(async () => (await failures()).every((f, i) => f >= failedBefore[i]! + 5), { timeoutMs: 20_000, what: 'heartbeats failing' });
    } finally {
      await redis.start!();
    }

    await reaperRounds(cluster.gateways, 4);
    expect(await Promise.all(cluster.gateways.map(reapedSockets))).toEqual([0, 0, 0]);
    expect(left).toEqual([]);
    expect(presence.filter((p) => !p.online)).toEqual([]);
    expect(await model.counts()).toMatchObject({ connections: 5, usersOnline: 5, rooms: 1 });
    expect(await model.roomMemberCount(room)).toBe(5);
  });
});

describe('heartbeats that fail for a while without the client reconnecting (a failover it did not see)', () => {
  let redis: RedisHandle;
  let ops: Redis;
  let cluster: Cluster;
  beforeAll(async () => {
    redis = await startRedis({ fresh: true });
    ops = new Redis(redis.url, { lazyConnect: true });
    await ops.connect();
    // an operator account that keeps every right while the services' default user loses scripts
    await ops.acl('SETUSER', 'ops', 'on', '>ops-password-for-tests', '~*', '&*', '+@all');
    await ops.auth('ops', 'ops-password-for-tests');
    cluster = await startCluster({ redis: redis.url, gateways: 1, processes: true, env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT) } });
  });
  afterAll(async () => {
    await cluster?.stop();
    ops?.disconnect();
    await redis?.stop();
  });

  it('puts back what the registry lost meanwhile, with the events of it, once heartbeats pass again', async () => {
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    const room = 'public:unseen-failover';
    const watcher = await cluster.connect({ sub: 'uf-watcher' });
    await watcher.emitWithAck('room:join', { room });
    const lost = await cluster.connect({ sub: 'uf-lost' });
    await lost.emitWithAck('room:join', { room });
    const kept = await cluster.connect({ sub: 'uf-kept' });
    await kept.emitWithAck('room:join', { room });
    expect(await model.counts()).toMatchObject({ connections: 3, usersOnline: 3 });

    const joined = collect(watcher, 'room:member_joined');
    const gw = cluster.gateways[0]!;
    const failures = () => scrapeMetric(`${gw.opsUrl}/metrics`, 'switchboard_registry_heartbeat_failures_total');
    const failedBefore = await failures();
    await ops.acl('SETUSER', 'default', '-eval', '-evalsha');
    try {
      await eventually(async () => (await failures()) >= failedBefore + 2, { timeoutMs: 10_000, what: 'heartbeats failing' });
      // meanwhile the Redis that answers lost one socket's registration (as a promoted replica that
      // missed the last writes would), while the instance itself is still known
      const [instanceId] = await ops.zrange(keys(cluster.keyPrefix).instances, 0, -1);
      const pod = (await ops.hget(keys(cluster.keyPrefix).instance(instanceId!), 'pod'))!;
      await new Registry(ops, cluster.keyPrefix).disconnect({ id: instanceId!, pod }, { socketId: lost.id!, userId: 'uf-lost', guest: false }, [room]);
      expect(await model.counts()).toMatchObject({ connections: 2, usersOnline: 2 });
    } finally {
      await ops.acl('SETUSER', 'default', '+@all');
    }

    await eventually(async () => (await model.counts()).connections === 3, { timeoutMs: 3 * HEARTBEAT + 2000, what: 'the lost socket back' });
    expect(await model.counts()).toMatchObject({ connections: 3, usersOnline: 3, rooms: 1 });
    expect(await model.roomMemberCount(room)).toBe(3);
    expect((await model.presence(['uf-lost']))[0]?.online).toBe(true);
    await eventually(() => joined.some((j) => j.userId === 'uf-lost' && j.room === room), { timeoutMs: 2000, what: 'members told it is back' });
    // the client never noticed: it still publishes to the room and the others receive it
    const got = collect(kept, 'room:message');
    expect((await lost.emitWithAck('room:publish', { room, data: 'still here' })).ok).toBe(true);
    await eventually(() => got.some((m) => m.data === 'still here'), { timeoutMs: 2000 });
  });
});
