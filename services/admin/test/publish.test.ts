import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NOTIFICATION_DATA_MAX_BYTES, SERVER_SENDER } from '@switchboard/protocol';
import { collect, eventually, freePort, randomKeyPrefix, waitFor } from '@switchboard/testkit';
import { type Cluster, startCluster, type TestClient } from '@switchboard/harness';
import { keys } from '@switchboard/store';
import { schemas } from '../src/index.js';
import { assertShape, startAdmin, startDispatcher, type ErrorAnswer, type TestAdmin, type TestDispatcher } from './helpers.js';

async function join(client: TestClient, room: string): Promise<void> {
  const ack = await client.emitWithAck('room:join', { room });
  if (!ack.ok) throw new Error(`${room}: ${ack.error.message}`);
}

describe('server-side publish and notifications', () => {
  let cluster: Cluster;
  let admin: TestAdmin;
  let dispatcher: TestDispatcher;

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
    admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, env: { ADMIN_MAX_PAYLOAD_BYTES: '1024' } });
    dispatcher = await startDispatcher(cluster.redisEnv, cluster.keyPrefix);
  });
  afterAll(async () => {
    await admin?.close();
    await dispatcher?.close();
    await cluster?.stop();
  });

  it('publishes to a room: every member on every pod gets the message with its id and ts, and it is in the history', async () => {
    const room = 'public:news/eu';
    const a = await cluster.connect({ sub: 'pub-a', gateway: 0 });
    const b = await cluster.connect({ sub: 'pub-b', gateway: 1 });
    const outsider = await cluster.connect({ sub: 'pub-c', gateway: 1 });
    await join(a, room);
    await join(b, room);
    const outsiderGot = collect(outsider, 'room:message');
    const atA = waitFor(a, 'room:message');
    const atB = waitFor(b, 'room:message');

    const res = await admin.call<{ id: string; ts: number }>('POST', `/v1/rooms/${encodeURIComponent(room)}/messages`, {
      body: { type: 'announcement', data: { text: 'maintenance at noon', n: 1 } },
    });
    expect(res.status).toBe(202);
    assertShape(schemas.PublishResponse, res.body);
    expect(res.body.id).toMatch(/^\d+-\d+$/);
    expect(Math.abs(res.body.ts - Date.now())).toBeLessThan(5000);

    const expected = {
      room,
      id: res.body.id,
      ts: res.body.ts,
      type: 'announcement',
      from: SERVER_SENDER,
      data: { text: 'maintenance at noon', n: 1 },
    };
    expect(await atA).toEqual(expected);
    expect(await atB).toEqual(expected);

    const history = await b.emitWithAck('room:history', { room });
    expect(history).toEqual({ ok: true, data: { messages: [expected], recovered: true } });

    // a later message to the outsider's own room arrives after anything sent before it
    const marker = waitFor(outsider, 'room:message');
    const direct = await admin.call('POST', '/v1/rooms/user%3Apub-c/messages', { body: { data: 'only you' } });
    expect(direct.status).toBe(202);
    expect(await marker).toMatchObject({ room: 'user:pub-c', from: SERVER_SENDER, data: 'only you' });
    expect(outsiderGot.map((m) => m.room)).toEqual(['user:pub-c']);
    for (const c of [a, b, outsider]) c.close();
  });

  it('sends server messages from a sender that no user can be', async () => {
    const room = 'public:forgery';
    const reader = await cluster.connect({ sub: 'forge-reader', gateway: 0 });
    const impostor = await cluster.connect({ sub: 'system', name: 'System', gateway: 1 });
    await join(reader, room);
    await join(impostor, room);
    const got = collect(reader, 'room:message');
    expect((await impostor.emitWithAck('room:publish', { room, data: 'I am the server' })).ok).toBe(true);
    const res = await admin.call('POST', `/v1/rooms/${encodeURIComponent(room)}/messages`, { body: { data: 'the server' } });
    expect(res.status).toBe(202);
    await eventually(() => got.length === 2);
    expect(got.map((m) => [m.from, m.data])).toEqual([
      [{ userId: 'system', name: 'System' }, 'I am the server'],
      [SERVER_SENDER, 'the server'],
    ]);
    // no access token can carry the server's id
    expect((await cluster.refused({ sub: SERVER_SENDER.userId })).message).toBe('AUTH_INVALID');
  });

  it('publishes any JSON value as data, and refuses data over ADMIN_MAX_PAYLOAD_BYTES with 413', async () => {
    for (const data of [null, 0, 'text', [1, 2], { deep: { er: true } }]) {
      const res = await admin.call('POST', '/v1/rooms/public%3Ajson/messages', { body: { data } });
      expect(res.status, JSON.stringify(data)).toBe(202);
    }
    const history = await admin.redis.xlen(keys(cluster.keyPrefix).history('public:json'));
    expect(history).toBe(5);

    const big = await admin.call<ErrorAnswer>('POST', '/v1/rooms/public%3Ajson/messages', { body: { data: 'x'.repeat(1100) } });
    expect(big.status).toBe(413);
    assertShape(schemas.ErrorResponse, big.body);
    expect(big.body.error).toEqual({ code: 'PAYLOAD_TOO_LARGE', message: 'data is larger than 1024 bytes as JSON', details: { limit: 1024 } });
    // a body over the HTTP body limit is refused before it is read whole, in the same format
    const huge = await admin.call<ErrorAnswer>('POST', '/v1/rooms/public%3Ajson/messages', { body: { data: 'x'.repeat(1_100_000) } });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(await admin.redis.xlen(keys(cluster.keyPrefix).history('public:json'))).toBe(5);
  });

  it('enqueues a notification that reaches every device of the user live and lands in the inbox', async () => {
    const phone = await cluster.connect({ sub: 'nina', gateway: 0 });
    const laptop = await cluster.connect({ sub: 'nina', gateway: 1 });
    const atPhone = waitFor(phone, 'notification', 10_000);
    const atLaptop = waitFor(laptop, 'notification', 10_000);
    const id = `n-${randomUUID()}`;

    const res = await admin.call('POST', '/v1/notifications', {
      body: { id, to: { userId: 'nina' }, type: 'billing.invoice', title: 'Invoice ready', body: 'March', data: { amount: 42 } },
    });
    expect(res.status).toBe(202);
    assertShape(schemas.NotificationResponse, res.body);
    expect(res.body).toEqual({ id, jobId: id });

    const expected = { id, type: 'billing.invoice', title: 'Invoice ready', body: 'March', data: { amount: 42 }, ts: expect.any(Number) };
    expect(await atPhone).toEqual(expected);
    expect(await atLaptop).toEqual(expected);
    const inbox = await laptop.emitWithAck('notification:list', {});
    expect(inbox).toEqual({ ok: true, data: { items: [{ ...expected, read: false }], unread: 1 } });

    // the same notification again is accepted and changes nothing; the id with other content is a conflict
    const same = { id, to: { userId: 'nina' }, type: 'billing.invoice', title: 'Invoice ready', body: 'March', data: { amount: 42 } };
    const again = await admin.call('POST', '/v1/notifications', { body: same });
    expect(again).toMatchObject({ status: 202, body: { id } });
    const reused = await admin.call<ErrorAnswer>('POST', '/v1/notifications', { body: { id, to: { userId: 'nina' }, type: 'billing.invoice' } });
    expect(reused.status).toBe(409);
    assertShape(schemas.ErrorResponse, reused.body);
    expect(reused.body.error).toMatchObject({ code: 'CONFLICT', details: { id } });
    const other = await admin.call<{ id: string; jobId: string }>('POST', '/v1/notifications', { body: { to: { userId: 'nina' }, type: 'later' } });
    expect(other.status).toBe(202);
    expect(other.body.id).toBe(`job:${other.body.jobId}`);
    await eventually(async () => {
      const list = await phone.emitWithAck('notification:list', {});
      return list.ok && list.data.items.length === 2 ? list : undefined;
    });
    const list = await phone.emitWithAck('notification:list', {});
    expect(list.ok && list.data.items.map((n) => n.id).sort()).toEqual([id, other.body.id].sort());
    phone.close();
    laptop.close();
  });

  it('enqueues room and broadcast notifications', async () => {
    const member = await cluster.connect({ sub: 'room-member', gateway: 1 });
    await join(member, 'public:alerts');
    const got = waitFor(member, 'notification', 10_000);
    expect((await admin.call('POST', '/v1/notifications', { body: { to: { room: 'public:alerts' }, type: 'alert' } })).status).toBe(202);
    expect(await got).toMatchObject({ type: 'alert' });
    const all = waitFor(member, 'notification', 10_000);
    expect((await admin.call('POST', '/v1/notifications', { body: { to: { broadcast: true }, type: 'hello.all' } })).status).toBe(202);
    expect(await all).toMatchObject({ type: 'hello.all' });
    member.close();
  });

  it('refuses a notification whose data is over 16 KB with 413', async () => {
    const res = await admin.call<ErrorAnswer>('POST', '/v1/notifications', {
      body: { to: { userId: 'nina' }, type: 't', data: { blob: 'x'.repeat(NOTIFICATION_DATA_MAX_BYTES) } },
    });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('PAYLOAD_TOO_LARGE');
  });
});

