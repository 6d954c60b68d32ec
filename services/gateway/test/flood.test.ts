import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ack, RoomMessage } from '@switchboard/protocol';
import { collect, eventually, startRedis, type RedisHandle } from '@switchboard/testkit';
import { startCluster, type Cluster, type TestClient } from '@switchboard/harness';

const KB = 1024;
const BUDGET = { messages: 100, bytes: 1024 * KB, windowSec: 10 };

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
}

describe('one user flooding rooms with large messages', () => {
  let redis: RedisHandle;
  let admin: Redis;
  let cluster: Cluster;
  beforeAll(async () => {
    redis = await startRedis({ fresh: true });
    admin = new Redis(redis.url);
    cluster = await startCluster({ redis: redis.url,
      gateways: 2,
      env: {
        // the defaults a deployment has (the harness lifts the budget for other tests)
        PUBLISH_BUDGET_MESSAGES: String(BUDGET.messages),
        PUBLISH_BUDGET_BYTES: String(BUDGET.bytes),
        PUBLISH_BUDGET_WINDOW_SEC: String(BUDGET.windowSec),
        MAX_CONNECTIONS_PER_USER: '20',
        // each socket sends 50 events (10 joins, 40 publishes): within its own event rate, however
        // fast the machine, so what refuses them is the user's budget alone
        RATE_LIMIT_BURST: '60',
      },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  it('is held to one budget across its connections and pods: Redis memory stays bounded and other users carry on', async () => {
    const rooms = Array.from({ length: 10 }, (_, i) => `public:flood-${i}`);
    const flooders: TestClient[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await cluster.connect({ sub: 'flooder', gateway: i % 2 });
      for (const room of rooms) await c.emitWithAck('room:join', { room });
      flooders.push(c);
    }
    const talker = await cluster.connect({ sub: 'talker', gateway: 0 });
    const listener = await cluster.connect({ sub: 'listener', gateway: 1 });
    await talker.emitWithAck('room:join', { room: 'public:calm' });
    await listener.emitWithAck('room:join', { room: 'public:calm' });
    const heard = collect(listener, 'room:message');
    const baseline = await usedMemory(admin);

    // 20 connections × 40 messages of 64 KB as fast as acks come back (within the per-socket rate),
    // cycling through the rooms, while another user talks in a room of its own
    const payload = 'x'.repeat(64 * KB - 16);
    const acks: Ack<{ id: string; ts: number }>[] = [];
    const talked: Ack<{ id: string; ts: number }>[] = [];
    const flood = flooders.map(async (c, i) => {
      for (let n = 0; n < 40; n++) {
        acks.push(await c.emitWithAck('room:publish', { room: rooms[(i + n) % rooms.length]!, data: payload }));
      }
    });
    const talk = (async () => {
      for (let n = 0; n < 20; n++) {
        talked.push(await talker.emitWithAck('room:publish', { room: 'public:calm', data: { n } }));
      }
    })();
    await Promise.all([...flood, talk]);

    const accepted = acks.filter((a) => a.ok).length;
    const refused = acks.filter((a) => !a.ok);
    expect(acks).toHaveLength(800);
    // at most a budget's worth per window (a run may straddle two windows)
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThanOrEqual(2 * Math.floor(BUDGET.bytes / (64 * KB)));
    for (const r of refused) {
      if (r.ok) continue;
      expect(r.error.code).toBe('RATE_LIMITED');
      const details = r.error.details as { retryAfterMs: number; budget?: { messages: number; bytes: number } };
      expect(details.retryAfterMs).toBeGreaterThan(0);
      expect(details.budget).toMatchObject({ messages: BUDGET.messages, bytes: BUDGET.bytes });
    }
    // without the budget the rooms' history would hold ~50 MB; with it, a couple of MB at most
    const grown = (await usedMemory(admin)) - baseline;
    expect(grown).toBeLessThan(4 * BUDGET.bytes);

    // the other user was never refused and every one of its messages arrived
    expect(talked.every((a) => a.ok)).toBe(true);
    await eventually(() => heard.length === 20);
    expect(heard.map((m: RoomMessage) => (m.data as { n: number }).n)).toEqual(Array.from({ length: 20 }, (_, n) => n));
  });
});
