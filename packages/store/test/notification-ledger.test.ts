import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import type { NotificationJob } from '@switchboard/protocol';
import { deleteKeys, eventually, randomKeyPrefix } from '@switchboard/testkit';
import { InboxStore, InboxWriteError } from '../src/inbox.js';
import { keys } from '../src/keys.js';
import { assignedNotificationId, NotificationLedger, notificationDigest } from '../src/notification-ledger.js';

let redis: Redis;
let prefix: string;
let ledger: NotificationLedger;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  redis.on('error', () => {});
});
afterAll(() => redis.quit());
beforeEach((context) => {
  prefix = randomKeyPrefix();
  ledger = new NotificationLedger(redis, keys(prefix), 60);
  context.onTestFinished(() => deleteKeys(redis, prefix));
});

/** Runs `fn` subscribed to `channel`; `got` fills with the messages published there, in order. */
async function listening(channel: string, fn: (got: string[]) => Promise<void>): Promise<void> {
  const sub = redis.duplicate();
  const got: string[] = [];
  sub.on('messageBuffer', (_ch: Buffer, message: Buffer) => got.push(message.toString()));
  await sub.subscribe(channel);
  try {
    await fn(got);
  } finally {
    await sub.quit();
  }
}

const job: NotificationJob = { id: 'n-1', to: { userId: 'ann' }, type: 'order', title: 'Shipped', data: { a: 1, b: [1, 2] } };

describe('notificationDigest', () => {
  it('depends on the content, not on the id, key order or an explicit default', () => {
    const d = notificationDigest(job);
    expect(d).toHaveLength(22);
    expect(notificationDigest({ ...job, id: 'other' })).toBe(d);
    expect(notificationDigest({ type: 'order', data: { b: [1, 2], a: 1 }, title: 'Shipped', to: { userId: 'ann' } })).toBe(d);
    expect(notificationDigest({ ...job, persist: true })).toBe(d);
    expect(notificationDigest({ ...job, persist: false })).not.toBe(d);
    expect(notificationDigest({ ...job, title: 'Delivered' })).not.toBe(d);
    expect(notificationDigest({ ...job, to: { userIds: ['ann'] } })).not.toBe(d);
  });
});

describe('assignedNotificationId', () => {
  it('names a job without id by its job id, in a form no producer id can take', () => {
    expect(assignedNotificationId('42')).toBe('job:42');
    expect(assignedNotificationId('repeat:9f2c:1700000000000')).toBe('job:repeat:9f2c:1700000000000');
    const odd = assignedNotificationId('order 42/shipped ✓');
    expect(odd).toMatch(/^job:h\.[A-Za-z0-9_-]{32}$/);
    expect(assignedNotificationId('order 42/shipped ✓')).toBe(odd);
  });
});

describe('NotificationLedger', () => {
  it('lets one owner deliver an id; others wait; once delivered, everyone is told so', async () => {
    const d = notificationDigest(job);
    expect(await ledger.claim('n-1', d, 'job-a', 10_000)).toEqual({ state: 'claimed' });
    expect(await ledger.claim('n-1', d, 'job-a', 10_000)).toEqual({ state: 'claimed' }); // its own retry
    const busy = await ledger.claim('n-1', d, 'job-b', 10_000);
    expect(busy.state).toBe('busy');
    expect(busy.state === 'busy' && busy.retryAfterMs).toBeGreaterThan(9000);
    expect(await ledger.complete('n-1', d)).toBe(true);
    expect(await ledger.claim('n-1', d, 'job-b', 10_000)).toEqual({ state: 'done' });
    expect(await ledger.record('n-1')).toEqual({ digest: d, delivered: true });
    expect(await redis.ttl(keys(prefix).notification('n-1'))).toBeGreaterThan(50);
  });

  it('lets another owner take over once the lease ran out (its job died)', async () => {
    const d = notificationDigest(job);
    await ledger.claim('n-2', d, 'job-a', 1);
    await eventually(async () => (await ledger.claim('n-2', d, 'job-b', 10_000)).state === 'claimed');
  });

  it('tells a reuse of the id with other content apart', async () => {
    const d = notificationDigest(job);
    await ledger.claim('n-3', d, 'job-a', 10_000);
    expect(await ledger.claim('n-3', notificationDigest({ ...job, title: 'Other' }), 'job-b', 10_000)).toEqual({ state: 'conflict' });
    await ledger.complete('n-3', d);
    expect(await ledger.claim('n-3', notificationDigest({ ...job, title: 'Other' }), 'job-b', 10_000)).toEqual({ state: 'conflict' });
  });

  it('publishes an id at most once, in the step that marks it delivered', async () => {
    const d = notificationDigest(job);
    const channel = `${prefix}:ledger-channel`;
    await listening(channel, async (got) => {
      await ledger.claim('n-4', d, 'job-a', 10_000);
      const publish = [{ channel, message: Buffer.from('n-4'), sharded: false }];
      const results = await Promise.all([ledger.complete('n-4', d, publish), ledger.complete('n-4', d, publish), ledger.complete('n-4', d, publish)]);
      expect(results.filter(Boolean)).toHaveLength(1);
      await redis.publish(channel, 'marker');
      await eventually(() => got.includes('marker'));
      expect(got).toEqual(['n-4', 'marker']);
    });
  });

  it('forgets an id after the window', async () => {
    const short = new NotificationLedger(redis, keys(prefix), 1);
    const d = notificationDigest(job);
    await short.claim('n-5', d, 'job-a', 10_000);
    await short.complete('n-5', d);
    await eventually(async () => (await short.record('n-5')) === undefined, { timeoutMs: 5000 });
    expect(await short.claim('n-5', d, 'job-b', 10_000)).toEqual({ state: 'claimed' });
  });

  it('refuses a window that is not a positive integer', () => {
    expect(() => new NotificationLedger(redis, keys(prefix), 0)).toThrow(RangeError);
  });
});

