import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { Value } from '@sinclair/typebox/value';
import { LifecycleEvent, type LifecycleEvent as Event } from '@switchboard/protocol';
import { deleteKeys, eventually, randomKeyPrefix } from '@switchboard/testkit';
import { entryEvents, EventOutbox, outboxEvent, OutboxEntryError } from '../src/events.js';
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
  const entries = await outbox.read();
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
    const batch = await outbox.readBatch('0-0', 100, await outbox.position());
    const first = batch.entries.map((e) => e.event);
    await outbox.commit(batch);
    // A failover takes longer than a millisecond, the resolution of the stream ids the numbering
    // falls back on: the join below is written in a later millisecond than the entries relayed.
    const relayedMs = Number(batch.streamIds.at(-1)!.split('-')[0]);
    await eventually(async () => {
      const [s, us] = await redis.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000) > relayedMs;
    });
    await registry.join(sock('s1', 'ann'), 'trip:2');
    const again = (await events()).filter((e) => e.type === 'room.occupied');
    expect(again[0]!.seq).toBeGreaterThan(first.at(-1)!.seq);
    // a promoted replica that missed the last writes: the relay's position went back
    await redis.hset(keys(prefix).eventState, 'rseq', '5');
    const next = await events();
    expect(next.map((e) => e.type)).toEqual(['room.occupied', 'member.added']);
    expect(next[0]!.seq).toBeGreaterThan(first.at(-1)!.seq);
    // numbered the same when read again from the same position: a relay that died before its commit
    expect(await events()).toEqual(next);
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
    for (let i = 0; i < 350; i++) await bounded.join(sock('s1', 'ann'), `trip:b${i}`);
    // one entry per join (occupied, added), trimmed by whole stream nodes (100 entries) to about 100
    const kept = await outbox.length();
    expect(kept).toBeGreaterThanOrEqual(100);
    expect(kept).toBeLessThanOrEqual(200);
    const batch = await outbox.readBatch('0-0', 1000, await outbox.position());
    expect(batch.entries[0]?.event).toMatchObject({ type: 'room.occupied', data: { room: `trip:b${350 - kept}` } });
    // the relay's commit finds the registry changes trimmed before it read them, and counts them once
    expect(await outbox.commit(batch)).toBe(350 - kept);
    expect(await outbox.lost()).toBe(350 - kept);
    expect(await outbox.length()).toBe(0);
    await bounded.join(sock('s1', 'ann'), 'trip:after');
    const next = await outbox.readBatch('0-0', 1000, await outbox.position());
    expect(next.entries.map((e) => e.event.type)).toEqual(['room.occupied', 'member.added']);
    expect(await outbox.commit(next)).toBe(0);
    // the stream lost and made again (a failover): nothing counted, and the counts add up again after
    await redis.del(keys(prefix).eventOutbox);
    await bounded.join(sock('s1', 'ann'), 'trip:again');
    expect(await outbox.commit(await outbox.readBatch('0-0', 1000, await outbox.position()))).toBe(0);
    await bounded.join(sock('s1', 'ann'), 'trip:again-2');
    expect(await outbox.commit(await outbox.readBatch('0-0', 1000, await outbox.position()))).toBe(0);
    expect(await outbox.lost()).toBe(350 - kept);
  });

  it('a relay reads after a cursor, deletes what it handed on, and finds nothing lost', async () => {
    const a = inst('i-1');
    await registry.heartbeat(a);
    await connect(a, sock('s1', 'ann'));
    await registry.join(sock('s1', 'ann'), 'trip:5');
    // one entry per registry change: the connect, then the join's two events
    const first = await outbox.readBatch('0-0', 1, await outbox.position());
    expect(first.entries.map((e) => e.event.type)).toEqual(['user.online']);
    const rest = await outbox.readBatch(first.lastId, 10, first.position);
    expect(rest.entries.map((e) => e.event.type)).toEqual(['room.occupied', 'member.added']);
    const [occupied, added] = rest.entries.map((e) => e.event.seq) as [number, number];
    expect(occupied).toBeGreaterThan(first.position.seq);
    expect(added).toBe(occupied + 1);
    await outbox.commit(first);
    await outbox.commit(rest);
    expect(await outbox.length()).toBe(0);
    expect(await outbox.lost()).toBe(0);
    expect(await outbox.position()).toEqual(rest.position);
    const blocking = redis.duplicate();
    try {
      const waiting = outbox.readBatch(rest.lastId, 10, rest.position, { blockMs: 5000, blocking });
      await registry.leave(sock('s1', 'ann'), 'trip:5');
      const left = await waiting;
      expect(left.entries.map((e) => e.event.type)).toEqual(['member.removed', 'room.vacated']);
      expect(left.entries[0]!.event.seq).toBeGreaterThan(rest.position.seq);
    } finally {
      blocking.disconnect();
    }
  });

  it('reads past an entry no registry script writes, setting it apart with the reason', async () => {
    const a = inst('i-1');
    await registry.heartbeat(a);
    await connect(a, sock('s1', 'ann'));
    await registry.join(sock('s1', 'ann'), 'trip:6');
    const foreign = await redis.xadd(keys(prefix).eventOutbox, '*', 'i', 'x', 'e', 'user.nope join  ann ');
    const batch = await outbox.readBatch('0-0', 10, await outbox.position());
    expect(batch.entries.map((e) => e.event.type)).toEqual(['user.online', 'room.occupied', 'member.added']);
    expect(batch.invalid).toEqual([{ streamId: foreign, reason: expect.stringMatching(/user\.nope/) }]);
    expect(batch.lastId).toBe(foreign);
    expect(batch.streamIds).toHaveLength(3);
    await outbox.commit(batch);
    expect(await outbox.length()).toBe(0);
  });

  it('refuses an outbox entry it cannot read, with the reason', () => {
    const base = { id: 'x.1', ts: 1, seq: 1 };
    expect(() => outboxEvent({ t: 'user.nope', c: 'join' }, base)).toThrow(OutboxEntryError);
    expect(() => outboxEvent({ t: 'member.added', c: 'join', r: 'a:b' }, base)).toThrow(/lacks "u"/);
    expect(() => outboxEvent({ t: 'member.added', c: 'nope', r: 'a:b', u: 'x' }, base)).toThrow(/cause "nope"/);
    expect(() => entryEvents(['e', 'user.online connect  ann '])).toThrow(/lacks its id or events/);
    expect(() => entryEvents(['i', 'x'])).toThrow(/lacks its id or events/);
    expect(entryEvents(['i', 'x', 'e', 'room.occupied join a:b  \nmember.added join a:b ann \nuser.offline reaped  ann 42'])).toEqual({
      idBase: 'x',
      events: [
        { t: 'room.occupied', c: 'join', r: 'a:b' },
        { t: 'member.added', c: 'join', r: 'a:b', u: 'ann' },
        { t: 'user.offline', c: 'reaped', u: 'ann', l: '42' },
      ],
    });
  });
});

