import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually, mintRoomToken } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';
import {
  compareMessageIds,
  type RoomHistoryResult,
  type ResumeTarget,
  type SessionReady,
  type SwitchboardClientError,
} from '../src/index.js';
import { clientFactory, dropConnection, next, record } from './helpers.js';

describe('resume after a reconnect', () => {
  let cluster: Cluster;
  const clients = clientFactory(() => cluster);

  beforeAll(async () => {
    // publishers here send more than the default per-socket event rate
    cluster = await startCluster({ redis: inject('redisUrl'),
      gateways: 2,
      env: { RATE_LIMIT_PER_SEC: '10000', RATE_LIMIT_BURST: '10000' },
    });
  });
  afterEach(() => clients.closeAll());
  afterAll(() => cluster.stop());

  it('delivers what was published during the outage once, in order, before what comes live', async () => {
    const room = 'public:resume';
    const alice = await clients.connect('alice', {
      gateway: 0,
      // long enough for the publishes below to land while alice is away
      socket: { reconnectionDelay: 300, reconnectionDelayMax: 300, randomizationFactor: 0 },
    });
    const bob = await clients.connect('bob', { gateway: 1 });
    await alice.join(room);
    await bob.join(room);
    const got = record(alice, 'room:message');
    const gaps: RoomHistoryResult[] = [];
    alice.onGap((_room, result) => gaps.push(result));

    await bob.publish(room, 1);
    await bob.publish(room, 2);
    await eventually(() => got.length === 2);

    const before = alice.session!;
    await dropConnection(cluster, alice);
    for (let n = 3; n <= 7; n++) await bob.publish(room, n);

    // publish the moment alice is back, racing her re-join: live, replayed, or both
    let racing: Promise<unknown> | undefined;
    const back = new Promise<SessionReady>((resolve) => {
      const off = alice.on('session:ready', (s) => {
        off();
        racing = bob.publish(room, 8);
        resolve(s);
      });
    });
    const after = await back;
    expect(after.socketId).not.toBe(before.socketId);
    await racing;
    await bob.publish(room, 9);
    await bob.publish(room, 10);

    await eventually(() => got.length >= 10);
    // alice is a member again: her own message reaches bob
    const atBob = next(bob, 'room:message');
    await alice.publish(room, 'back');
    expect((await atBob).data).toBe('back');
    const end = next(alice, 'room:message');
    await bob.publish(room, 11);
    await end;

    expect(got.map((m) => m.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const ids = got.map((m) => m.id);
    expect([...ids].sort(compareMessageIds)).toEqual(ids);
    expect(gaps).toEqual([]);
  });

  it('reports a gap, not a partial replay, when the history no longer covers the outage', async () => {
    const room = 'public:resume-gap';
    // no automatic reconnect: the test decides when alice comes back
    const alice = await clients.connect('gap-alice', { socket: { reconnection: false } });
    const bob = await clients.connect('gap-bob', { gateway: 1 });
    await alice.join(room);
    await bob.join(room);
    const got = record(alice, 'room:message');
    const gaps: { room: string; result: RoomHistoryResult }[] = [];
    alice.onGap((r, result) => gaps.push({ room: r, result }));

    await bob.publish(room, 0);
    await eventually(() => got.length === 1);
    await dropConnection(cluster, alice);
    // more than a re-join replays (100)
    for (let n = 1; n <= 120; n++) await bob.publish(room, n);

    alice.socket.connect();
    await alice.ready();
    await eventually(() => gaps.length === 1);
    expect(gaps[0]!.room).toBe(room);
    expect(gaps[0]!.result.recovered).toBe(false);
    expect(gaps[0]!.result.messages.map((m) => m.data)).toEqual(Array.from({ length: 100 }, (_, i) => 21 + i));

    const live = next(alice, 'room:message');
    await bob.publish(room, 'live');
    expect((await live).data).toBe('live');
    // nothing of the gap went to room:message listeners
    expect(got.map((m) => m.data)).toEqual([0, 'live']);
  });

  it('catches up a room whose first message came while disconnected', async () => {
    const room = 'public:resume-quiet';
    const alice = await clients.connect('quiet-alice', { socket: { reconnection: false } });
    const bob = await clients.connect('quiet-bob', { gateway: 1 });
    await alice.join(room);
    await bob.join(room);
    const got = record(alice, 'room:message');

    await dropConnection(cluster, alice);
    await bob.publish(room, 'first');
    await bob.publish(room, 'second');
    alice.socket.connect();
    await eventually(() => got.length === 2);
    expect(got.map((m) => m.data)).toEqual(['first', 'second']);
  });

  it('joins private rooms again with a fresh room token, and reports a room it cannot get back', async () => {
    const ok = 'private:resume-ok';
    const lost = 'private:resume-lost';
    const alice = await clients.connect('priv-alice', { socket: { reconnection: false } });
    const issued: string[] = [];
    await alice.join(ok, {
      token: async () => {
        issued.push(ok);
        return mintRoomToken('priv-alice', ok);
      },
    });
    let lostCalls = 0;
    await alice.join(lost, {
      token: async () => (lostCalls++ === 0 ? mintRoomToken('priv-alice', lost) : 'revoked'),
    });
    const failures: { error: SwitchboardClientError; target: ResumeTarget }[] = [];
    alice.onResumeError((error, target) => failures.push({ error, target }));

    await dropConnection(cluster, alice);
    alice.socket.connect();
    await eventually(() => failures.length === 1);
    expect(failures[0]!.target).toEqual({ room: lost });
    expect(failures[0]!.error.code).toBe('FORBIDDEN');
    expect(issued).toHaveLength(2);

    // back in the first room, not in the second
    const bob = await clients.connect('priv-bob', { gateway: 1 });
    await bob.join(ok, { token: await mintRoomToken('priv-bob', ok) });
    const atBob = next(bob, 'room:message');
    await alice.publish(ok, 'still here');
    expect((await atBob).data).toBe('still here');
    await expect(alice.publish(lost, 'x')).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });

  it('watches the same users again and reports what changed meanwhile', async () => {
    const watcher = await clients.connect('rw-watcher', { socket: { reconnection: false } });
    const [initially] = await watcher.watch(['rw-carol']);
    expect(initially).toMatchObject({ online: false });
    const changes = record(watcher, 'presence:changed');

    await dropConnection(cluster, watcher);
    const carol = await clients.connect('rw-carol', { gateway: 1 });
    watcher.socket.connect();
    await eventually(() => changes.length === 1);
    expect(changes[0]).toMatchObject({ userId: 'rw-carol', online: true, status: 'online' });

    // and the server-side watch is back
    const away = next(watcher, 'presence:changed');
    await carol.setPresence('away');
    expect(await away).toMatchObject({ userId: 'rw-carol', status: 'away' });
  });

  it('forgets rooms after a reconnect when resume is off', async () => {
    const room = 'public:no-resume';
    const alice = await clients.connect('nr-alice', { resume: false, socket: { reconnection: false } });
    const bob = await clients.connect('nr-bob', { gateway: 1 });
    await alice.join(room);
    await bob.join(room);
    await dropConnection(cluster, alice);
    alice.socket.connect();
    await alice.ready();
    await expect(alice.publish(room, 'x')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await eventually(async () => (await bob.members(room)).members.length === 1);
    expect((await bob.members(room)).members.map((m) => m.userId)).toEqual(['nr-bob']);
  });

  it('hands a notification delivered twice to listeners once', async () => {
    const client = await clients.connect('dup');
    const got = record(client, 'notification');
    const n = { id: 'n-dup', type: 'mention', title: 'Hi', ts: Date.now() };
    await cluster.emitter.to('user:dup').emit('notification', n);
    await cluster.emitter.to('user:dup').emit('notification', n);
    await cluster.emitter.to('user:dup').emit('notification', { ...n, id: 'n-marker' });
    // the marker, sent last on the same connection, arrives last
    await eventually(() => got.some((x) => x.id === 'n-marker'));
    expect(got.map((x) => x.id)).toEqual(['n-dup', 'n-marker']);
    expect(got[0]).toEqual(n);
  });
});
