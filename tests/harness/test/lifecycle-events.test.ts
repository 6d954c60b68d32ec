import { Queue, Worker } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { EVENTS_QUEUE, type LifecycleEvent } from '@switchboard/protocol';
import { closeRedis, createRedisClient, isCluster, queuePrefix, type RedisClient } from '@switchboard/store';
import { eventually, scrapeMetric } from '@switchboard/testkit';
import {
  startAdminProcess,
  startCluster,
  startDispatcherProcess,
  startWebhookReceiver,
  verifySignature,
  type Cluster,
  type ProcessHandle,
  type TestClient,
  type WebhookReceiver,
} from '../src/index.js';

const HEARTBEAT = 500;
/** A silent pod is reaped within three intervals; then relayed and posted (50 ms batches). Slack for a loaded machine. */
const REAP_BOUND = 3 * HEARTBEAT + 3000;
const SECRET = 'lifecycle-events-test-secret-0123456789';
const API_KEY = 'lifecycle-events-admin-key-0123456789';

/** Events of a room or a user of this test (the receiver only ever sees this test's prefix anyway). */
const about = (e: LifecycleEvent, name: string) => ('room' in e.data && e.data.room === name) || ('userId' in e.data && e.data.userId === name && !('room' in e.data));
const brief = (e: LifecycleEvent) => `${e.type} ${'room' in e.data ? e.data.room : ''}${'userId' in e.data ? `/${e.data.userId}` : ''} ${e.cause}`.replace('  ', ' ');

/** Every id once; `seq` strictly increasing per room (room and member events) and per user (user events). */
function expectOrdered(events: LifecycleEvent[]): void {
  const ids = events.map((e) => e.id);
  expect(new Set(ids).size, 'each id once').toBe(ids.length);
  const last = new Map<string, number>();
  for (const e of events) {
    const key = 'room' in e.data ? `room ${e.data.room}` : `user ${e.data.userId}`;
    const prev = last.get(key) ?? 0;
    expect(e.seq, `${brief(e)} after seq ${prev} of ${key}`).toBeGreaterThan(prev);
    last.set(key, e.seq);
  }
}

async function waitClosed(c: TestClient): Promise<void> {
  if (!c.connected) return;
  await new Promise<void>((resolve) => {
    c.once('disconnect', () => resolve());
    c.close();
  });
}