describe('admin with Redis down', () => {
  it('answers 503 UNAVAILABLE for notifications and reads, and /readyz says not ready', async () => {
    const deadUrl = `redis://127.0.0.1:${await freePort()}`;
    const admin = await startAdmin({ redis: deadUrl, keyPrefix: randomKeyPrefix() });
    try {
      const ready = await admin.call('GET', '/readyz', { auth: null });
      expect(ready).toMatchObject({ status: 503, body: { status: 'not ready' } });
      expect((await admin.call('GET', '/healthz', { auth: null })).status).toBe(200);

      const notify = await admin.call<ErrorAnswer>('POST', '/v1/notifications', { body: { to: { userId: 'x' }, type: 't' } });
      expect(notify.status).toBe(503);
      assertShape(schemas.ErrorResponse, notify.body);
      expect(notify.body.error.code).toBe('UNAVAILABLE');

      for (const path of ['/v1/stats', '/v1/users', '/v1/users/x', '/v1/queues/notifications']) {
        const res = await admin.call<ErrorAnswer>('GET', path);
        expect(res.status, path).toBe(503);
        expect(res.body.error, path).toEqual({ code: 'UNAVAILABLE', message: 'Redis is unavailable, retry later' });
      }
      // validation still answers first
      expect((await admin.call('POST', '/v1/notifications', { body: { to: {}, type: 't' } })).status).toBe(400);
    } finally {
      await admin.close();
    }
  });
});