describe('NotificationLedger.deliver: claim, store and publish in one step', () => {
  const notification = { id: 'n-1', type: 'order', title: 'Shipped', data: { a: 1, b: [1, 2] }, ts: 1_700_000_000_000 };
  let inbox: InboxStore;
  beforeEach(() => {
    inbox = new InboxStore(redis, keys(prefix), { maxItems: 10, ttlSec: 3600 });
  });

  it('stores for every user and publishes once; a second job with the id is told it is done and changes nothing', async () => {
    const d = notificationDigest(job);
    const channel = `${prefix}:one-step`;
    await listening(channel, async (got) => {
      const publish = [{ channel, message: Buffer.from('n-1'), sharded: false }];
      const entry = inbox.entry(['ann', 'bob'], notification);
      expect(await ledger.deliver('n-1', d, 'job-a', 10_000, entry, publish)).toEqual({ state: 'delivered' });
      expect(await ledger.deliver('n-1', d, 'job-b', 10_000, entry, publish)).toEqual({ state: 'done' });
      expect(await ledger.record('n-1')).toEqual({ digest: d, delivered: true });
      for (const user of ['ann', 'bob']) {
        expect(await inbox.list(user)).toEqual({ items: [{ ...notification, read: false }], unread: 1 });
      }
      await redis.publish(channel, 'marker');
      await eventually(() => got.includes('marker'));
      expect(got).toEqual(['n-1', 'marker']);
    });
  });

  it('writes and publishes nothing for an id another job holds or that was used for other content', async () => {
    const d = notificationDigest(job);
    const channel = `${prefix}:one-step-refused`;
    await listening(channel, async (got) => {
      const publish = [{ channel, message: Buffer.from('x'), sharded: false }];
      await ledger.claim('n-1', d, 'job-a', 10_000);
      const busy = await ledger.deliver('n-1', d, 'job-b', 10_000, inbox.entry(['ann'], notification), publish);
      expect(busy.state === 'busy' && busy.retryAfterMs).toBeGreaterThan(9000);
      const other = notificationDigest({ ...job, title: 'Other' });
      expect(await ledger.deliver('n-1', other, 'job-c', 10_000, inbox.entry(['ann'], notification), publish)).toEqual({ state: 'conflict' });
      expect(await inbox.list('ann')).toEqual({ items: [], unread: 0 });
      await redis.publish(channel, 'marker');
      await eventually(() => got.includes('marker'));
      expect(got).toEqual(['marker']);
    });
  });

  it('publishes nothing when an inbox write is refused, stores for the others, and lets the same job complete it later', async () => {
    const d = notificationDigest(job);
    const channel = `${prefix}:one-step-failed`;
    await listening(channel, async (got) => {
      const publish = [{ channel, message: Buffer.from('n-1'), sharded: false }];
      await redis.set(keys(prefix).inbox('bob'), 'not a zset');
      const entry = inbox.entry(['ann', 'bob'], notification);
      const err: unknown = await ledger.deliver('n-1', d, 'job-a', 10_000, entry, publish).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InboxWriteError);
      expect((err as Error).message).toMatch(/^1 of 2 inbox writes failed: WRONGTYPE/);
      expect(await ledger.record('n-1')).toEqual({ digest: d, delivered: false });
      expect((await inbox.list('ann')).unread).toBe(1);
      await redis.publish(channel, 'marker');
      await eventually(() => got.includes('marker'));
      expect(got).toEqual(['marker']);

      await redis.del(keys(prefix).inbox('bob'));
      expect(await ledger.deliver('n-1', d, 'job-a', 10_000, entry, publish)).toEqual({ state: 'delivered' });
      expect((await inbox.list('ann')).unread).toBe(1); // stored once
      expect((await inbox.list('bob')).unread).toBe(1);
      await redis.publish(channel, 'marker-2');
      await eventually(() => got.includes('marker-2'));
      expect(got).toEqual(['marker', 'n-1', 'marker-2']);
    });
  });

  it('publishes a notification stored nowhere (a room or a broadcast) with the id marked delivered', async () => {
    const d = notificationDigest({ ...job, to: { room: 'public:r' } });
    const channel = `${prefix}:one-step-room`;
    await listening(channel, async (got) => {
      expect(await ledger.deliver('n-9', d, 'job-a', 10_000, undefined, [{ channel, message: Buffer.from('n-9'), sharded: false }])).toEqual({
        state: 'delivered',
      });
      expect(await ledger.record('n-9')).toEqual({ digest: d, delivered: true });
      expect(await redis.ttl(keys(prefix).notification('n-9'))).toBeGreaterThan(50);
      await eventually(() => got.includes('n-9'));
    });
  });
});
