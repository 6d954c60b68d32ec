import { Emitter } from '@socket.io/redis-emitter';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createProducer } from '@switchboard/producer';
import { ioKey, NOTIFICATIONS_QUEUE, SwitchboardError, type ServerToClientEvents } from '@switchboard/protocol';
import { keys } from '@switchboard/store';
import { eventually, randomKeyPrefix, startRedis } from '@switchboard/testkit';
import { connect, primeClients, spawnDispatcher, startDispatcher, startIoServer } from './helpers.js';

describe('Redis outages', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it('a dispatcher process rides out a Redis restart: every job is stored and later ones delivered', { timeout: 60_000 }, async () => {
    const server = await startRedis({ fresh: true, appendonly: true });
    cleanup.push(() => server.stop());
    const prefix = randomKeyPrefix();
    const user = 'outage-user';

    const io = await startIoServer(server.url, prefix);
    cleanup.push(() => io.close());
    const client = await connect(io.port, { userId: user });
    cleanup.push(async () => client.close());
    const redis = new Redis(server.url);
    redis.on('error', () => {});
    cleanup.push(async () => redis.disconnect());
    await primeClients(new Emitter<ServerToClientEvents>(redis, { key: ioKey(prefix) }), [client]);

    const dispatcher = spawnDispatcher({
      REDIS_URL: server.url,
      KEY_PREFIX: prefix,
      STALLED_INTERVAL_MS: '500',
      REDIS_DOWN_EXIT_MS: '30000',
      INBOX_MAX_ITEMS: '100000',
    });
    cleanup.push(() => dispatcher.kill());
    const producer = createProducer({ connection: server.url, keyPrefix: prefix });
    cleanup.push(() => producer.close());

    // A stream of jobs that goes on while Redis restarts and for a while after; a rejected job
    // is sent again with the same id, as a producer should.
    const ids: string[] = [];
    let restart: Promise<void> | undefined;
    let restarted = false;
    let sentAfter = 0;
    for (let tries = 0; tries < 10_000 && !(restarted && sentAfter >= 100); tries++) {
      if (ids.length === 100 && !restart) restart = server.restart!().then(() => void (restarted = true));
      const id = `stream-${ids.length}`;
      try {
        await producer.notify({ id, to: { userId: user }, type: 'stream' });
        ids.push(id);
        if (restarted) sentAfter++;
      } catch (err) {
        if (!(err instanceof SwitchboardError) || err.code !== 'UNAVAILABLE') throw err;
      }
    }
    await restart;
    expect(sentAfter).toBe(100);
    const total = ids.length;

    const queue = new Queue(NOTIFICATIONS_QUEUE, { connection: redis, prefix });
    queue.on('error', () => {});
    cleanup.push(() => queue.close());
    await eventually(async () => (await queue.getCompletedCount()) === total, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'every job completed after the restart',
    });
    expect(await queue.getFailedCount()).toBe(0);
    expect(dispatcher.child.exitCode).toBeNull();

    const k = keys(prefix);
    expect((await redis.zrange(k.inbox(user), 0, -1)).sort()).toEqual([...ids].sort());
    expect(await redis.scard(k.inboxUnread(user))).toBe(total);

    // live delivery works again once everything is back
    const { id } = await producer.notify({ to: { userId: user }, type: 'after.restart' });
    const got = await client.next((n) => n.id === id, 15_000);
    expect(got.type).toBe('after.restart');
  });

  it('the watchdog exits the process non-zero when Redis stays down too long', { timeout: 30_000 }, async () => {
    const server = await startRedis({ fresh: true, appendonly: true });
    cleanup.push(() => server.stop());
    const prefix = randomKeyPrefix();
    const dispatcher = spawnDispatcher({ REDIS_URL: server.url, KEY_PREFIX: prefix, REDIS_DOWN_EXIT_MS: '1000' });
    cleanup.push(() => dispatcher.kill());

    const redis = new Redis(server.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    cleanup.push(async () => redis.disconnect());
    const queue = new Queue(NOTIFICATIONS_QUEUE, { connection: redis, prefix });
    queue.on('error', () => {});
    cleanup.push(() => queue.close());
    const job = await queue.add('n', { to: { broadcast: true }, type: 'ping' });
    await eventually(async () => (await job.getState()) === 'completed', { what: 'the dispatcher to be working' });

    await server.kill!();
    const downAt = Date.now();
    const exit = await Promise.race([
      dispatcher.exited,
      new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 15_000)),
    ]);
    expect(exit).toEqual({ code: 1, signal: null });
    expect(Date.now() - downAt).toBeGreaterThanOrEqual(900);
    expect(dispatcher.logs().some((l) => l.level === 60 && l.msg === 'redis unreachable for too long')).toBe(true);
  });
  it('takes back at once the jobs a Redis that lost writes shows active in its name, and leaves other workers\' alone', { timeout: 30_000 }, async () => {
    const server = await startRedis({ fresh: true });
    cleanup.push(() => server.stop());
    const prefix = randomKeyPrefix();
    const redis = new Redis(server.url);
    redis.on('error', () => {});
    cleanup.push(async () => redis.disconnect());
    const queue = new Queue(NOTIFICATIONS_QUEUE, { connection: redis, prefix });
    queue.on('error', () => {});
    cleanup.push(() => queue.close());
    // the default lock and stalled check: without the recovery these jobs would wait about a minute
    const { dispatcher, close } = await startDispatcher(server.url, prefix, { STALLED_INTERVAL_MS: '30000' });
    cleanup.push(close);
    const worker = dispatcher.worker;
    await worker.pause(true);

    // What Redis holds after coming back from an older snapshot or a failover to a lagging
    // replica: jobs this worker had completed are active again, one with this worker's lock, one
    // with no lock; and one is active under another worker's live lock.
    const [ours, lockless, theirs] = await Promise.all(
      ['ours', 'lockless', 'theirs'].map((name) => queue.add('n', { id: `orphan-${name}`, to: { userId: 'orphan-user' }, type: 'orphan' })),
    );
    const toActive = async (jobId: string, lock?: string) => {
      await redis.lrem(queue.toKey('wait'), 1, jobId);
      await redis.lpush(queue.toKey('active'), jobId);
      if (lock) await redis.set(`${queue.toKey(jobId)}:lock`, lock, 'PX', 30_000);
    };
    await toActive(ours!.id!, `${worker.id}:7`);
    await toActive(lockless!.id!);
    await toActive(theirs!.id!, 'another-worker:1');
    worker.resume();

    await redis.client('KILL', 'TYPE', 'normal'); // the restart: every connection drops and comes back
    await eventually(async () => (await ours!.getState()) === 'completed' && (await lockless!.getState()) === 'completed', {
      timeoutMs: 10_000,
      what: 'the orphaned jobs completed',
    });
    expect(await theirs!.getState()).toBe('active');
    const inbox = await redis.zrange(keys(prefix).inbox('orphan-user'), 0, -1);
    expect(inbox.sort()).toEqual(['orphan-lockless', 'orphan-ours']);
  });
});
