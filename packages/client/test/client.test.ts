import { afterAll, afterEach, beforeAll, describe, expect, expectTypeOf, inject, it } from 'vitest';
import { eventually } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';
import { InboxStore, keys } from '@switchboard/store';
import {
  SwitchboardClientError,
  type PresenceInfo,
  type RoomJoinResult,
  type RoomMessage,
  type SwitchboardClient,
} from '../src/index.js';
import { clientFactory, dropConnection, next, record } from './helpers.js';

async function rejection(promise: Promise<unknown>): Promise<SwitchboardClientError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(SwitchboardClientError);
    return err as SwitchboardClientError;
  }
  throw new Error('expected a rejection');
}

describe('client SDK on a two-gateway cluster', () => {
  let cluster: Cluster;
  const clients = clientFactory(() => cluster);

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
  });
  afterEach(() => clients.closeAll());
  afterAll(() => cluster.stop());

  it('joins, publishes and receives a room message across pods', async () => {
    const room = 'public:sdk-chat';
    const alice = await clients.connect({ sub: 'alice', name: 'Alice' }, { gateway: 0 });
    const bob = await clients.connect('bob', { gateway: 1 });
    expect(alice.session?.pod).not.toBe(bob.session?.pod);

    expect(await alice.join(room)).toEqual({ room, members: 1 });
    expect(await bob.join(room)).toEqual({ room, members: 2 });
    const aliceGot = record(alice, 'room:message');
    const atBob = next(bob, 'room:message');

    const ack = await alice.publish(room, { text: 'hello' }, { type: 'chat' });
    expect(ack.id).toMatch(/^\d+-\d+$/);
    expect(await atBob).toEqual({
      room,
      id: ack.id,
      ts: ack.ts,
      type: 'chat',
      from: { userId: 'alice', name: 'Alice' },
      data: { text: 'hello' },
    });

    // the sender does not get its own message back: bob's reply is the first thing alice sees
    const reply = next(alice, 'room:message');
    await bob.publish(room, 'hi alice');
    expect((await reply).data).toBe('hi alice');
    expect(aliceGot.map((m) => m.data)).toEqual(['hi alice']);
  });

  it('sends calls made before the connection is up once it is', async () => {
    const early = clients.create({ token: await cluster.token({ sub: 'early' }) });
    const joined = early.join('public:sdk-early');
    expect(early.session).toBeUndefined();
    expect(await joined).toEqual({ room: 'public:sdk-early', members: 1 });
    expect(early.session?.userId).toBe('early');
  });

  it('lists members, reads history and relays typing', async () => {
    const room = 'public:sdk-members';
    const carol = await clients.connect({ sub: 'carol', name: 'Carol' }, { gateway: 0 });
    const dan = await clients.connect('dan', { gateway: 1 });
    await carol.join(room);
    await dan.join(room);

    const { members } = await carol.members(room);
    expect(members.map((m) => m.userId).sort()).toEqual(['carol', 'dan']);
    expect(members.find((m) => m.userId === 'carol')).toEqual({ userId: 'carol', name: 'Carol', status: 'online' });

    const ids: string[] = [];
    for (const n of [1, 2, 3]) ids.push((await dan.publish(room, n)).id);
    const latest = await carol.history(room, { limit: 2 });
    expect(latest).toEqual({ recovered: true, messages: [expect.objectContaining({ data: 2 }), expect.objectContaining({ data: 3 })] });
    const after = await carol.history(room, { since: ids[0] });
    expect(after.messages.map((m) => m.id)).toEqual(ids.slice(1));

    const typing = next(dan, 'room:typing');
    carol.typing(room, true);
    expect(await typing).toEqual({ room, userId: 'carol', typing: true });
  });

  it('watches presence across pods and stops on unwatch', async () => {
    const watcher = await clients.connect('watcher', { gateway: 0 });
    const [before] = await watcher.watch(['erin']);
    expect(before).toMatchObject({ userId: 'erin', online: false });

    const online = next(watcher, 'presence:changed');
    const erin = await clients.connect('erin', { gateway: 1 });
    expect(await online).toMatchObject({ userId: 'erin', online: true, status: 'online' });

    const away = next(watcher, 'presence:changed');
    await erin.setPresence('away', 'lunch');
    expect(await away).toEqual({ userId: 'erin', online: true, status: 'away' });

    // a second watched user on erin's pod marks the end: its change is sent after erin's
    const marker = await clients.connect('erin-marker', { gateway: 1 });
    await watcher.watch(['erin-marker']);
    await watcher.unwatch(['erin']);
    const seen = record(watcher, 'presence:changed');
    const end = next(watcher, 'presence:changed');
    await erin.setPresence('busy');
    await marker.setPresence('away');
    expect(await end).toMatchObject({ userId: 'erin-marker', status: 'away' });
    expect(seen.map((p) => p.userId)).toEqual(['erin-marker']);
  });

  it('lists the inbox and marks notifications read', async () => {
    const inbox = new InboxStore(cluster.redis, keys(cluster.keyPrefix));
    const ts = Date.now();
    await inbox.add(['frank'], { id: 'n-a', type: 'mention', title: 'A', ts });
    await inbox.add(['frank'], { id: 'n-b', type: 'mention', title: 'B', ts: ts + 1 });
    const frank = await clients.connect('frank');
    expect(frank.session?.unread).toBe(2);

    const list = await frank.notifications({ limit: 10 });
    expect(list.unread).toBe(2);
    expect(list.items.map((i) => [i.id, i.read])).toEqual([
      ['n-b', false],
      ['n-a', false],
    ]);
    expect(await frank.markRead(['n-a'])).toBe(1);
    expect((await frank.notifications({ unreadOnly: true })).items.map((i) => i.id)).toEqual(['n-b']);
    expect(await frank.markRead('all')).toBe(0);
  });

  it('measures a round trip with ping', async () => {
    const client = await clients.connect('pinger');
    const ms = await client.ping();
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(5000);
  });

  it('stops calling a listener once it is removed', async () => {
    const room = 'public:sdk-off';
    const a = await clients.connect('off-a');
    const b = await clients.connect('off-b', { gateway: 1 });
    await a.join(room);
    await b.join(room);
    const first: unknown[] = [];
    const off = a.on('room:message', (m) => first.push(m.data));
    const one = next(a, 'room:message');
    await b.publish(room, 1);
    await one;
    off();
    const two = next(a, 'room:message');
    await b.publish(room, 2);
    await two;
    expect(first).toEqual([1]);
  });

  it('turns error answers into SwitchboardClientError with the server code', async () => {
    const client = await clients.connect('mallory');

    const userRoom = await rejection(client.join('user:x'));
    expect(userRoom.code).toBe('FORBIDDEN');
    expect(userRoom.name).toBe('SwitchboardClientError');
    expect(userRoom.message).toMatch(/user rooms/i);

    const badName = await rejection(client.join('no spaces allowed'));
    expect(badName.code).toBe('INVALID_PAYLOAD');
    expect(badName.details).toEqual({ path: '/room' });

    const notMember = await rejection(client.publish('public:never-joined', 'x'));
    expect(notMember.code).toBe('FORBIDDEN');

    const privateRoom = await rejection(client.join('private:club', { token: 'not-a-room-token' }));
    expect(privateRoom.code).toBe('FORBIDDEN');

    const badStatus = await rejection(client.setPresence('asleep' as 'away'));
    expect(badStatus.code).toBe('INVALID_PAYLOAD');
  });

  it('rejects ready() with the handshake code when the server refuses the connection', async () => {
    const invalid = clients.create({ token: 'not-a-jwt', socket: { reconnection: false } });
    const err = await rejection(invalid.ready());
    expect(err.code).toBe('AUTH_INVALID');
    // the socket gave up: asking again answers at once, calls fail fast
    expect((await rejection(invalid.ready())).code).toBe('AUTH_INVALID');
    expect((await rejection(invalid.ping())).code).toBe('DISCONNECTED');

    const expired = clients.create({ token: await cluster.token({ sub: 'late', expiresIn: -60 }) });
    expect((await rejection(expired.ready())).code).toBe('AUTH_EXPIRED');

    const none = clients.create({});
    expect((await rejection(none.ready())).code).toBe('AUTH_REQUIRED');
  });

  it('calls the token function again for every reconnect', async () => {
    const issued: string[] = [];
    const client = clients.create({
      token: async () => {
        const token = await cluster.token({ sub: 'rotating', name: `v${issued.length + 1}` });
        issued.push(token);
        return token;
      },
    });
    const first = await client.ready();
    expect(issued).toHaveLength(1);

    const again = next(client, 'session:ready');
    await dropConnection(cluster, client);
    const second = await again;
    expect(second.socketId).not.toBe(first.socketId);
    expect(issued).toHaveLength(2);
    expect(issued[1]).not.toBe(issued[0]);
    expect(await client.ready()).toBe(second);
  });

  it('times out a call that gets no answer', async () => {
    const client = await clients.connect('patient', {
      timeoutMs: 300,
      // reconnects only after the call has given up
      socket: { reconnectionDelay: 5000, reconnectionDelayMax: 5000, randomizationFactor: 0 },
    });
    await dropConnection(cluster, client);
    const err = await rejection(client.ping());
    expect(err.code).toBe('TIMEOUT');
  });

  it('rejects pending and later calls with DISCONNECTED once closed', async () => {
    const client = await clients.connect('closer', {
      socket: { reconnectionDelay: 5000, reconnectionDelayMax: 5000, randomizationFactor: 0 },
    });
    await dropConnection(cluster, client);
    const pending = client.ping(); // buffered until a reconnect that never comes
    client.close();
    expect((await rejection(pending)).code).toBe('DISCONNECTED');
    expect((await rejection(client.join('public:after-close'))).code).toBe('DISCONNECTED');
    expect((await rejection(client.ready())).code).toBe('DISCONNECTED');
    await eventually(() => !client.socket.active);
  });

  it('types payloads and results from the protocol', () => {
    const client = {} as SwitchboardClient;
    expectTypeOf(client.join).returns.resolves.toEqualTypeOf<RoomJoinResult>();
    expectTypeOf(client.watch).returns.resolves.toEqualTypeOf<PresenceInfo[]>();
    expectTypeOf(client.on<'room:message'>).parameter(1).parameter(0).toEqualTypeOf<RoomMessage>();
    expectTypeOf(client.setPresence).parameter(0).toEqualTypeOf<'online' | 'away' | 'busy'>();
    expectTypeOf<SwitchboardClientError['code']>().toExtend<string>();
    // @ts-expect-error: not a server event
    expectTypeOf(client.on).toBeCallableWith('room:nope', () => {});
    // @ts-expect-error: the listener gets a room message, not a notification
    expectTypeOf(client.on).toBeCallableWith('room:message', (n: { title: string }) => n);
  });
});
