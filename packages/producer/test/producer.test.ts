import { createServer, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, expectTypeOf, inject, it } from 'vitest';
import { eventually, freePort, randomKeyPrefix, type RedisHandle, startRedis } from '@switchboard/testkit';
import { NOTIFICATIONS_QUEUE, STORED_NOTIFICATION_ID_PATTERN, SwitchboardError, type NotificationJob } from '@switchboard/protocol';
import { keys, NotificationLedger, notificationDigest } from '@switchboard/store';
import {
  createProducer,
  NotificationConflictError,
  RECOMMENDED_JOB_OPTIONS,
  type Enqueued,
  type Producer,
  type ProducerOptions,
} from '../src/index.js';

declare module 'vitest' {
  interface ProvidedContext {
    redisUrl: string;
  }
}

const filePrefix = randomKeyPrefix();
let redisUrl: string;
let redis: Redis;
const open: Array<{ close(): Promise<unknown> }> = [];
let n = 0;

/** A key prefix of its own per test, so queue counts never mix. */
function prefix(): string {
  n += 1;
  return `${filePrefix}-${n}`;
}

function producer(options: Partial<ProducerOptions> & { keyPrefix: string }): Producer {
  const p = createProducer({ connection: redisUrl, ...options });
  open.push(p);
  return p;
}

function inspect(keyPrefix: string): Queue {
  const q = new Queue(NOTIFICATIONS_QUEUE, { connection: redis, prefix: keyPrefix });
  q.on('error', () => {});
  open.push(q);
  return q;
}

async function total(q: Queue): Promise<number> {
  const counts = await q.getJobCounts();
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

async function rejection(p: Promise<unknown>): Promise<SwitchboardError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SwitchboardError);
    return err as SwitchboardError;
  }
  throw new Error('expected a rejection');
}

const hello: NotificationJob = { to: { userId: 'alice' }, type: 'greeting', title: 'Hello' };

