import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, eventually, scrapeMetric, startRedis, waitFor, type RedisHandle } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';
import { keys } from '@switchboard/store';

describe('when Redis goes away', () => {
  let redis: RedisHandle;
  let cluster: Cluster;
  beforeAll(async () => {
    redis = await startRedis({ fresh: true });
    cluster = await startCluster({ redis: redis.url, gateways: 1 });
  });
  afterAll(async () => {
    await redis.start?.().catch(() => undefined);
    await cluster?.stop();
    await redis?.stop();
  });

  it('answers UNAVAILABLE and not-ready, refuses handshakes as retryable, and recovers by itself', async () => {
    const c = await cluster.connect('outage-user');
    expect((await c.emitWithAck('room:join', { room: 'public:o' })).ok).toBe(true);
    const g = cluster.gateways[0]!;

    await redis.kill!();
    const ack = await c.emitWithAck('room:join', { room: 'public:o2' });
    expect(ack).toEqual({ ok: false, error: { code: 'UNAVAILABLE', message: 'Temporarily unavailable, retry later' } });
    expect((await c.emitWithAck('presence:watch', { userIds: ['w1', 'w2'] })).ok).toBe(false);
    expect((await c.emitWithAck('session:ping', {})).ok).toBe(true); // what needs no Redis still works
    // typing needs no Redis write, but its broadcast is a publish: it fails, counted, and nothing is left unhandled
    const errorsBefore = await scrapeMetric(`${g.opsUrl}/metrics`, 'switchboard_pubsub_errors_total');
    expect((await c.emitWithAck('room:typing', { room: 'public:o', typing: true })).ok).toBe(true);
    await eventually(async () => (await scrapeMetric(`${g.opsUrl}/metrics`, 'switchboard_pubsub_errors_total')) > errorsBefore, {
      what: 'the failed publish counted',
    });
    await eventually(async () => (await fetch(`${g.url}/readyz`)).status === 503);
    expect((await fetch(`${g.url}/healthz`)).status).toBe(200);
    const refused = await cluster.refused({ sub: 'newcomer' });
    expect(refused).toEqual({ message: 'RATE_LIMITED', data: { code: 'RATE_LIMITED', message: 'Temporarily unavailable, retry later' } });

    await redis.start!();
    await eventually(async () => (await fetch(`${g.url}/readyz`)).status === 200, { timeoutMs: 10_000 });
    // the restarted Redis is empty: the pod notices at its next heartbeat and registers its sockets again
    await eventually(async () => (await cluster.redis.scard(keys(cluster.keyPrefix).userSockets('outage-user'))) === 1, { timeoutMs: 10_000 });
    // the failed join changed nothing: c is not in public:o2 until it joins again
    const other = await cluster.connect('newcomer');
    expect((await other.emitWithAck('room:join', { room: 'public:o2' })).ok).toBe(true);
    const seen = collect(c, 'room:message');
    await other.emitWithAck('room:publish', { room: 'public:o2', data: 'before' });
    await eventually(async () => (await c.emitWithAck('room:join', { room: 'public:o2' })).ok, { timeoutMs: 10_000 });
    const after = waitFor(c, 'room:message');
    await other.emitWithAck('room:publish', { room: 'public:o2', data: 'after' });
    expect((await after).data).toBe('after');
    expect(seen.map((m) => m.data)).toEqual(['after']);
    // the failed watch left nothing behind: not in the watched index, and w1 coming online is not sent to c
    expect(await cluster.redis.hmget(keys(cluster.keyPrefix).watched, 'w1', 'w2')).toEqual([null, null]);
    const changes = collect(c, 'presence:changed');
    await cluster.connect('w1');
    expect((await c.emitWithAck('presence:watch', { userIds: ['w2'] })).ok).toBe(true);
    const w2 = waitFor(c, 'presence:changed');
    await cluster.connect('w2');
    expect((await w2).userId).toBe('w2');
    expect(changes.map((x) => x.userId)).toEqual(['w2']);
    expect(c.connected).toBe(true);
  });
});