describe('webhook backlog: one endpoint\'s pending events and its chain of batch jobs', () => {
  // n: the outbox position (stream id n-0); seq defaults to it
  const ev = (n: number, seq = n, room = 'trip:1') => ({
    streamId: `${n}-0`,
    event: { id: `e${n}`, type: 'room.occupied', ts: 1, seq, cause: 'join', data: { room } } as Event,
  });
  const seqs = (b: { events: Event[] }) => b.events.map((e) => e.seq);

  it('appends in outbox order once, names one batch job at a time, and acknowledges up to a score', async () => {
    const backlog = new WebhookBacklog(redis, prefix);
    const first = await backlog.append('ep1', [ev(1), ev(2), ev(3)], 100);
    expect(first).toMatchObject({ added: 3, kick: 'ep1-1', dropped: [] });
    // the same events again (a relay retrying) and one more: only the new one; the job is on its way
    const again = await backlog.append('ep1', [ev(2), ev(3), ev(4)], 100);
    expect(again).toEqual({ added: 1, dropped: [] });
    expect(await backlog.inflight('ep1')).toBe('ep1-1');
    const head = await backlog.peek('ep1', 2);
    expect(seqs(head)).toEqual([1, 2]);
    // another job (not the head) acknowledging changes the pending events but not the chain
    expect(await backlog.ack('ep1', head.last, 'ep1-99')).toBeUndefined();
    expect((await backlog.state('ep1')).inflight).toBe('ep1-1');
    const next = await backlog.peek('ep1', 1);
    expect(seqs(next)).toEqual([3]);
    expect(await backlog.ack('ep1', next.last, 'ep1-1')).toBe('ep1-2');
    const rest = await backlog.peek('ep1', 10);
    expect(seqs(rest)).toEqual([4]);
    expect(await backlog.ack('ep1', rest.last, 'ep1-2')).toBeUndefined();
    const state = await backlog.state('ep1');
    expect(state).toMatchObject({ pending: 0 });
    expect(state.inflight).toBeUndefined();
    expect(await backlog.kick('ep1')).toBeUndefined();
    expect(await backlog.peek('ep1', 10)).toEqual({ events: [] });
  });

  it('takes every event of one outbox entry, in order, and each once', async () => {
    const backlog = new WebhookBacklog(redis, prefix);
    const entry = [ev(1, 10, 'a:1'), ev(2, 11, 'a:1'), ev(3, 12, 'a:2')].map((e) => ({ ...e, streamId: '5-0' }));
    expect((await backlog.append('ep4', entry, 100)).added).toBe(3);
    expect((await backlog.append('ep4', [...entry, ev(6, 13)], 100)).added).toBe(1);
    const batch = await backlog.peek('ep4', 10);
    expect(batch.events.map((e) => [e.id, e.seq])).toEqual([['e1', 10], ['e2', 11], ['e3', 12], ['e6', 13]]);
  });

  it('keeps at most maxPending: the oldest are returned as dropped', async () => {
    const backlog = new WebhookBacklog(redis, prefix);
    await backlog.append('ep2', [ev(1), ev(2), ev(3)], 4);
    const r = await backlog.append('ep2', [ev(4), ev(5), ev(6)], 4);
    expect(r.dropped.map((e) => e.seq)).toEqual([1, 2]);
    expect(seqs(await backlog.peek('ep2', 10))).toEqual([3, 4, 5, 6]);
  });

  it('records failures until a delivery', async () => {
    const backlog = new WebhookBacklog(redis, prefix);
    await backlog.append('ep3', [ev(1)], 10);
    await backlog.recordFailure('ep3', 'HTTP 503', 1000);
    await backlog.recordFailure('ep3', 'HTTP 502', 2000);
    expect(await backlog.state('ep3')).toMatchObject({ lastError: 'HTTP 502', failingSince: 1000 });
    const { last } = await backlog.peek('ep3', 10);
    await backlog.ack('ep3', last, 'ep3-1', 3000);
    const s = await backlog.state('ep3');
    expect(s).toMatchObject({ lastDeliveredAt: 3000, pending: 0 });
    expect(s.lastError).toBeUndefined();
  });

  it('names the endpoints the dispatchers deliver to', async () => {
    const backlog = new WebhookBacklog(redis, prefix);
    await backlog.announce([{ id: 'ep5', url: 'https://hooks.example/in' }], 42);
    expect(await backlog.endpoints()).toEqual([{ id: 'ep5', url: 'https://hooks.example/in', since: 42 }]);
  });
});
