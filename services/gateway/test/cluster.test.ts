import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { collect, eventually, scrapeMetric, waitFor } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';

describe('three gateways on one Redis', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 3 });
  });
  afterAll(() => cluster.stop());

  it('delivers a room message from pod A to the members on pods B and C, not to the sender nor to non-members', async () => {
    const room = 'public:cross-pod';
    const alice = await cluster.connect({ sub: 'alice', name: 'Alice', gateway: 0 });
    const bob = await cluster.connect({ sub: 'bob', gateway: 1 });
    const carol = await cluster.connect({ sub: 'carol', gateway: 2 });
    const dave = await cluster.connect({ sub: 'dave', gateway: 1 }); // not a member
    expect(new Set([alice.session.pod, bob.session.pod, carol.session.pod]).size).toBe(3);

    for (const c of [alice, bob, carol]) {
      const ack = await c.emitWithAck('room:join', { room });
      expect(ack.ok).toBe(true);
    }
    const aliceGot = collect(alice, 'room:message');
    const daveGot = collect(dave, 'room:message');
    const atBob = waitFor(bob, 'room:message');
    const atCarol = waitFor(carol, 'room:message');

    const ack = await alice.emitWithAck('room:publish', { room, type: 'chat', data: { text: 'hello' } });
    if (!ack.ok) throw new Error(ack.error.message);
    expect(ack.data.id).toMatch(/^\d+-\d+$/);
    expect(Math.abs(ack.data.ts - Date.now())).toBeLessThan(5000);

    const expected = { room, id: ack.data.id, ts: ack.data.ts, type: 'chat', from: { userId: 'alice', name: 'Alice' }, data: { text: 'hello' } };
    expect(await atBob).toEqual(expected);
    expect(await atCarol).toEqual(expected);

    // a later message from carol reaches alice: by then alice's own message would have arrived too
    const next = waitFor(alice, 'room:message');
    await carol.emitWithAck('room:publish', { room, data: 'marker' });
    expect((await next).data).toBe('marker');
    expect(aliceGot.map((m) => m.data)).toEqual(['marker']);
    expect(daveGot).toEqual([]);
  });

  it('sends typing to the other members on other pods', async () => {
    const room = 'public:typing';
    const a = await cluster.connect({ sub: 'typer', gateway: 0 });
    const b = await cluster.connect({ sub: 'reader', gateway: 2 });
    await a.emitWithAck('room:join', { room });
    await b.emitWithAck('room:join', { room });
    const typing = waitFor(b, 'room:typing');
    const ack = await a.emitWithAck('room:typing', { room, typing: true });
    expect(ack).toEqual({ ok: true, data: {} });
    expect(await typing).toEqual({ room, userId: 'typer', typing: true });
  });

  it('reaches every device of a user on every pod when the emitter sends to user:<id>', async () => {
    const phone = await cluster.connect({ sub: 'erin', gateway: 0 });
    const laptop = await cluster.connect({ sub: 'erin', gateway: 2 });
    const other = await cluster.connect({ sub: 'frank', gateway: 1 });
    const otherGot = collect(other, 'notification');
    const n = { id: 'n-1', type: 'mention', title: 'Hi', ts: Date.now() };
    const atPhone = waitFor(phone, 'notification');
    const atLaptop = waitFor(laptop, 'notification');
    cluster.emitter.to('user:erin').emit('notification', n);
    expect(await atPhone).toEqual(n);
    expect(await atLaptop).toEqual(n);
    const marker = waitFor(other, 'notification');
    cluster.emitter.to('user:frank').emit('notification', { ...n, id: 'n-2' });
    await marker;
    expect(otherGot.map((x) => x.id)).toEqual(['n-2']);
  });

  it('announces the first socket of a user in a room and the last one out, once', async () => {
    const room = 'public:members';
    const watcher = await cluster.connect({ sub: 'watcher', gateway: 0 });
    await watcher.emitWithAck('room:join', { room });
    const joined = collect(watcher, 'room:member_joined');
    const left = collect(watcher, 'room:member_left');
    const d1 = await cluster.connect({ sub: 'gina', name: 'Gina', gateway: 1 });
    const d2 = await cluster.connect({ sub: 'gina', gateway: 2 });
    const firstJoin = waitFor(watcher, 'room:member_joined');
    const a1 = await d1.emitWithAck('room:join', { room });
    expect(a1).toEqual({ ok: true, data: { room, members: 2 } });
    expect(await firstJoin).toEqual({ room, userId: 'gina', name: 'Gina' });
    const a2 = await d2.emitWithAck('room:join', { room });
    expect(a2).toEqual({ ok: true, data: { room, members: 2 } });
    await d1.emitWithAck('room:leave', { room });
    const lastOut = waitFor(watcher, 'room:member_left');
    d2.close();
    expect(await lastOut).toEqual({ room, userId: 'gina' });
    expect(joined.map((j) => j.userId)).toEqual(['gina']);
    expect(left.map((j) => j.userId)).toEqual(['gina']);
  });

  it('replays history after a given id and says when the gap is gone', async () => {
    const room = 'public:history';
    const a = await cluster.connect({ sub: 'hist-a', gateway: 0 });
    await a.emitWithAck('room:join', { room });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const ack = await a.emitWithAck('room:publish', { room, data: i });
      if (ack.ok) ids.push(ack.data.id);
    }
    const b = await cluster.connect({ sub: 'hist-b', gateway: 1 });
    const join = await b.emitWithAck('room:join', { room, since: ids[1] });
    if (!join.ok) throw new Error(join.error.message);
    expect(join.data.history?.recovered).toBe(true);
    expect(join.data.history?.messages.map((m) => m.data)).toEqual([2, 3, 4]);
    const all = await b.emitWithAck('room:history', { room, limit: 2 });
    expect(all.ok && all.data.messages.map((m) => m.data)).toEqual([3, 4]);
    const gone = await b.emitWithAck('room:history', { room, since: '1-0' });
    expect(gone.ok && gone.data.recovered).toBe(true); // nothing was trimmed: 1-0 precedes the whole stream
    const tooMany = await b.emitWithAck('room:history', { room, since: ids[0], limit: 2 });
    expect(tooMany.ok && tooMany.data.recovered).toBe(false);
  });
});