beforeAll(() => {
  redisUrl = inject('redisUrl');
  redis = new Redis(redisUrl);
  redis.on('error', () => {});
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  const found = await redis.keys(`${filePrefix}-*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

describe('createProducer', () => {
  it('enqueues on the notifications queue under the key prefix with the recommended options', async () => {
    const keyPrefix = prefix();
    const p = producer({ keyPrefix });
    const { id } = await p.notify({ ...hello, id: 'welcome-1' });
    expect(id).toBe('welcome-1');
    expect(await redis.exists(`${keyPrefix}:${NOTIFICATIONS_QUEUE}:welcome-1`)).toBe(1);

    const job = await inspect(keyPrefix).getJob(id);
    expect(job?.data).toEqual({ ...hello, id: 'welcome-1' });
    expect(job?.opts).toMatchObject(RECOMMENDED_JOB_OPTIONS);
    expect(await job?.getState()).toBe('waiting');
  });

  it('enqueues one job per idempotency id, and refuses the id with other content', async () => {
    const keyPrefix = prefix();
    const p = producer({ keyPrefix });
    const first = await p.notify({ ...hello, id: 'once' });
    expect(first).toEqual({ id: 'once', jobId: 'once' });
    expect(await p.notify({ ...hello, id: 'once' })).toEqual(first);
    const conflict = await p.notify({ ...hello, id: 'once', title: 'again' }).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(NotificationConflictError);
    expect(conflict).toMatchObject({ code: 'CONFLICT', id: 'once' });
    await expect(p.notifyMany([{ ...hello, id: 'fresh' }, { ...hello, id: 'once', title: 'again' }])).rejects.toBeInstanceOf(
      NotificationConflictError,
    );
    const q = inspect(keyPrefix);
    expect((await q.getJob('once'))?.data.title).toBe('Hello');
  });

  it('refuses an id delivered within the window with other content, also once its job is gone', async () => {
    const keyPrefix = prefix();
    const p = producer({ keyPrefix });
    const d = notificationDigest({ ...hello, id: 'gone' });
    const ledger = new NotificationLedger(redis, keys(keyPrefix));
    await ledger.claim('gone', d, 'an-old-job', 1000);
    await ledger.complete('gone', d);
    await expect(p.notify({ ...hello, id: 'gone', title: 'other' })).rejects.toBeInstanceOf(NotificationConflictError);
    expect(await total(inspect(keyPrefix))).toBe(0);
    // the same content is fine: the dispatcher completes it without sending it again
    expect((await p.notify({ ...hello, id: 'gone' })).id).toBe('gone');
  });

  it('names a job without id job:<job id>, the id clients see and can mark read', async () => {
    const keyPrefix = prefix();
    const p = producer({ keyPrefix });
    const a = await p.notify(hello);
    const b = await p.notify(hello);
    expect(a.id).not.toBe(b.id);
    expect(a.id).toBe(`job:${a.jobId}`);
    expect(new RegExp(STORED_NOTIFICATION_ID_PATTERN).test(a.id)).toBe(true);
    const job = await inspect(keyPrefix).getJob(a.jobId);
    expect(job?.data).toEqual(hello);
  });

  it('delays a notification', async () => {
    const keyPrefix = prefix();
    const p = producer({ keyPrefix });
    const { jobId } = await p.notify(hello, { delayMs: 60_000 });
    const job = await inspect(keyPrefix).getJob(jobId);
    expect(await job?.getState()).toBe('delayed');
    expect(job?.opts.delay).toBe(60_000);
    expect((await rejection(p.notify(hello, { delayMs: -1 }))).code).toBe('INVALID_PAYLOAD');
  });

  it('enqueues many in one call', async () => {
    const keyPrefix = prefix();
    const p = producer({ keyPrefix });
    const { ids, jobIds } = await p.notifyMany([
      { ...hello, id: 'bulk-a' },
      { to: { room: 'public:lobby' }, type: 'news' },
      { to: { broadcast: true }, type: 'maintenance', body: 'at noon' },
    ]);
    expect(ids).toHaveLength(3);
    expect(ids[0]).toBe('bulk-a');
    expect(ids[2]).toBe(`job:${jobIds[2]}`);
    const q = inspect(keyPrefix);
    expect(await q.getWaitingCount()).toBe(3);
    expect((await q.getJob(jobIds[2]!))?.data).toEqual({ to: { broadcast: true }, type: 'maintenance', body: 'at noon' });
    expect(await p.notifyMany([])).toEqual({ ids: [], jobIds: [] });
  });

  it('merges job options over the recommended ones', async () => {
    const keyPrefix = prefix();
    const p = producer({ keyPrefix, jobOptions: { attempts: 2, priority: 3 } });
    const { jobId } = await p.notify(hello);
    const job = await inspect(keyPrefix).getJob(jobId);
    expect(job?.opts).toMatchObject({ attempts: 2, priority: 3, backoff: RECOMMENDED_JOB_OPTIONS.backoff });
  });

  it('rejects invalid jobs before enqueueing anything', async () => {
    const keyPrefix = prefix();
    const p = producer({ keyPrefix });
    const q = inspect(keyPrefix);
    await p.notify({ ...hello, id: 'valid-one' });

    const bad: unknown[] = [
      { to: { userId: 'not a user id' }, type: 'x' },
      { to: { userIds: [] }, type: 'x' },
      { to: { room: 'no-kind' }, type: 'x' },
      { to: { broadcast: false }, type: 'x' },
      { to: { userId: 'a' } },
      { to: { userId: 'a' }, type: 'x', extra: 1 },
      { to: { userId: 'a' }, type: 'x', id: 'has space' },
      { to: { userId: 'a' }, type: 'x', id: '42' },
    ];
    for (const job of bad) {
      const err = await rejection(p.notify(job as NotificationJob));
      expect(err.code).toBe('INVALID_PAYLOAD');
    }
    const large = await rejection(p.notify({ ...hello, data: { blob: 'x'.repeat(17 * 1024) } }));
    expect(large.code).toBe('PAYLOAD_TOO_LARGE');

    const inBatch = await rejection(
      p.notifyMany([{ ...hello, id: 'batch-ok' }, { to: { userId: 'a' }, type: '' } as NotificationJob]),
    );
    expect(inBatch.code).toBe('INVALID_PAYLOAD');
    expect(inBatch.message).toMatch(/^\/1\/type/);

    expect(await total(q)).toBe(1);
    expect(await q.getJob('batch-ok')).toBeUndefined();
  });

  it('types jobs at compile time', () => {
    const p = {} as Producer;
    expectTypeOf(p.notify).parameter(0).toEqualTypeOf<NotificationJob>();
    expectTypeOf(p.notify).returns.resolves.toEqualTypeOf<Enqueued>();
    expectTypeOf(p.notifyMany).returns.resolves.toEqualTypeOf<{ ids: string[]; jobIds: string[] }>();
    // @ts-expect-error a target is required
    void (() => p.notify({ type: 'x' }));
    // @ts-expect-error broadcast is `true` or absent
    void (() => p.notify({ to: { broadcast: false }, type: 'x' }));
  });

  it('works on a shared ioredis client and leaves it open', async () => {
    const keyPrefix = prefix();
    const shared = new Redis(redisUrl, { enableOfflineQueue: false });
    shared.on('error', () => {});
    try {
      const p = createProducer({ connection: shared, keyPrefix });
      const { jobId } = await p.notify(hello);
      await p.close();
      expect(shared.status).toBe('ready');
      expect(await shared.exists(`${keyPrefix}:${NOTIFICATIONS_QUEUE}:${jobId}`)).toBe(1);
    } finally {
      shared.disconnect();
    }
  });

  it('refuses to be created without a connection, with a TypeError that says what it needs', () => {
    for (const connection of [undefined, null, 6379]) {
      expect(() => createProducer({ connection } as unknown as ProducerOptions)).toThrow(/^createProducer: connection is required/);
    }
  });

  it('rejects quickly with UNAVAILABLE when nothing listens on the Redis port', async () => {
    const port = await freePort();
    const p = producer({ keyPrefix: prefix(), connection: `redis://127.0.0.1:${port}` });
    const started = Date.now();
    const err = await rejection(p.notify(hello));
    expect(err.code).toBe('UNAVAILABLE');
    const many = await rejection(p.notifyMany([hello]));
    expect(many.code).toBe('UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(3000);

    const closing = Date.now();
    await p.close();
    expect(Date.now() - closing).toBeLessThan(3000);
  });

  it('closes without leaving a rejection behind while it is still connecting', async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    const port = await freePort();
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket));
    try {
      const errors: Error[] = [];
      const p = createProducer({ connection: `redis://127.0.0.1:${port}`, keyPrefix: prefix(), onError: (err) => errors.push(err) });
      await eventually(() => errors.length > 0, { what: 'a refused connection' });
      // Now something listens there that never answers: the next attempt connects and waits.
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      await eventually(() => sockets.length > 0, { what: 'the next attempt' });
      const closing = Date.now();
      await p.close();
      expect(Date.now() - closing).toBeLessThan(1000);
      // The connection ends once the server lets go; BullMQ's wait for it fails then, and that
      // failure must reach the error callback, not become an unhandled rejection.
      const before = errors.length;
      for (const socket of sockets) socket.destroy();
      await eventually(() => errors.length > before || unhandled.length > 0, { what: 'the end of the connection attempt' });
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', record);
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });

  describe('when Redis goes away', () => {
    let server: RedisHandle;
    beforeAll(async () => {
      // appendonly asks for a local redis-server, which can be killed and started again
      server = await startRedis({ fresh: true, appendonly: true });
    });
    afterAll(async () => {
      await server.stop();
    });

    it('rejects quickly with UNAVAILABLE, and works again once Redis is back', async () => {
      const p = producer({ keyPrefix: prefix(), connection: server.url });
      await p.notify(hello);
      await server.kill!();

      const started = Date.now();
      const err = await rejection(p.notify(hello));
      expect(err.code).toBe('UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(3000);

      await server.start!();
      const deadline = Date.now() + 10_000;
      let enqueued: { id: string } | undefined;
      while (!enqueued && Date.now() < deadline) {
        enqueued = await p.notify(hello).catch(() => undefined);
      }
      expect(enqueued?.id).toBeDefined();
    });
  });
});
