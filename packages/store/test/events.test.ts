import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { Value } from '@sinclair/typebox/value';
import { LifecycleEvent, type LifecycleEvent as Event } from '@switchboard/protocol';
import { deleteKeys, randomKeyPrefix } from '@switchboard/testkit';
import { EventOutbox, outboxEvent, OutboxEntryError } from '../src/events.js';
import { keys } from '../src/keys.js';
import { Registry, type InstanceRef, type SocketRef } from '../src/registry.js';
import { WebhookBacklog } from '../src/webhooks.js';

let redis: Redis;
let prefix: string;
let registry: Registry;
let outbox: EventOutbox;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  redis.on('error', () => {});
});
afterAll(() => redis.quit());
beforeEach(async (context) => {
  prefix = randomKeyPrefix();
  registry = new Registry(redis, prefix, { events: { outboxMax: 10_000 } });
  outbox = new EventOutbox(redis, prefix);
  context.onTestFinished(() => deleteKeys(redis, prefix));
});

const inst = (id: string, pod = 'pod-a'): InstanceRef => ({ id, pod });
const sock = (socketId: string, userId: string, guest = false): SocketRef => ({ socketId, userId, guest });
const connect = (instance: InstanceRef, s: SocketRef) => registry.connect({ ...s, instance, maxConnections: 10 });

async function events(): Promise<Event[]> {
  const entries = await outbox.read('0-0', 10_000);
  for (const e of entries) expect(Value.Check(LifecycleEvent, e.event), JSON.stringify(e.event)).toBe(true);
  return entries.map((e) => e.event);
}
const brief = (list: Event[]) => list.map((e) => `${e.type} ${'room' in e.data ? e.data.room : ''}${'userId' in e.data ? `/${e.data.userId}` : ''} ${e.cause}`.replace('  ', ' '));

