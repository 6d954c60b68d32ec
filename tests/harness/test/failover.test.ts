import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRedisConfig } from '@switchboard/config';
import { createProducer, type Producer } from '@switchboard/producer';
import { SwitchboardError } from '@switchboard/protocol';
import { keys, ReadModel } from '@switchboard/store';
import { eventually, startRedisCluster, startRedisSentinel, waitFor, type RedisTopology } from '@switchboard/testkit';
import { spawnService, startCluster, type Cluster, type ServiceProcess, type TestClient } from '../src/index.js';

const ROOM = 'public:failover';

for (const kind of ['sentinel', 'cluster'] as const) {
  describe(`${kind}: a primary killed with SIGKILL`, () => {
    let topology: RedisTopology;
    let cluster: Cluster;
    let dispatcher: ServiceProcess;
    let producer: Producer;
    // a write counts once a replica has it: what is acknowledged survives the failover
    const durable = { REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '1000' };

    beforeAll(async () => {
      // two replicas per primary: the promoted one keeps a replica, so writes still reach one (REDIS_WAIT_REPLICAS=1)
      topology = kind === 'cluster' ? await startRedisCluster({ replicasPerPrimary: 2 }) : await startRedisSentinel({ replicas: 2 });
      cluster = await startCluster({ redis: topology.env, gateways: 2, env: { HEARTBEAT_INTERVAL_MS: '500' } });
      dispatcher = spawnService('dispatcher', {
        ...topology.env,
        ...durable,
        KEY_PREFIX: cluster.keyPrefix,
        OPS_PORT: '0',
        STALLED_INTERVAL_MS: '1000',
        REDIS_DOWN_EXIT_MS: '60000',
        LOG_LEVEL: 'warn',
      });
      producer = createProducer({ connection: loadRedisConfig({ ...topology.env, ...durable }), keyPrefix: cluster.keyPrefix, connectTimeoutMs: 2000 });
    });
    afterAll(async () => {
      await producer?.close();
      await dispatcher?.stop('SIGKILL');
      await cluster?.stop();
      await topology?.stop();
    });

    it('carries on by itself: clients publish and receive again, every acknowledged job is delivered, counts are right', { timeout: 120_000 }, async () => {
      const clients: TestClient[] = [];
      for (let i = 0; i < 10; i++) {
        const c = await cluster.connect({ sub: `fo-${i}`, gateway: i % 2 });
        expect((await c.emitWithAck('room:join', { room: ROOM })).ok).toBe(true);
        clients.push(c);
      }

      // notifications flow through the failover; a refused notify is sent again with its id
      const acknowledged = new Map<string, string>();
      let stop = false;
      let n = 0;
      const notifying = (async () => {
        while (!stop && n < 2000) {
          const id = `fo-n-${n}`;
          const user = `fo-${n % 10}`;
          try {
            await producer.notify({ id, to: { userId: user }, type: 'failover', data: { n } });
            acknowledged.set(id, user);
            n++;
          } catch (err) {
            if (!(err instanceof SwitchboardError) || err.code !== 'UNAVAILABLE') throw err;
          }
        }
      })();
      await eventually(() => acknowledged.size >= 20, { what: 'notifications flowing' });

      // the primaries that hold the queue and the registry go (on a cluster: both, when apart)
      const queueKey = `{${cluster.keyPrefix}}:notifications:meta`;
      const registryKey = keys(cluster.keyPrefix).counters;
      const first = await topology.failover(queueKey);
      if (kind === 'cluster') {
        const second = await topology.failover(registryKey).catch((err: Error) => err);
        // the same shard twice has no replica left in sync: then one failover covered both
        if (second instanceof Error) expect(second.message).toMatch(/replica/i);
        else expect(second.killed).not.toBe(first.killed);
      }
      await eventually(() => acknowledged.size >= 100, { timeoutMs: 30_000, what: 'notifications acknowledged after the failover' });
      stop = true;
      await notifying;

      // clients publish and receive again
      const [from, to] = [clients[0]!, clients[1]!];
      await eventually(
        async () => {
          const got = waitFor(to, 'room:message', 1000).catch(() => undefined);
          const ack = await from.emitWithAck('room:publish', { room: ROOM, data: 'after' });
          return ack.ok && (await got)?.data === 'after';
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'a room message across pods after the failover' },
      );

      // every acknowledged notification reached its user's inbox
      await eventually(
        async () => {
          for (const [id, user] of acknowledged) {
            if ((await cluster.redis.zscore(keys(cluster.keyPrefix).inbox(user), id)) === null) return false;
          }
          return true;
        },
        { timeoutMs: 30_000, intervalMs: 250, what: `all ${acknowledged.size} acknowledged notifications stored` },
      );

      // presence and counts are right once the gateways have put back what they hold
      const model = new ReadModel(cluster.redis, cluster.keyPrefix);
      await eventually(
        async () => {
          const c = await model.counts();
          return c.connections === 10 && c.usersOnline === 10 && c.rooms === 1 && (await model.roomMemberCount(ROOM)) === 10;
        },
        { timeoutMs: 15_000, what: 'the registry counts after the failover' },
      );
      expect((await model.presence(clients.map((c) => c.session.userId))).every((p) => p.online)).toBe(true);
    });
  });
}