describe('lifecycle events to a webhook and the events queue', () => {
  let cluster: Cluster;
  let receiver: WebhookReceiver;
  const dispatchers: ProcessHandle[] = [];
  let admin: ProcessHandle | undefined;
  let eventsQueue: Queue;
  let redis: RedisClient;

  const startDispatcher = async (env: Record<string, string> = {}) => {
    const d = await startDispatcherProcess({
      redis: cluster.redisEnv,
      keyPrefix: cluster.keyPrefix,
      env: { EVENTS_QUEUE: 'true', WEBHOOK_URLS: receiver.url, WEBHOOK_SECRET: SECRET, STALLED_INTERVAL_MS: '1000', ...env },
    });
    dispatchers.push(d);
    return d;
  };

  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    cluster = await startCluster({
      redis: inject('redis'),
      gateways: 2,
      processes: true,
      env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT), EVENTS_QUEUE: 'true', MAX_CONNECTIONS_PER_USER: '20' },
    });
    redis = cluster.redis;
    eventsQueue = new Queue(EVENTS_QUEUE, { connection: redis, prefix: queuePrefix(cluster.keyPrefix, isCluster(redis)) });
  }, 60_000);
  afterEach(async () => {
    receiver.mode = 'ok';
    await Promise.all(dispatchers.splice(0).map((d) => d.stop()));
    await admin?.stop();
    admin = undefined;
  });
  afterAll(async () => {
    await eventsQueue?.close();
    await cluster?.stop();
    await receiver?.close();
  });

  it('a gateway killed with SIGKILL: member.removed, room.vacated and user.offline for each of its users, cause reaped, within the reap bound', async () => {
    await startDispatcher();
    const gw = cluster.gateways[0]!;
    const users = ['k-ann', 'k-bob', 'k-cy'];
    const clients: TestClient[] = [];
    for (const sub of users) {
      const c = await cluster.connect({ sub, gateway: 0, options: { reconnection: false } });
      clients.push(c);
      expect((await c.emitWithAck('room:join', { room: 'public:k1' })).ok).toBe(true);
    }
    expect((await clients[2]!.emitWithAck('room:join', { room: 'public:k2' })).ok).toBe(true);
    // a member on the other pod keeps public:k1 occupied
    const stays = await cluster.connect({ sub: 'k-dee', gateway: 1 });
    expect((await stays.emitWithAck('room:join', { room: 'public:k1' })).ok).toBe(true);
    await eventually(() => receiver.events.filter((e) => e.type === 'member.added' && e.data.room.startsWith('public:k')).length === 5, {
      timeoutMs: 5000,
      what: 'the joins delivered',
    });

    const before = receiver.events.length;
    const killedAt = Date.now();
    await gw.kill();
    const expected = [
      ...users.flatMap((u) => [`member.removed public:k1/${u} reaped`, `user.offline /${u} reaped`]),
      'member.removed public:k2/k-cy reaped',
      'room.vacated public:k2 reaped',
    ].sort();
    const departures = () => receiver.events.slice(before);
    await eventually(() => departures().length >= expected.length, { timeoutMs: REAP_BOUND + 5000, what: `${expected.length} departures` });
    const tookMs = Date.now() - killedAt;
    expect(departures().map(brief).sort()).toEqual(expected);
    expect(tookMs).toBeLessThan(REAP_BOUND);
    for (const e of departures()) if (e.type === 'user.offline') expect(e.data.lastSeen).toBeGreaterThan(0);
    // public:k1 is still occupied by k-dee: no room.vacated for it
    expect(departures().some((e) => e.type === 'room.vacated' && e.data.room === 'public:k1')).toBe(false);
    expectOrdered(receiver.events);
    // within one transition the room's member.removed precedes its room.vacated
    const k2 = departures().filter((e) => about(e, 'public:k2')).map((e) => e.type);
    expect(k2).toEqual(['member.removed', 'room.vacated']);

    // the same events on the queue, job id = event id, name = type
    await eventually(async () => (await eventsQueue.getJobCountByTypes('waiting')) >= receiver.events.length, { what: 'the queue jobs' });
    const jobs = await eventsQueue.getWaiting(0, -1);
    const byId = new Map(jobs.map((j) => [j.id, j]));
    for (const e of departures()) {
      const job = byId.get(e.id);
      expect(job?.name, e.id).toBe(e.type);
      expect(job?.data).toEqual(e);
    }

    for (const c of clients) c.close();
    await waitClosed(stays);
    await gw.respawn();
    // every signature verified; a tampered body or an old timestamp fails the same check
    expect(receiver.refused).toBe(0);
    const sample = receiver.requests.at(-1)!;
    expect(verifySignature(SECRET, sample, 5 * 60_000, Number(sample.timestamp))).toBe(true);
    const tampered = Buffer.from(sample.body.toString('utf8').replace('"seq":', '"seq":1'));
    expect(verifySignature(SECRET, { ...sample, body: tampered })).toBe(false);
    expect(verifySignature(SECRET, sample, 5 * 60_000, Number(sample.timestamp) + 5 * 60_000 + 1)).toBe(false);
  }, 60_000);

  it('a receiver down for 30 s while users come and go gets every event after it returns, none twice, in seq order per room; two dispatchers share the work', async () => {
    await startDispatcher();
    await startDispatcher();
    const start = receiver.events.length;
    receiver.mode = 'fail';
    const downAt = Date.now();
    const rooms = ['public:d1', 'public:d2', 'public:d3'];
    const resting: TestClient[] = [];
    // 24 rounds, one a second: a user connects on either pod, joins, sometimes leaves, mostly goes
    for (let round = 0; round < 24; round++) {
      const user = `d-u${round % 6}`;
      const room = rooms[round % rooms.length]!;
      const c = await cluster.connect({ sub: user, gateway: round % 2 });
      expect((await c.emitWithAck('room:join', { room })).ok).toBe(true);
      if (round % 3 === 0) expect((await c.emitWithAck('room:leave', { room })).ok).toBe(true);
      if (round % 4 === 0) resting.push(c);
      else await waitClosed(c);
      // refused for the first half, unanswered (connection closed) for the second
      if (round === 12) receiver.mode = 'drop';
      await eventually(() => Date.now() - downAt >= (round + 1) * 1000, { timeoutMs: 30_000, intervalMs: 50, what: `round ${round}'s second` });
    }
    for (const c of resting) await waitClosed(c);
    // the rest of the 30 s, while the dispatchers keep retrying
    await eventually(() => Date.now() - downAt >= 30_000, { timeoutMs: 35_000, intervalMs: 250, what: '30 s of a receiver down' });
    expect(receiver.events.length).toBe(start);
    const failedWhileDown = receiver.failed;
    expect(failedWhileDown).toBeGreaterThan(3);

    // the truth: every event of the test is a job of the events queue
    const ours = (e: LifecycleEvent) => rooms.some((r) => about(e, r)) || ('userId' in e.data && !('room' in e.data) && e.data.userId.startsWith('d-u'));
    const queued = async () => (await eventsQueue.getWaiting(0, -1)).map((j) => j.data as LifecycleEvent).filter(ours);
    receiver.mode = 'ok';
    const expectedCount = (await queued()).length;
    expect(expectedCount).toBeGreaterThan(20);
    // backoff is capped at 10 s
    await eventually(() => receiver.events.slice(start).filter(ours).length >= expectedCount, { timeoutMs: 20_000, what: `${expectedCount} events delivered` });
    const got = receiver.events.slice(start).filter(ours);
    expect(new Set(got.map((e) => e.id))).toEqual(new Set((await queued()).map((e) => e.id)));
    expectOrdered(got);
    // a plain BullMQ worker, one job at a time, gets them in seq order per room and per user
    const consumed: LifecycleEvent[] = [];
    const connection = createRedisClient(cluster.redisConfig, 'test-events-worker', { warn: () => {} }, { maxRetriesPerRequest: null });
    const worker = new Worker(EVENTS_QUEUE, async (job) => void consumed.push(job.data as LifecycleEvent), {
      connection,
      prefix: eventsQueue.opts.prefix!,
      concurrency: 1,
    });
    try {
      await eventually(() => consumed.filter(ours).length >= expectedCount, { timeoutMs: 15_000, what: 'the events queue consumed' });
    } finally {
      await worker.close();
      await closeRedis(connection);
    }
    expect(consumed.filter(ours).map((e) => e.id).sort()).toEqual(got.map((e) => e.id).sort());
    expectOrdered(consumed.filter(ours));
    // a user's last socket closing: offline with cause disconnect; leaves with cause leave
    expect(got.some((e) => e.type === 'user.offline' && e.cause === 'disconnect')).toBe(true);
    expect(got.some((e) => e.type === 'member.removed' && e.cause === 'leave')).toBe(true);
    expect(receiver.refused).toBe(0);
    // the endpoint's state and metrics say it failed and recovered
    const failures = await Promise.all(
      dispatchers.map((d) => scrapeMetric(`${d.url}/metrics`, 'switchboard_webhook_requests_total', { result: 'http_error' })),
    );
    expect(failures.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  }, 120_000);

  it('an admin disconnect is cause admin; an endpoint over WEBHOOK_MAX_PENDING sets the oldest aside as a failed batch, listed and retried in the admin API', async () => {
    await startDispatcher({ WEBHOOK_MAX_PENDING: '5' });
    admin = await startAdminProcess({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, apiKeys: [API_KEY] });
    const call = async (method: string, path: string) => {
      const res = await fetch(`${admin!.url}${path}`, { method, headers: { authorization: `Bearer ${API_KEY}` } });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    const start = receiver.events.length;
    const c = await cluster.connect({ sub: 'a-kicked', gateway: 1, options: { reconnection: false } });
    expect((await c.emitWithAck('room:join', { room: 'public:a1' })).ok).toBe(true);
    await eventually(() => receiver.events.slice(start).some((e) => e.type === 'member.added' && e.data.room === 'public:a1'), { what: 'the join delivered' });
    const closed = new Promise<void>((resolve) => c.once('disconnect', () => resolve()));
    expect((await call('POST', '/v1/users/a-kicked/disconnect')).status).toBe(202);
    await closed;
    await eventually(() => receiver.events.slice(start).some((e) => e.type === 'user.offline' && e.data.userId === 'a-kicked'), { what: 'the offline delivered' });
    // events leave within a second of their transition while the outputs are healthy
    const delays = receiver.events.flatMap((e, i) => (i >= start && (about(e, 'public:a1') || about(e, 'a-kicked')) ? [receiver.arrivedAt[i]! - e.ts] : []));
    expect(delays.sort((a, b) => a - b)[Math.floor(delays.length / 2)]).toBeLessThan(1000);
    expect(receiver.events.slice(start).filter((e) => about(e, 'public:a1') || about(e, 'a-kicked')).map(brief)).toEqual([
      'user.online /a-kicked connect',
      'room.occupied public:a1 join',
      'member.added public:a1/a-kicked join',
      'member.removed public:a1/a-kicked admin',
      'room.vacated public:a1 admin',
      'user.offline /a-kicked admin',
    ]);

    // the receiver goes down; 4 joins and leaves (16 events) leave at most 5 pending
    receiver.mode = 'fail';
    const m = await cluster.connect({ sub: 'a-many', gateway: 0 });
    for (let i = 0; i < 4; i++) {
      expect((await m.emitWithAck('room:join', { room: `public:m${i}` })).ok).toBe(true);
      expect((await m.emitWithAck('room:leave', { room: `public:m${i}` })).ok).toBe(true);
    }
    type Failed = { id: string; name: string; failedReason: string; endpoint: string; events: number; firstSeq: number; lastSeq: number };
    let failed: Failed[] = [];
    await eventually(
      async () => {
        const res = await call('GET', '/v1/queues/webhooks');
        failed = (res.body.failed as Failed[]).filter((f) => f.name === 'dropped');
        return failed.reduce((n, f) => n + f.events, 0) >= 11;
      },
      { what: 'the set-aside batches listed' },
    );
    expect(failed.every((f) => /WEBHOOK_MAX_PENDING \(5\)/.test(f.failedReason))).toBe(true);
    type Endpoint = { url: string; pending: number; lastError?: string };
    let endpoints: Endpoint[] = [];
    // the endpoint's batch job meets the receiver's 503 (its first attempt may come after the set-aside)
    await eventually(
      async () => {
        endpoints = (await call('GET', '/v1/webhooks')).body.endpoints as Endpoint[];
        return endpoints[0]?.lastError !== undefined;
      },
      { what: 'the failure recorded' },
    );
    expect(endpoints).toHaveLength(1);
    expect(endpoints[0]).toMatchObject({ url: receiver.url, pending: 5, lastError: 'answered HTTP 503' });

    receiver.mode = 'ok';
    const deliveredBefore = receiver.events.length;
    for (const f of failed) expect((await call('POST', `/v1/queues/webhooks/jobs/${f.id}/retry`)).status).toBe(202);
    // retried batches and the 5 pending: all 16 events of a-many's rooms arrive
    const many = () => receiver.events.slice(deliveredBefore).filter((e) => 'room' in e.data && e.data.room.startsWith('public:m'));
    await eventually(() => many().length >= 16, { timeoutMs: 15_000, what: 'the set-aside and pending events delivered' });
    expect(new Set(many().map((e) => e.id)).size).toBe(16);
    expect((await call('POST', `/v1/queues/webhooks/jobs/${failed[0]!.id}/retry`)).status).toBe(409);
    expect((await call('POST', '/v1/queues/webhooks/jobs/nope-1/retry')).status).toBe(404);
    await waitClosed(m);
  }, 60_000);
});