describe('lifecycle events written by the registry scripts', () => {
  it('for connects, joins, leaves and disconnects, in order, with causes, unique ids and a growing seq', async () => {
    const a = inst('i-1');
    await registry.heartbeat(a);
    await connect(a, sock('s1', 'ann'));
    await connect(a, sock('s2', 'ann')); // a second device: no transition
    await connect(a, sock('s3', 'bob'));
    await registry.join(sock('s1', 'ann'), 'trip:1');
    await registry.join(sock('s2', 'ann'), 'trip:1'); // ann is a member already
    await registry.join(sock('s3', 'bob'), 'trip:1');
    await registry.leave(sock('s3', 'bob'), 'trip:1');
    await registry.disconnect(a, sock('s1', 'ann'), ['trip:1']); // ann's other socket stays in
    await registry.disconnect(a, sock('s2', 'ann'), ['trip:1']);
    await registry.disconnect(a, sock('s3', 'bob'), []);
    const list = await events();
    expect(brief(list)).toEqual([
      'user.online /ann connect',
      'user.online /bob connect',
      'room.occupied trip:1 join',
      'member.added trip:1/ann join',
      'member.added trip:1/bob join',
      'member.removed trip:1/bob leave',
      'member.removed trip:1/ann disconnect',
      'room.vacated trip:1 disconnect',
      'user.offline /ann disconnect',
      'user.offline /bob disconnect',
    ]);
    expect(new Set(list.map((e) => e.id)).size).toBe(list.length);
    for (let i = 1; i < list.length; i++) expect(list[i]!.seq).toBeGreaterThan(list[i - 1]!.seq);
    const offline = list.find((e) => e.type === 'user.offline')!;
    expect(offline.data).toEqual({ userId: 'ann', lastSeen: expect.any(Number) });
    expect(Math.abs(offline.ts - Date.now())).toBeLessThan(60_000);
  });

  it('a room occupied again continues its sequence, also when Redis lost the last one (a failover)', async () => {
    const a = inst('i-1');
    await registry.heartbeat(a);
    await connect(a, sock('s1', 'ann'));
    await registry.join(sock('s1', 'ann'), 'trip:2');
    await registry.leave(sock('s1', 'ann'), 'trip:2');
    const first = await events();
    // a promoted replica that missed the last writes: the sequence's counter went back
    await redis.hset(keys(prefix).eventState, 'seq', '5');
    await registry.join(sock('s1', 'ann'), 'trip:2');
    const all = await events();
    const next = all.slice(first.length);
    expect(next.map((e) => e.type)).toEqual(['room.occupied', 'member.added']);
    expect(next[0]!.seq).toBeGreaterThan(first.at(-1)!.seq);
  });

  it('reaped sockets depart with cause reaped; an admin disconnect with cause admin', async () => {
    const dead = inst('i-dead', 'pod-dead');
    const live = inst('i-live', 'pod-live');
    await registry.heartbeat(dead);
    await registry.heartbeat(live);
    await connect(dead, sock('d1', 'dan'));
    await registry.join(sock('d1', 'dan'), 'trip:3');
    await connect(live, sock('k1', 'kim'));
    await registry.join(sock('k1', 'kim'), 'trip:3');
    const before = (await events()).length;

    expect(await registry.markKicked('kim')).toBe(1);
    await registry.disconnect(live, sock('k1', 'kim'), ['trip:3']);
    // the dead instance is silent: a bound of 0 ms reaps it
    await redis.zadd(keys(prefix).instances, 0, dead.id);
    const reaped = await registry.reapSilentInstances(1, 5000);
    expect(reaped.map((r) => r.socketId)).toEqual(['d1']);
    expect(brief((await events()).slice(before))).toEqual([
      'member.removed trip:3/kim admin',
      'user.offline /kim admin',
      'member.removed trip:3/dan reaped',
      'room.vacated trip:3 reaped',
      'user.offline /dan reaped',
    ]);
  });

  it('a restore announces what it puts back as connect and join, and removes what the pod does not hold as leave', async () => {
    const a = inst('i-1');
    await registry.heartbeat(a);
    await connect(a, sock('s1', 'ann'));
    await registry.join(sock('s1', 'ann'), 'trip:old');
    // Redis lost the socket's registration (and its events are long gone to the backends)
    await registry.disconnect(a, sock('s1', 'ann'), ['trip:old']);
    const before = (await events()).length;
    await connect(a, sock('s2', 'bob'));
    await registry.join(sock('s2', 'bob'), 'trip:stale');
    const mid = (await events()).length;
    await registry.restore(a, [
      { ...sock('s1', 'ann'), connectedAt: Date.now(), rooms: ['trip:old'] },
      { ...sock('s2', 'bob'), connectedAt: Date.now(), rooms: [] },
    ]);
    expect(mid).toBe(before + 3);
    expect(brief((await events()).slice(mid))).toEqual([
      'user.online /ann connect',
      'room.occupied trip:old join',
      'member.added trip:old/ann join',
      'member.removed trip:stale/bob leave',
      'room.vacated trip:stale leave',
    ]);
  });

  it('writes nothing when events are off, and keeps the outbox near its bound', async () => {
    const off = new Registry(redis, prefix);
    const a = inst('i-1');
    await off.heartbeat(a);
    await off.connect({ ...sock('s1', 'ann'), instance: a, maxConnections: 10 });
    await off.join(sock('s1', 'ann'), 'trip:4');
    expect(await redis.exists(keys(prefix).eventOutbox)).toBe(0);

    const bounded = new Registry(redis, prefix, { events: { outboxMax: 100 } });
    for (let i = 0; i < 150; i++) await bounded.join(sock('s1', 'ann'), `trip:b${i}`);
    // two events per join (occupied, added): 300 written, the oldest 200 trimmed and counted
    expect(await outbox.length()).toBe(100);
    expect(await outbox.lost()).toBe(200);
    expect((await outbox.read('0-0', 1))[0]?.event).toMatchObject({ type: 'room.occupied', data: { room: 'trip:b100' } });
  });

  it('a relay reads after a cursor, deletes what it handed on, and finds nothing lost', async () => {
    const a = inst('i-1');
    await registry.heartbeat(a);
    await connect(a, sock('s1', 'ann'));
    await registry.join(sock('s1', 'ann'), 'trip:5');
    const first = await outbox.read('0-0', 2);
    expect(first.map((e) => e.event.type)).toEqual(['user.online', 'room.occupied']);
    const rest = await outbox.read(first.at(-1)!.streamId, 10);
    expect(rest.map((e) => e.event.type)).toEqual(['member.added']);
    await outbox.remove([...first, ...rest].map((e) => e.streamId));
    expect(await outbox.length()).toBe(0);
    expect(await outbox.lost()).toBe(0);
    const blocking = redis.duplicate();
    try {
      const waiting = outbox.read(rest.at(-1)!.streamId, 10, { blockMs: 5000, blocking });
      await registry.leave(sock('s1', 'ann'), 'trip:5');
      expect((await waiting).map((e) => e.event.type)).toEqual(['member.removed', 'room.vacated']);
    } finally {
      blocking.disconnect();
    }
  });

  it('refuses an outbox entry it cannot read, with the reason', () => {
    expect(() => outboxEvent(['i', 'x.1', 't', 'user.nope', 'c', 'join', 'ts', '1', 's', '1'])).toThrow(OutboxEntryError);
    expect(() => outboxEvent(['i', 'x.1', 't', 'member.added', 'c', 'join', 'ts', '1', 's', '1', 'r', 'a:b'])).toThrow(/lacks "u"/);
  });
});

