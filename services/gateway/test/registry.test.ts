import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { keys, ReadModel } from '@switchboard/store';
import { collect, eventually } from '@switchboard/testkit';
import { startCluster, type Cluster, type TestClient } from '@switchboard/harness';

/** What the registry must say, computed from the clients the test holds. */
function truth(live: { user: string; pod: string; rooms: Set<string> }[]) {
  const users = new Set(live.map((s) => s.user));
  const rooms = new Map<string, Set<string>>();
  const pods = new Map<string, number>();
  for (const s of live) {
    pods.set(s.pod, (pods.get(s.pod) ?? 0) + 1);
    for (const r of s.rooms) {
      if (!rooms.has(r)) rooms.set(r, new Set());
      rooms.get(r)!.add(s.user);
    }
  }
  return { connections: live.length, usersOnline: users.size, rooms, pods };
}

async function registryView(model: ReadModel, roomNames: string[]) {
  const counts = await model.counts();
  const members = new Map<string, number>();
  for (const r of roomNames) members.set(r, await model.roomMemberCount(r));
  return { counts, members };
}

describe('dead pod reaping (kill -9 of a gateway process)', () => {
  let cluster: Cluster;
  const HEARTBEAT = 500;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'),
      gateways: 3,
      processes: true,
      env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT) },
    });
  });
  afterAll(() => cluster.stop());

  it('removes every socket of the dead pod within three intervals, fixes the counts, and announces real departures once', async () => {
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    const room = 'public:kill';
    const victim = cluster.gateways[0]!;
    const watcher = await cluster.connect({ sub: 'kill-watcher', gateway: 2 });
    await watcher.emitWithAck('room:join', { room });

    const live: { client: TestClient; user: string; pod: string; rooms: Set<string> }[] = [];
    const add = async (user: string, gateway: number, join: boolean) => {
      const client = await cluster.connect({ sub: user, gateway });
      if (join) await client.emitWithAck('room:join', { room });
      live.push({ client, user, pod: client.session.pod, rooms: new Set(join ? [room] : []) });
    };
    const users = Array.from({ length: 40 }, (_, i) => `k${i}`);
    for (const u of users) await add(u, 0, true); // all on the victim
    for (const u of users.slice(0, 8)) await add(u, 1, true); // 8 also on a live pod, in the room
    for (const u of users.slice(8, 12)) await add(u, 1, false); // 4 also on a live pod, not in the room
    const watched = await watcher.emitWithAck('presence:watch', { userIds: users.slice(0, 40) });
    expect(watched.ok && watched.data.presence.every((p) => p.online)).toBe(true);
    // a socket on the victim watches too: the reaper must take the dead pod out of the watched index
    const onVictim = live.find((s) => s.user === 'k39' && s.pod === victim.podId)!.client;
    expect((await onVictim.emitWithAck('presence:watch', { userIds: ['k0', 'kill-victim-only'] })).ok).toBe(true);
    const watchedKey = keys(cluster.keyPrefix).watched;
    expect(await cluster.redis.hmget(watchedKey, 'k0', 'k1', 'kill-victim-only')).toEqual(['2', '1', '1']);
    const left = collect(watcher, 'room:member_left');
    const presence = collect(watcher, 'presence:changed');

    const before = await model.counts();
    expect(before.connections).toBe(live.length + 1);

    const victimInstance = before.pods.find((p) => p.id === victim.podId)!.instance;
    expect(await cluster.redis.scard(keys(cluster.keyPrefix).instanceSockets(victimInstance))).toBe(40);
    const killedAt = Date.now();
    await victim.kill();
    await eventually(async () => (await cluster.redis.scard(keys(cluster.keyPrefix).instanceSockets(victimInstance))) === 0 && !(await model.counts()).pods.some((p) => p.id === victim.podId), {
      timeoutMs: 3 * HEARTBEAT + 500,
      intervalMs: 20,
    });
    const reapedAfter = Date.now() - killedAt;
    expect(reapedAfter).toBeLessThanOrEqual(3 * HEARTBEAT + 100);

    const survivors = [...live.filter((s) => s.pod !== victim.podId), { user: 'kill-watcher', pod: watcher.session.pod, rooms: new Set([room]) }];
    const want = truth(survivors);
    const { counts, members } = await registryView(model, [room]);
    expect(counts.connections).toBe(want.connections);
    expect(counts.usersOnline).toBe(want.usersOnline);
    expect(counts.rooms).toBe(want.rooms.size);
    expect(members.get(room)).toBe(want.rooms.get(room)!.size);
    expect(new Map(counts.pods.map((p) => [p.id, p.connections]))).toEqual(want.pods);

    // departures: users 12..39 had no other socket; 0..7 stay in the room; 8..11 stay online
    const gone = users.slice(12);
    const leftRoom = users.slice(8);
    await eventually(() => left.length >= leftRoom.length && presence.length >= gone.length, { timeoutMs: 2000 });
    // a marker event after the reap proves no late duplicates were on their way
    await watcher.emitWithAck('presence:watch', { userIds: ['kill-marker'] });
    await cluster.connect({ sub: 'kill-marker', gateway: 1 });
    await eventually(() => presence.some((p) => p.userId === 'kill-marker'));
    presence.pop();
    expect(left.map((l) => l.userId).sort()).toEqual([...leftRoom].sort());
    expect(presence.filter((p) => !p.online).map((p) => p.userId).sort()).toEqual([...gone].sort());
    expect(presence.filter((p) => p.online)).toEqual([]);
    const detail = await model.user('k20');
    expect(detail).toMatchObject({ online: false });
    expect(detail?.lastSeen).toBeGreaterThanOrEqual(killedAt - 100);
    expect(await cluster.redis.hmget(watchedKey, 'k0', 'k1', 'kill-victim-only')).toEqual(['1', '1', null]);
    expect(await cluster.redis.exists(keys(cluster.keyPrefix).instanceWatched(victimInstance))).toBe(0);
  });
});