for (const mode of ['classic', 'sharded'] as const) {
  describe(`${mode} pub/sub: what each pod's subscriber receives`, () => {
    let cluster: Cluster;
    beforeAll(async () => {
      cluster = await startCluster({ redis: inject('redis'), gateways: 2, env: { PUBSUB_MODE: mode } });
    });
    afterAll(() => cluster.stop());

    it(mode === 'sharded' ? 'reaches only the pods holding the room' : 'reaches every pod', async () => {
      const room = `public:pubsub-${mode}`;
      const member = await cluster.connect({ sub: `only-on-a-${mode}`, gateway: 0 });
      await member.emitWithAck('room:join', { room });
      const other = await cluster.connect({ sub: `elsewhere-${mode}`, gateway: 1 });
      const count = () => Promise.all(cluster.gateways.map((g) => scrapeMetric(`${g.opsUrl}/metrics`, 'switchboard_pubsub_messages_received_total')));
      // pod B's subscriber is quiet before the test sends (arrival presence has settled)
      const got = collect(member, 'room:message');
      const strayed = collect(other, 'room:message');
      const before = await count();
      for (let i = 0; i < 10; i++) {
        await cluster.emitter.to(room).emit('room:message', { room, id: `${i}-0`, ts: i, from: { userId: '#server' }, data: i });
      }
      await eventually(() => got.length === 10);
      const after = await count();
      expect(after[0]! - before[0]!).toBeGreaterThanOrEqual(10);
      if (mode === 'sharded') expect(after[1]! - before[1]!).toBe(0);
      else expect(after[1]! - before[1]!).toBeGreaterThanOrEqual(10);
      expect(strayed).toEqual([]);
      // and a member's publish crosses pods all the same
      await other.emitWithAck('room:join', { room });
      const atA = waitFor(member, 'room:message');
      expect((await other.emitWithAck('room:publish', { room, data: 'from b' })).ok).toBe(true);
      expect((await atA).data).toBe('from b');
    });
  });
}