describe('webhook backlog: one endpoint\'s pending events and its chain of batch jobs', () => {
  const ev = (seq: number, room = 'trip:1'): Event => ({ id: `e${seq}`, type: 'room.occupied', ts: 1, seq, cause: 'join', data: { room } });

  it('appends in seq order once, names one batch job at a time, and acknowledges up to a seq', async () => {
    const backlog = new WebhookBacklog(redis, prefix);
    const first = await backlog.append('ep1', [ev(1), ev(2), ev(3)], 100);
    expect(first).toMatchObject({ added: 3, kick: 'ep1-1', dropped: [] });
    // the same events again (a relay retrying) and one more: only the new one; the job is on its way
    const again = await backlog.append('ep1', [ev(2), ev(3), ev(4)], 100);
    expect(again).toEqual({ added: 1, dropped: [] });
    expect((await backlog.peek('ep1', 2)).map((e) => e.seq)).toEqual([1, 2]);
    // another job (not the head) acknowledging changes the pending events but not the chain
    expect(await backlog.ack('ep1', 2, 'ep1-99')).toBeUndefined();
    expect((await backlog.state('ep1')).inflight).toBe('ep1-1');
    expect(await backlog.ack('ep1', 3, 'ep1-1')).toBe('ep1-2');
    expect((await backlog.peek('ep1', 10)).map((e) => e.seq)).toEqual([4]);
    expect(await backlog.ack('ep1', 4, 'ep1-2')).toBeUndefined();
    const state = await backlog.state('ep1');
    expect(state).toMatchObject({ pending: 0, lastSeq: 4 });
    expect(state.inflight).toBeUndefined();
    expect(await backlog.kick('ep1')).toBeUndefined();
  });

  it('keeps at most maxPending: the oldest are returned as dropped', async () => {
    const backlog = new WebhookBacklog(redis, prefix);
    await backlog.append('ep2', [ev(1), ev(2), ev(3)], 4);
    const r = await backlog.append('ep2', [ev(4), ev(5), ev(6)], 4);
    expect(r.dropped.map((e) => e.seq)).toEqual([1, 2]);
    expect((await backlog.peek('ep2', 10)).map((e) => e.seq)).toEqual([3, 4, 5, 6]);
  });

  it('records failures until a delivery', async () => {
    const backlog = new WebhookBacklog(redis, prefix);
    await backlog.append('ep3', [ev(1)], 10);
    await backlog.recordFailure('ep3', 'HTTP 503', 1000);
    await backlog.recordFailure('ep3', 'HTTP 502', 2000);
    expect(await backlog.state('ep3')).toMatchObject({ lastError: 'HTTP 502', failingSince: 1000 });
    await backlog.ack('ep3', 1, 'ep3-1', 3000);
    const s = await backlog.state('ep3');
    expect(s).toMatchObject({ lastDeliveredAt: 3000 });
    expect(s.lastError).toBeUndefined();
  });
});