describe('registry totals under random churn', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 3, env: { RATE_LIMIT_PER_SEC: '100000', RATE_LIMIT_BURST: '100000' } });
  });
  afterAll(() => cluster.stop());

  it('equals the ground truth after 1,000 random connect/join/leave/disconnect operations over three pods', async () => {
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const roomNames = Array.from({ length: 8 }, (_, i) => `public:churn-${i}`);
    const live: { client: TestClient; user: string; pod: string; rooms: Set<string> }[] = [];
    const counts = { connect: 0, join: 0, leave: 0, disconnect: 0 };

    for (let op = 0; op < 1000; op++) {
      const kind = live.length < 5 ? 0 : rand(10);
      if (kind < 3 && live.length < 60) {
        const user = `c${rand(25)}`;
        const client = await cluster.connect({ sub: user, gateway: rand(3) });
        live.push({ client, user, pod: client.session.pod, rooms: new Set() });
        counts.connect++;
      } else if (kind < 6) {
        const s = live[rand(live.length)]!;
        const room = roomNames[rand(roomNames.length)]!;
        const ack = await s.client.emitWithAck('room:join', { room });
        expect(ack.ok).toBe(true);
        s.rooms.add(room);
        counts.join++;
      } else if (kind < 8) {
        const s = live[rand(live.length)]!;
        const room = [...s.rooms][rand(Math.max(1, s.rooms.size))] ?? roomNames[0]!;
        await s.client.emitWithAck('room:leave', { room });
        s.rooms.delete(room);
        counts.leave++;
      } else {
        const [s] = live.splice(rand(live.length), 1);
        s!.client.close();
        counts.disconnect++;
      }
    }
    expect(Object.values(counts).every((n) => n > 50)).toBe(true);

    const want = truth(live);
    await eventually(async () => (await model.counts()).connections === want.connections, { timeoutMs: 10_000 });
    const { counts: got, members } = await registryView(model, roomNames);
    expect(got.connections).toBe(want.connections);
    expect(got.usersOnline).toBe(want.usersOnline);
    expect(got.rooms).toBe(want.rooms.size);
    for (const r of roomNames) expect({ r, n: members.get(r) }).toEqual({ r, n: want.rooms.get(r)?.size ?? 0 });
    for (const p of got.pods) expect({ pod: p.id, n: p.connections }).toEqual({ pod: p.id, n: want.pods.get(p.id) ?? 0 });
    const online = [];
    let cursor: string | undefined;
    for (let i = 0; i < 100; i++) {
      const page = await model.onlineUsers(cursor, 7);
      online.push(...page.items);
      cursor = page.nextCursor;
      if (!cursor) break;
    }
    expect(online.sort()).toEqual([...new Set(live.map((s) => s.user))].sort());

    // everyone leaves: every count returns to zero
    for (const s of live.splice(0)) s.client.close();
    await eventually(async () => {
      const c = await model.counts();
      return c.connections === 0 && c.usersOnline === 0 && c.rooms === 0 && c.pods.every((p) => p.connections === 0);
    }, { timeoutMs: 10_000 });
  });
});
