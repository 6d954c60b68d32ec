import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { keys, ReadModel } from '@switchboard/store';
import { collect, eventually, waitFor } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';
import type { Ack } from '@switchboard/protocol';

describe('cluster-wide presence', () => {
  let cluster: Cluster;
  let model: ReadModel;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 3, env: { MAX_WATCHED_USERS: '5' } });
    model = new ReadModel(cluster.redis, cluster.keyPrefix);
  });
  afterAll(() => cluster.stop());

  it('keeps a user with two devices on two pods online until both leave; watchers see one offline change', async () => {
    const watcher = await cluster.connect({ sub: 'watcher-1', gateway: 2 });
    const before = await watcher.emitWithAck('presence:watch', { userIds: ['henry'] });
    expect(before).toEqual({ ok: true, data: { presence: [{ userId: 'henry', online: false, status: 'online' }] } });
    const changes = collect(watcher, 'presence:changed');

    const online = waitFor(watcher, 'presence:changed');
    const phone = await cluster.connect({ sub: 'henry', gateway: 0 });
    expect(await online).toEqual({ userId: 'henry', online: true, status: 'online' });
    const laptop = await cluster.connect({ sub: 'henry', gateway: 1 });

    const away = waitFor(watcher, 'presence:changed');
    expect(await laptop.emitWithAck('presence:set', { status: 'away', text: 'lunch' })).toEqual({ ok: true, data: { status: 'away' } });
    expect(await away).toEqual({ userId: 'henry', online: true, status: 'away' });

    phone.close();
    await eventually(async () => (await model.user('henry'))?.sockets.length === 1);
    const still = await watcher.emitWithAck('presence:watch', { userIds: ['henry'] });
    expect(still.ok && still.data.presence[0]).toMatchObject({ userId: 'henry', online: true, status: 'away' });

    const offline = waitFor(watcher, 'presence:changed');
    const t0 = Date.now();
    laptop.close();
    const last = await offline;
    expect(last).toMatchObject({ userId: 'henry', online: false, status: 'away' });
    expect(last.lastSeen).toBeGreaterThanOrEqual(t0 - 1000);

    // a later, unrelated change proves no second offline event was on its way
    const marker = waitFor(watcher, 'presence:changed');
    const back = await cluster.connect({ sub: 'henry', gateway: 2 });
    await marker;
    expect(changes.map((c) => `${c.online}:${c.status}`)).toEqual(['true:online', 'true:away', 'false:away', 'true:online']);
    const detail = await model.user('henry');
    expect(detail).toMatchObject({ userId: 'henry', online: true, status: 'online', sockets: [{ id: back.id, pod: back.session.pod }] });
    expect(detail?.lastSeen).toBeGreaterThanOrEqual(t0 - 1000);
  });

  it('keeps the watched index to the pods that watch: once per pod, through watch, unwatch and disconnect', async () => {
    const watched = () => cluster.redis.hget(keys(cluster.keyPrefix).watched, 'olga');
    const [a1, a2, b] = await Promise.all([
      cluster.connect({ sub: 'olga-w1', gateway: 0 }),
      cluster.connect({ sub: 'olga-w2', gateway: 0 }),
      cluster.connect({ sub: 'olga-w3', gateway: 1 }),
    ]);
    expect(await watched()).toBeNull();
    for (const c of [a1, a2, b]) expect((await c.emitWithAck('presence:watch', { userIds: ['olga'] })).ok).toBe(true);
    expect(await watched()).toBe('2'); // two pods, however many sockets
    // someone watches: her arrival is announced, on every pod that watches
    const seen = [waitFor(a2, 'presence:changed'), waitFor(b, 'presence:changed')];
    const olga = await cluster.connect({ sub: 'olga', gateway: 2 });
    expect(await Promise.all(seen)).toEqual([{ userId: 'olga', online: true, status: 'online' }, { userId: 'olga', online: true, status: 'online' }]);

    await a1.emitWithAck('presence:unwatch', { userIds: ['olga'] });
    expect(await watched()).toBe('2'); // another socket of that pod still watches
    a2.close();
    await eventually(async () => (await watched()) === '1');
    // the pod that still watches hears her go
    const offline = waitFor(b, 'presence:changed');
    olga.close();
    expect(await offline).toMatchObject({ userId: 'olga', online: false });
    b.close();
    await eventually(async () => (await watched()) === null);
    // a watch after nobody watched is served as before
    const again = await cluster.connect({ sub: 'olga-w4', gateway: 1 });
    const back = waitFor(again, 'presence:changed');
    expect((await again.emitWithAck('presence:watch', { userIds: ['olga'] })).ok).toBe(true);
    await cluster.connect({ sub: 'olga', gateway: 0 });
    expect(await back).toEqual({ userId: 'olga', online: true, status: 'online' });
  });

  it('stops sending to a socket after unwatch', async () => {
    const w = await cluster.connect({ sub: 'watcher-2', gateway: 0 });
    await w.emitWithAck('presence:watch', { userIds: ['ivy', 'jack'] });
    const got = collect(w, 'presence:changed');
    expect(await w.emitWithAck('presence:unwatch', { userIds: ['ivy'] })).toEqual({ ok: true, data: {} });
    await cluster.connect({ sub: 'ivy', gateway: 1 });
    const marker = waitFor(w, 'presence:changed');
    await cluster.connect({ sub: 'jack', gateway: 1 });
    await marker;
    expect(got.map((g) => g.userId)).toEqual(['jack']);
  });

  it('answers typed errors to invalid and over-limit watches', async () => {
    const w = await cluster.connect({ sub: 'watcher-3', gateway: 1 });
    const code = (a: Ack<unknown>) => (a.ok ? 'ok' : a.error.code);
    expect(code(await w.emitWithAck('presence:watch', { userIds: [] }))).toBe('INVALID_PAYLOAD');
    expect(code(await w.emitWithAck('presence:watch', { userIds: Array.from({ length: 101 }, (_, i) => `u${i}`) }))).toBe('INVALID_PAYLOAD');
    expect(code(await w.emitWithAck('presence:watch', { userIds: ['a', 'b', 'c', 'd'] }))).toBe('ok');
    expect(code(await w.emitWithAck('presence:watch', { userIds: ['a', 'e'] }))).toBe('ok'); // 'a' is already watched
    const over = await w.emitWithAck('presence:watch', { userIds: ['f'] });
    expect(over).toMatchObject({ ok: false, error: { code: 'LIMIT_EXCEEDED', details: { limit: 5, watching: 5 } } });
    await w.emitWithAck('presence:unwatch', { userIds: ['a'] });
    expect(code(await w.emitWithAck('presence:watch', { userIds: ['f'] }))).toBe('ok');
    expect(code(await (w.emitWithAck as unknown as (e: string, p: unknown) => Promise<Ack<unknown>>)('presence:set', { status: 'gone' }))).toBe('INVALID_PAYLOAD');
  });

  it('pages room members with name and status, and counts them in the join ack', async () => {
    const room = 'public:crowd';
    const clients = [];
    for (let i = 0; i < 12; i++) {
      const c = await cluster.connect({ sub: `m${String(i).padStart(2, '0')}`, name: `Member ${i}`, gateway: i % 3 });
      const ack = await c.emitWithAck('room:join', { room });
      expect(ack.ok && ack.data.members).toBe(i + 1);
      clients.push(c);
    }
    await clients[3]!.emitWithAck('presence:set', { status: 'busy' });
    const seen = new Map<string, { name?: string; status: string }>();
    let cursor: string | undefined;
    for (let pages = 0; pages < 20; pages++) {
      const ack = await clients[0]!.emitWithAck('room:members', { room, limit: 5, ...(cursor ? { cursor } : {}) });
      if (!ack.ok) throw new Error(ack.error.message);
      expect(ack.data.members.length).toBe(ack.data.nextCursor ? 5 : 2);
      for (const m of ack.data.members) seen.set(m.userId, m);
      cursor = ack.data.nextCursor;
      if (!cursor) break;
    }
    expect(seen.size).toBe(12);
    expect(seen.get('m03')).toEqual({ userId: 'm03', name: 'Member 3', status: 'busy' });
    expect(seen.get('m04')).toEqual({ userId: 'm04', name: 'Member 4', status: 'online' });
  });
});
