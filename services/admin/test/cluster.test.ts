import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually, waitFor } from '@switchboard/testkit';
import { startCluster, type Cluster, type ConnectOptions, type TestClient } from '@switchboard/harness';
import { schemas } from '../src/index.js';
import type { StatsResponse, UserResponse } from '../src/schemas.js';
import { assertShape, startAdmin, type ErrorAnswer, type TestAdmin } from './helpers.js';

interface UsersPage {
  users: { userId: string; name?: string; status: string }[];
  nextCursor?: string;
}
interface RoomsPage {
  rooms: { room: string; members: number }[];
  nextCursor?: string;
}
interface RoomDetail extends UsersPage {
  room: string;
  members: number;
}

const room = (name: string) => encodeURIComponent(name);

async function join(client: TestClient, name: string): Promise<void> {
  const ack = await client.emitWithAck('room:join', { room: name });
  if (!ack.ok) throw new Error(`${name}: ${ack.error.message}`);
}

describe('cluster stats and presence through the admin API', () => {
  let cluster: Cluster;
  let admin: TestAdmin;

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
    admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix });
  });
  afterAll(async () => {
    await admin?.close();
    await cluster?.stop();
  });

  // Every test starts from an empty cluster: what one test connects, it leaves behind for no other.
  const open = new Set<TestClient>();
  const connect = async (options: ConnectOptions) => {
    const client = await cluster.connect(options);
    open.add(client);
    return client;
  };
  afterEach(async () => {
    for (const c of open) c.close();
    open.clear();
    await eventually(async () => (await admin.call<StatsResponse>('GET', '/v1/stats')).body.connections === 0);
  });

  const stats = async () => {
    const res = await admin.call<StatsResponse>('GET', '/v1/stats');
    expect(res.status).toBe(200);
    assertShape(schemas.StatsResponse, res.body);
    return res.body;
  };
  const podConnections = (s: StatsResponse) => Object.fromEntries(s.pods.map((p) => [p.id, p.connections]));

  it('reports the live cluster exactly, and follows clients as they leave', async () => {
    const [pod0, pod1] = cluster.gateways.map((g) => g.podId) as [string, string];
    const t0 = Date.now();
    const empty = await stats();
    expect(empty).toMatchObject({ connections: 0, usersOnline: 0, rooms: 0, queue: { waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 } });
    expect(podConnections(empty)).toEqual({ [pod0]: 0, [pod1]: 0 });

    const alicePhone = await connect({ sub: 'alice', name: 'Alice', gateway: 0 });
    const aliceLaptop = await connect({ sub: 'alice', name: 'Alice', gateway: 1 });
    const bob = await connect({ sub: 'bob', gateway: 1 });
    const carol = await connect({ sub: 'carol', gateway: 1, rooms: ['private-ish:*'] });
    await join(alicePhone, 'public:lobby');
    await join(bob, 'public:lobby');
    await join(aliceLaptop, 'public:team/alpha');
    await join(carol, 'private-ish:ops');

    const live = await stats();
    expect(podConnections(live)).toEqual({ [pod0]: 1, [pod1]: 3 });
    expect(live).toMatchObject({ connections: 4, usersOnline: 3, rooms: 3 });
    for (const pod of live.pods) {
      expect(pod.startedAt).toBeGreaterThan(0);
      expect(pod.startedAt).toBeLessThanOrEqual(pod.lastHeartbeatAt);
      expect(Date.now() - pod.lastHeartbeatAt).toBeLessThan(10_000);
    }
    expect(live.pods.every((p) => p.startedAt <= Date.now() && p.startedAt >= t0 - 60_000)).toBe(true);

    carol.close();
    await eventually(async () => {
      const s = await stats();
      return s.connections === 3 && s.usersOnline === 2 && s.rooms === 2 && podConnections(s)[pod1] === 2;
    });
    alicePhone.close();
    const afterPhone = await eventually(async () => {
      const s = await stats();
      return s.connections === 2 ? s : undefined;
    });
    // alice is still online on her laptop; the lobby still has bob
    expect(afterPhone).toMatchObject({ usersOnline: 2, rooms: 2 });
    expect(podConnections(afterPhone)).toEqual({ [pod0]: 0, [pod1]: 2 });

    aliceLaptop.close();
    bob.close();
    await eventually(async () => {
      const s = await stats();
      return s.connections === 0 && s.usersOnline === 0 && s.rooms === 0 && Object.values(podConnections(s)).every((c) => c === 0);
    });
  });

  it('lists online users page by page, with names and statuses', async () => {
    const ids = ['u-dave', 'u-erin', 'u-frank', 'u-gina', 'u-hank'];
    const clients = [];
    for (const [i, id] of ids.entries()) clients.push(await connect({ sub: id, name: id.toUpperCase(), gateway: i % 2 }));
    await clients[1]!.emitWithAck('presence:set', { status: 'busy' });

    const seen: UsersPage['users'] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const res = await admin.call<UsersPage>('GET', `/v1/users?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.status).toBe(200);
      assertShape(schemas.UsersResponse, res.body);
      expect(res.body.users.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.users);
      cursor = res.body.nextCursor;
      if (!cursor) break;
    }
    expect(seen).toEqual([
      { userId: 'u-dave', name: 'U-DAVE', status: 'online' },
      { userId: 'u-erin', name: 'U-ERIN', status: 'busy' },
      { userId: 'u-frank', name: 'U-FRANK', status: 'online' },
      { userId: 'u-gina', name: 'U-GINA', status: 'online' },
      { userId: 'u-hank', name: 'U-HANK', status: 'online' },
    ]);
    const all = await admin.call<UsersPage>('GET', '/v1/users');
    expect(all.body).toEqual({ users: seen });
    for (const c of clients) c.close();
    await eventually(async () => (await admin.call<UsersPage>('GET', '/v1/users')).body.users.length === 0);
  });

  it('shows a user with sockets on both pods and their rooms; remembers them offline; 404 for unknown users', async () => {
    const phone = await connect({ sub: 'ivy@example.com', name: 'Ivy', gateway: 0 });
    const laptop = await connect({ sub: 'ivy@example.com', name: 'Ivy', gateway: 1 });
    await join(phone, 'public:lobby');
    await join(laptop, 'public:team/alpha');
    await laptop.emitWithAck('presence:set', { status: 'away', text: 'in a meeting' });

    const res = await admin.call<UserResponse>('GET', `/v1/users/${encodeURIComponent('ivy@example.com')}`);
    expect(res.status).toBe(200);
    assertShape(schemas.UserResponse, res.body);
    expect(res.body).toMatchObject({
      userId: 'ivy@example.com',
      name: 'Ivy',
      online: true,
      status: 'away',
      text: 'in a meeting',
      rooms: ['public:lobby', 'public:team/alpha'],
    });
    expect(res.body.sockets.map((s) => ({ id: s.id, pod: s.pod })).sort((a, b) => a.pod.localeCompare(b.pod))).toEqual(
      [
        { id: phone.id, pod: cluster.gateways[0]!.podId },
        { id: laptop.id, pod: cluster.gateways[1]!.podId },
      ].sort((a, b) => a.pod.localeCompare(b.pod)),
    );
    for (const s of res.body.sockets) expect(Date.now() - s.connectedAt).toBeLessThan(30_000);

    phone.close();
    laptop.close();
    const offline = await eventually(async () => {
      const r = await admin.call<UserResponse>('GET', '/v1/users/ivy%40example.com');
      return r.body.online === false ? r.body : undefined;
    });
    assertShape(schemas.UserResponse, offline);
    expect(offline).toMatchObject({ userId: 'ivy@example.com', online: false, sockets: [], rooms: [] });
    expect(Date.now() - offline.lastSeen!).toBeLessThan(30_000);

    const unknown = await admin.call<ErrorAnswer>('GET', '/v1/users/nobody-ever');
    expect(unknown.status).toBe(404);
    assertShape(schemas.ErrorResponse, unknown.body);
    expect(unknown.body.error).toEqual({ code: 'NOT_FOUND', message: 'User not found' });
  });

  it('lists rooms with member counts, by prefix and page; shows a room (names with "/" too); 404 for empty rooms', async () => {
    const a = await connect({ sub: 'r-amy', name: 'Amy', gateway: 0 });
    const b = await connect({ sub: 'r-ben', gateway: 1, rooms: ['other:room'] });
    const b2 = await connect({ sub: 'r-ben', gateway: 0 });
    const long = `public:${'x'.repeat(193)}`;
    expect(long).toHaveLength(200);
    for (const name of ['public:a', 'public:team/alpha', 'public:zeta', long]) await join(a, name);
    await join(b, 'public:team/alpha');
    await join(b2, 'public:team/alpha');
    await join(b, 'other:room');

    const all = await admin.call<RoomsPage>('GET', '/v1/rooms');
    expect(all.status).toBe(200);
    assertShape(schemas.RoomsResponse, all.body);
    expect(all.body).toEqual({
      rooms: [
        { room: 'other:room', members: 1 },
        { room: 'public:a', members: 1 },
        { room: 'public:team/alpha', members: 2 },
        { room: long, members: 1 },
        { room: 'public:zeta', members: 1 },
      ],
    });

    const pages: RoomsPage['rooms'] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 10; i++) {
      const res = await admin.call<RoomsPage>('GET', `/v1/rooms?prefix=public%3A&limit=2${cursor ? `&cursor=${room(cursor)}` : ''}`);
      expect(res.status).toBe(200);
      pages.push(...res.body.rooms);
      cursor = res.body.nextCursor;
      if (!cursor) break;
    }
    expect(pages.map((r) => r.room)).toEqual(['public:a', 'public:team/alpha', long, 'public:zeta']);
    expect((await admin.call<RoomsPage>('GET', '/v1/rooms?prefix=public%3At')).body.rooms).toEqual([{ room: 'public:team/alpha', members: 2 }]);
    expect((await admin.call<RoomsPage>('GET', '/v1/rooms?prefix=nothing')).body).toEqual({ rooms: [] });

    // %2F keeps the "/" inside the one path segment
    expect(room('public:team/alpha')).toBe('public%3Ateam%2Falpha');
    const team = await admin.call<RoomDetail>('GET', `/v1/rooms/${room('public:team/alpha')}`);
    expect(team.status).toBe(200);
    assertShape(schemas.RoomResponse, team.body);
    expect({ ...team.body, users: [...team.body.users].sort((x, y) => x.userId.localeCompare(y.userId)) }).toEqual({
      room: 'public:team/alpha',
      members: 2,
      users: [
        { userId: 'r-amy', name: 'Amy', status: 'online' },
        { userId: 'r-ben', status: 'online' },
      ],
    });
    // an unencoded ":" works too, and the longest room name fits
    expect((await admin.call<RoomDetail>('GET', '/v1/rooms/public:a')).body).toMatchObject({ room: 'public:a', members: 1 });
    expect((await admin.call<RoomDetail>('GET', `/v1/rooms/${room(long)}`)).body).toMatchObject({ room: long, members: 1 });

    const empty = await admin.call<ErrorAnswer>('GET', `/v1/rooms/${room('public:nobody/here')}`);
    expect(empty.status).toBe(404);
    expect(empty.body.error).toEqual({ code: 'NOT_FOUND', message: 'Room not found' });

    for (const c of [a, b, b2]) c.close();
    await eventually(async () => (await admin.call<RoomsPage>('GET', '/v1/rooms')).body.rooms.length === 0);
    expect((await admin.call('GET', `/v1/rooms/${room('public:team/alpha')}`)).status).toBe(404);
  });

  it('pages through the members of a big room in id order, exactly `limit` at a time', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `m-${String(i).padStart(2, '0')}`);
    for (const [i, id] of ids.entries()) await join(await connect({ sub: id, gateway: i % 2 }), 'public:big');
    const pages: string[][] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 50; i++) {
      const res = await admin.call<RoomDetail>('GET', `/v1/rooms/public%3Abig?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      assertShape(schemas.RoomResponse, res.body);
      expect(res.body.members).toBe(30);
      pages.push(res.body.users.map((u) => u.userId));
      cursor = res.body.nextCursor;
      if (!cursor) break;
    }
    expect(pages.map((p) => p.length)).toEqual([7, 7, 7, 7, 2]);
    expect(pages.flat()).toEqual(ids);
  });

  it('disconnects every socket of a user on every pod, and only theirs', async () => {
    const phone = await connect({ sub: 'kate', gateway: 0 });
    const laptop = await connect({ sub: 'kate', gateway: 1 });
    const other = await connect({ sub: 'leo', gateway: 0 });
    const otherDisconnects: string[] = [];
    other.on('disconnect', (reason) => otherDisconnects.push(reason));
    const phoneGone = waitFor(phone, 'disconnect', 5000);
    const laptopGone = waitFor(laptop, 'disconnect', 5000);

    const res = await admin.call('POST', '/v1/users/kate/disconnect');
    expect(res.status).toBe(202);
    assertShape(schemas.DisconnectResponse, res.body);
    expect(res.body).toEqual({ userId: 'kate', sockets: 2 });
    expect(await phoneGone).toBe('io server disconnect');
    expect(await laptopGone).toBe('io server disconnect');

    await eventually(async () => (await admin.call<UserResponse>('GET', '/v1/users/kate')).body.online === false);
    const s = await stats();
    expect(s).toMatchObject({ connections: 1, usersOnline: 1 });
    // leo's pod handled the same request as kate's phone: leo's socket is still there and answers
    expect(await other.emitWithAck('session:ping', {})).toMatchObject({ ok: true });
    expect(other.connected).toBe(true);
    expect(otherDisconnects).toEqual([]);

    // nothing left to disconnect
    expect((await admin.call('POST', '/v1/users/kate/disconnect')).body).toEqual({ userId: 'kate', sockets: 0 });
    other.close();
  });
});
