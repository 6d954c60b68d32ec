import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { webhookEndpoints } from '@switchboard/config';
import { EVENTS_QUEUE, type LifecycleEvent } from '@switchboard/protocol';
import { EventOutbox, keys, queuePrefix, Registry, type InstanceRef, type SocketRef } from '@switchboard/store';
import { deleteKeys, eventually, randomKeyPrefix } from '@switchboard/testkit';
import { startWebhookReceiver, type WebhookReceiver } from '@switchboard/harness';
import { passes } from '../src/events.js';
import { postBatch, retryDelay, RETRY_CAP_MS, WebhookDeliveryError } from '../src/webhooks.js';
import { startDispatcher, type InProcessDispatcher } from './helpers.js';

const SECRET = 'dispatcher-webhooks-test-secret-0123456789';
const event = (room: string, seq = 1): LifecycleEvent => ({ id: `e${seq}`, type: 'room.occupied', ts: Date.now(), seq, cause: 'join', data: { room } });

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/in` };
}
const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

describe('posting a webhook batch', () => {
  it('delivers on 2xx only: a redirect, an error status, no answer in time and a refused connection fail, typed', async () => {
    let status = 204;
    let hang = false;
    const { server, url } = await listen((req, res) => {
      req.resume();
      if (hang) return; // never answers
      if (status === 302) res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end();
      else res.writeHead(status).end();
    });
    try {
      const [endpoint] = webhookEndpoints(url);
      await expect(postBatch(endpoint!, SECRET, [event('public:a')], 1000)).resolves.toBe(204);
      status = 200;
      await expect(postBatch(endpoint!, SECRET, [event('public:a')], 1000)).resolves.toBe(200);
      for (const s of [302, 400, 500, 503]) {
        status = s;
        await expect(postBatch(endpoint!, SECRET, [event('public:a')], 1000)).rejects.toMatchObject({ result: 'http_error', message: `answered HTTP ${s}` });
      }
      hang = true;
      const err = await postBatch(endpoint!, SECRET, [event('public:a')], 200).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WebhookDeliveryError);
      expect(err).toMatchObject({ result: 'timeout', message: 'no answer within 200 ms' });
    } finally {
      await close(server);
    }
    const [gone] = webhookEndpoints(url);
    await expect(postBatch(gone!, SECRET, [event('public:a')], 1000)).rejects.toMatchObject({ result: 'network', message: expect.stringMatching(/^request failed: (ECONNREFUSED|UND_ERR_SOCKET)/) });
  });

  it('backs off from 250 ms, doubling, never beyond 10 s', () => {
    expect(retryDelay(1, () => 0.5)).toBe(250);
    expect(retryDelay(2, () => 0.5)).toBe(500);
    expect(retryDelay(3, () => 0)).toBe(800);
    for (const n of [7, 8, 50, 10_000]) {
      expect(retryDelay(n, () => 1)).toBe(RETRY_CAP_MS);
      expect(retryDelay(n, () => 0)).toBe(RETRY_CAP_MS * 0.8);
    }
  });

  it('filters room events by WEBHOOK_ROOM_PREFIXES; user events always pass', () => {
    const online: LifecycleEvent = { id: 'u1', type: 'user.online', ts: 1, seq: 1, cause: 'connect', data: { userId: 'ann' } };
    expect(passes(event('trip:1'), [])).toBe(true);
    expect(passes(event('trip:1'), ['trip:', 'ops:'])).toBe(true);
    expect(passes(event('public:lobby'), ['trip:'])).toBe(false);
    expect(passes(online, ['trip:'])).toBe(true);
  });
});

describe('the relay in a dispatcher', () => {
  let redis: Redis;
  let prefix: string;
  let receiver: WebhookReceiver;
  let dispatcher: InProcessDispatcher | undefined;
  const inst: InstanceRef = { id: 'i-relay', pod: 'pod-relay' };
  const sock = (socketId: string, userId: string): SocketRef => ({ socketId, userId, guest: false });

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'));
    redis.on('error', () => {});
    receiver = await startWebhookReceiver(SECRET);
  });
  afterAll(async () => {
    await receiver.close();
    await redis.quit();
  });
  beforeEach(async (context) => {
    prefix = randomKeyPrefix();
    receiver.events.length = 0;
    receiver.arrivedAt.length = 0;
    context.onTestFinished(async () => {
      await dispatcher?.close();
      dispatcher = undefined;
      await deleteKeys(redis, prefix);
    });
  });

  it('sends the rooms of WEBHOOK_ROOM_PREFIXES and every user event, deletes what it relayed and entries no script writes, and keeps the queue bounded', async () => {
    const registry = new Registry(redis, prefix, { events: { outboxMax: 1000 } });
    await registry.heartbeat(inst);
    await registry.connect({ ...sock('s1', 'ann'), instance: inst, maxConnections: 5 });
    for (let i = 0; i < 8; i++) await registry.join(sock('s1', 'ann'), i % 2 ? `trip:${i}` : `public:${i}`);
    const foreign = (await redis.xadd(keys(prefix).eventOutbox, '*', 'i', 'x', 'e', 'user.nope join  ann '))!;
    await registry.disconnect(inst, sock('s1', 'ann'), [0, 1, 2, 3, 4, 5, 6, 7].map((i) => (i % 2 ? `trip:${i}` : `public:${i}`)));

    dispatcher = await startDispatcher(inject('redisUrl'), prefix, {
      EVENTS_QUEUE: 'true',
      EVENTS_QUEUE_MAX: '10',
      WEBHOOK_URLS: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_ROOM_PREFIXES: 'trip:',
    });
    // 1 online + 8 × (occupied, added) + 8 × (removed, vacated) + 1 offline = 34 events; 4 trip rooms × 4 + 2 user events pass
    await eventually(() => receiver.events.length >= 18, { what: 'the events delivered' });
    const rooms = new Set(receiver.events.flatMap((e) => ('room' in e.data ? [e.data.room] : [])));
    expect([...rooms].sort()).toEqual(['trip:1', 'trip:3', 'trip:5', 'trip:7']);
    expect(receiver.events.filter((e) => e.type.startsWith('user.')).map((e) => e.type)).toEqual(['user.online', 'user.offline']);
    await eventually(async () => (await redis.xlen(keys(prefix).eventOutbox)) === 0, { what: 'the outbox emptied' });
    expect(await redis.xrange(keys(prefix).eventOutbox, foreign, foreign)).toEqual([]);

    // nobody consumes the events queue: it keeps the newest 10 waiting
    const queue = new Queue(EVENTS_QUEUE, { connection: redis, prefix: queuePrefix(prefix, false) });
    try {
      await eventually(async () => (await queue.getWaitingCount()) === 10, { what: 'the queue trimmed to 10' });
      const waiting = await queue.getWaiting(0, -1);
      expect(waiting.some((j) => j.name === 'user.offline')).toBe(true);
      expect(dispatcher.registry.getSingleMetric('switchboard_events_queue_trimmed_total')).toBeDefined();
      expect((await dispatcher.registry.getSingleMetricAsString('switchboard_events_queue_trimmed_total')).split('\n').at(-1)).toMatch(/ 24$/);
    } finally {
      await queue.close();
    }
  });

  it('counts and reports the registry changes whose events a full outbox lost', async () => {
    // no relay yet: the outbox fills
    const registry = new Registry(redis, prefix, { events: { outboxMax: 10 } });
    await registry.heartbeat(inst);
    await registry.connect({ ...sock('s1', 'bob'), instance: inst, maxConnections: 5 });
    for (let i = 0; i < 350; i++) await registry.join(sock('s1', 'bob'), `public:l${i}`);
    // 351 registry changes (a connect, 350 joins), trimmed by whole stream nodes
    const kept = await redis.xlen(keys(prefix).eventOutbox);
    expect(kept).toBeLessThan(351);
    dispatcher = await startDispatcher(inject('redisUrl'), prefix, { EVENTS_QUEUE: 'true' });
    const lost = async () => Number((await dispatcher!.registry.getSingleMetricAsString('switchboard_events_lost_total')).split('\n').at(-1)!.split(' ')[1]);
    await eventually(async () => (await lost()) === 351 - kept, { timeoutMs: 10_000, what: 'the lost changes counted' });
    await eventually(async () => (await redis.xlen(keys(prefix).eventOutbox)) === 0, { what: 'the rest relayed' });
    expect(await new EventOutbox(redis, prefix).lost()).toBe(351 - kept);
  });
});
