import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createProducer, type Producer } from '@switchboard/producer';
import { NOTIFICATIONS_QUEUE, type NotificationJob } from '@switchboard/protocol';
import { keys } from '@switchboard/store';
import { deleteKeys, eventually, randomKeyPrefix } from '@switchboard/testkit';
import { spawnDispatcher, type DispatcherProcess } from './helpers.js';

const JOBS = 4000;
const USERS = Array.from({ length: 25 }, (_, i) => `crash-user-${i}`);

describe('a dispatcher killed with SIGKILL while processing', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('loses no job: a new dispatcher finishes them all, one inbox entry per id', { timeout: 60_000 }, async () => {
    const redisUrl = inject('redisUrl');
    const prefix = randomKeyPrefix();
    const redis = new Redis(redisUrl);
    redis.on('error', () => {});
    const queue = new Queue(NOTIFICATIONS_QUEUE, { connection: redis, prefix });
    queue.on('error', () => {});
    const producer: Producer = createProducer({ connection: redisUrl, keyPrefix: prefix });
    cleanup.push(async () => {
      await producer.close();
      await queue.close();
      await deleteKeys(redis, prefix);
      await redis.quit();
    });

    const jobs: NotificationJob[] = Array.from({ length: JOBS }, (_, i) => ({
      id: `job-${i}`,
      to: { userIds: USERS },
      type: 'load.test',
    }));
    for (let i = 0; i < JOBS; i += 500) await producer.notifyMany(jobs.slice(i, i + 500));
    expect(await queue.getWaitingCount()).toBe(JOBS);

    const env = {
      REDIS_URL: redisUrl,
      KEY_PREFIX: prefix,
      STALLED_INTERVAL_MS: '500',
      INBOX_MAX_ITEMS: String(JOBS * 2),
    };
    const first: DispatcherProcess = spawnDispatcher(env);
    cleanup.push(() => first.kill());
    await eventually(async () => (await queue.getCompletedCount()) >= JOBS / 10, {
      intervalMs: 5,
      what: 'the first dispatcher to make progress',
    });
    const killed = await first.kill('SIGKILL');
    expect(killed.signal).toBe('SIGKILL');

    const atKill = await queue.getJobCounts('completed', 'active', 'waiting');
    expect(atKill.completed).toBeLessThan(JOBS);
    // jobs the dead process held: they stay active until their lock expires
    expect(atKill.active).toBeGreaterThan(0);

    const second = spawnDispatcher(env);
    cleanup.push(() => second.kill());
    await eventually(async () => (await queue.getCompletedCount()) === JOBS, {
      timeoutMs: 40_000,
      intervalMs: 50,
      what: `all ${JOBS} jobs completed`,
    });
    expect(await queue.getFailedCount()).toBe(0);

    const k = keys(prefix);
    const expected = jobs.map((j) => j.id!).sort();
    for (const user of USERS) {
      const [ids, items, unread] = await Promise.all([
        redis.zrange(k.inbox(user), 0, -1),
        redis.hlen(k.inboxItems(user)),
        redis.scard(k.inboxUnread(user)),
      ]);
      expect(ids.sort()).toEqual(expected);
      expect(items).toBe(JOBS);
      expect(unread).toBe(JOBS);
    }
  });
});
