import { Job, Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NOTIFICATIONS_QUEUE } from '@switchboard/protocol';
import { closeRedis, createRedisClient, isCluster, queuePrefix, type RedisClient } from '@switchboard/store';
import { eventually } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';
import { schemas } from '../src/index.js';
import type { FailedJob, StatsResponse } from '../src/schemas.js';
import { assertShape, startAdmin, startDispatcher, type ErrorAnswer, type TestAdmin, type TestDispatcher } from './helpers.js';

interface QueueReport {
  counts: StatsResponse['queue'];
  failed: FailedJob[];
}

describe('notification queue inspection and retry', () => {
  let cluster: Cluster;
  let admin: TestAdmin;
  let dispatcher: TestDispatcher;
  let connection: RedisClient;
  let queue: Queue;

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
    admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix });
    dispatcher = await startDispatcher(cluster.redisEnv, cluster.keyPrefix);
    // a backend service enqueueing with plain BullMQ, as SPEC §6 allows
    connection = createRedisClient(cluster.redisConfig, 'test-queue', { warn: () => {} });
    queue = new Queue(NOTIFICATIONS_QUEUE, { connection, prefix: queuePrefix(cluster.keyPrefix, isCluster(connection)) });
  });
  afterAll(async () => {
    await queue?.close();
    if (connection) await closeRedis(connection);
    await admin?.close();
    await dispatcher?.close();
    await cluster?.stop();
  });

  const report = async (query = '') => {
    const res = await admin.call<QueueReport>('GET', `/v1/queues/notifications${query}`);
    expect(res.status).toBe(200);
    assertShape(schemas.QueueResponse, res.body);
    return res.body;
  };

  it('lists failed jobs without their data, and retries one', async () => {
    const secret = 'do-not-show-this-payload';
    const bad = await queue.add('raw-bullmq', { to: { nobody: secret }, type: 'orders.shipped', data: { secret } }, { attempts: 3 });
    const badId = bad.id!;
    const failed = await eventually(async () => (await report()).failed.find((j) => j.id === badId), { timeoutMs: 10_000 });
    expect(failed).toEqual({
      id: badId,
      name: 'raw-bullmq',
      failedReason: expect.stringContaining('/to'),
      attemptsMade: 1, // invalid data is never retried by the dispatcher
      timestamp: bad.timestamp,
      finishedOn: expect.any(Number),
      type: 'orders.shipped',
    });
    const r = await report();
    expect(JSON.stringify(r)).not.toContain(secret);
    expect(r.counts.failed).toBe(1);
    // the same counts as /v1/stats
    expect((await admin.call<StatsResponse>('GET', '/v1/stats')).body.queue).toEqual(r.counts);

    const retry = await admin.call('POST', `/v1/queues/notifications/jobs/${badId}/retry`);
    expect(retry.status).toBe(202);
    assertShape(schemas.RetryResponse, retry.body);
    expect(retry.body).toEqual({ id: badId });
    // processed again: it fails again (its data is still invalid), with attempts counted afresh
    const again = await eventually(
      async () => {
        const job = (await report()).failed.find((j) => j.id === badId);
        return job && job.finishedOn! > failed.finishedOn! ? job : undefined;
      },
      { timeoutMs: 10_000 },
    );
    expect(again.attemptsMade).toBe(1);
    expect((await Job.fromId(queue, badId))?.attemptsStarted).toBe(1);
  });

  it('lists the most recent failures first, at most `limit`, with their target kind', async () => {
    const ids: string[] = [];
    for (const to of [{ userId: 'x y' }, { room: 'no-colon' }, { userIds: [] }]) {
      const job = await queue.add('bad', { to, type: 'bad.target' }, { attempts: 1 });
      ids.push(job.id!);
      await eventually(async () => (await job.getState()) === 'failed', { timeoutMs: 10_000 });
    }
    const r = await report('?limit=2');
    expect(r.failed.map((j) => j.id)).toEqual([ids[2], ids[1]]);
    expect(r.failed.map((j) => j.target)).toEqual(['users', 'room']);
    expect((await report('?limit=100')).failed.map((j) => j.id).slice(0, 3)).toEqual([ids[2], ids[1], ids[0]]);
  });

  it('answers 404 for an unknown job and 409 for a job that is not failed', async () => {
    const unknown = await admin.call<ErrorAnswer>('POST', '/v1/queues/notifications/jobs/no-such-job/retry');
    expect(unknown.status).toBe(404);
    assertShape(schemas.ErrorResponse, unknown.body);
    expect(unknown.body.error).toEqual({ code: 'NOT_FOUND', message: 'Job not found' });

    const sent = await admin.call<{ id: string; jobId: string }>('POST', '/v1/notifications', { body: { to: { userId: 'someone' }, type: 'ok' } });
    expect(sent.status).toBe(202);
    await eventually(async () => (await Job.fromId(queue, sent.body.jobId))?.finishedOn !== undefined, { timeoutMs: 10_000 });
    const done = await admin.call<ErrorAnswer>('POST', `/v1/queues/notifications/jobs/${sent.body.jobId}/retry`);
    expect(done.status).toBe(409);
    assertShape(schemas.ErrorResponse, done.body);
    expect(done.body.error).toEqual({ code: 'CONFLICT', message: 'Job is completed, not failed', details: { state: 'completed' } });

    const later = await queue.add('later', { to: { userId: 'someone' }, type: 'later' }, { delay: 60_000 });
    const delayed = await admin.call<ErrorAnswer>('POST', `/v1/queues/notifications/jobs/${later.id}/retry`);
    expect(delayed.status).toBe(409);
    expect(delayed.body.error.details).toEqual({ state: 'delayed' });
    expect((await report()).counts.delayed).toBe(1);
  });
});
