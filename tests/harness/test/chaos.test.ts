import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProducer, type Producer } from '@switchboard/producer';
import { SwitchboardError } from '@switchboard/protocol';
import { InboxStore, keys, ReadModel } from '@switchboard/store';
import { eventually, startRedis, type RedisHandle } from '@switchboard/testkit';
import { spawnService, startCluster, type Cluster, type ClusterGateway, type ServiceProcess, type TestClient } from '../src/index.js';

const HEARTBEAT = 500;
const ROOMS = ['public:chaos-a', 'public:chaos-b', 'public:chaos-c', 'public:chaos-d', 'public:chaos-e'];
const USERS = Array.from({ length: 40 }, (_, i) => `chaos-${i}`);
const SOCKETS = 100;

/** A tiny deterministic random source, so a failing run can be replayed. */
function random(seed: number) {
  let s = seed;
  return (n: number) => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % n;
  };
}

/** A client as the test means it to be: who, where it should be, what it joined. */
interface Intent {
  user: string;
  rooms: Set<string>;
  socket?: TestClient;
}

describe('chaos: gateways killed and restarted, a dispatcher killed, Redis restarted', () => {
  let redis: RedisHandle;
  let cluster: Cluster;
  const dispatchers: ServiceProcess[] = [];
  let producer: Producer;

  beforeAll(async () => {
    redis = await startRedis({ fresh: true, appendonly: true });
    cluster = await startCluster({ redis: redis.url,
      gateways: 3,
      processes: true,
      env: { HEARTBEAT_INTERVAL_MS: String(HEARTBEAT), MAX_CONNECTIONS_PER_USER: '20' },
    });
    for (let i = 0; i < 2; i++) {
      dispatchers.push(
        spawnService('dispatcher', {
          REDIS_URL: redis.url,
          KEY_PREFIX: cluster.keyPrefix,
          OPS_PORT: '0',
          POD_ID: `${cluster.keyPrefix}-disp${i}`,
          STALLED_INTERVAL_MS: '1000',
          REDIS_DOWN_EXIT_MS: '60000',
          LOG_LEVEL: 'warn',
        }),
      );
    }
    producer = createProducer({ connection: redis.url, keyPrefix: cluster.keyPrefix });
  });
  afterAll(async () => {
    await producer?.close();
    for (const d of dispatchers) await d.stop('SIGKILL');
    await cluster?.stop();
    await redis?.stop();
  });

  it('ends with counts, members, presence and inboxes equal to the ground truth', { timeout: 120_000 }, async () => {
    const rand = random(7);
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    const inbox = new InboxStore(cluster.redis, keys(cluster.keyPrefix));
    const live = (): ClusterGateway[] => cluster.gateways.filter((g) => g.process?.exitCode === null && g.process.signalCode === null);

    /** (Re)connects a client to a live gateway and joins its rooms, retrying through outages. */
    async function place(intent: Intent): Promise<void> {
      await eventually(
        async () => {
          const targets = live();
          const g = targets[rand(targets.length)]!;
          const socket = await cluster.connect({ sub: intent.user, gateway: g.index });
          for (const room of intent.rooms) {
            const ack = await socket.emitWithAck('room:join', { room });
            if (!ack.ok) {
              socket.close();
              throw new Error(`join ${room}: ${ack.error.code}`);
            }
          }
          intent.socket = socket;
          return true;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: `${intent.user} connected` },
      );
    }

    const intents: Intent[] = Array.from({ length: SOCKETS }, (_, i) => ({
      user: USERS[i % USERS.length]!,
      rooms: new Set(Array.from({ length: 1 + rand(3) }, () => ROOMS[rand(ROOMS.length)]!)),
    }));
    for (let i = 0; i < intents.length; i += 20) await Promise.all(intents.slice(i, i + 20).map(place));

    // notifications flow the whole time; a notify that Redis refused is sent again with its id
    const acknowledged = new Map<string, string>(); // id → user
    let stopNotifying = false;
    let sent = 0;
    const notifying = (async () => {
      while (!stopNotifying && sent < 3000) {
        const id = `chaos-n-${sent}`;
        const user = USERS[sent % USERS.length]!;
        try {
          await producer.notify({ id, to: { userId: user }, type: 'chaos', data: { n: sent } });
          acknowledged.set(id, user);
          sent++;
        } catch (err) {
          // Redis is restarting: the producer waited for it (up to a second) before refusing
          if (!(err instanceof SwitchboardError) || err.code !== 'UNAVAILABLE') throw err;
        }
      }
    })();

    /** Whatever the test does between faults: some clients move, leave rooms, join others. */
    async function churn(n: number): Promise<void> {
      for (let i = 0; i < n; i++) {
        const intent = intents[rand(intents.length)]!;
        const socket = intent.socket;
        if (!socket?.connected) continue;
        const room = ROOMS[rand(ROOMS.length)]!;
        if (intent.rooms.has(room)) {
          const ack = await socket.emitWithAck('room:leave', { room });
          if (ack.ok) intent.rooms.delete(room);
        } else {
          const ack = await socket.emitWithAck('room:join', { room });
          if (ack.ok) intent.rooms.add(room);
        }
      }
    }

    /** Puts back every client whose socket died (its pod was killed). */
    async function reconnectLost(): Promise<void> {
      await Promise.all(
        intents.map(async (intent) => {
          if (intent.socket?.connected) return;
          intent.socket?.close();
          await place(intent);
        }),
      );
    }

    await churn(40);
    // 1. a gateway killed and restarted under the same POD_ID, within a heartbeat
    const g0 = cluster.gateways[0]!;
    await g0.kill();
    await g0.respawn();
    await reconnectLost();
    await churn(40);

    // 2. a dispatcher killed mid-stream
    await dispatchers[0]!.stop('SIGKILL');
    await churn(20);

    // 3. a gateway killed and replaced by a new one with another POD_ID
    await cluster.gateways[1]!.kill();
    await cluster.addGateway();
    await reconnectLost();
    await churn(40);

    // 4. Redis restarted once (appendonly)
    await redis.restart!();
    await reconnectLost();
    await churn(40);

    // 5. one more kill -9 and restart under the same id
    const g2 = cluster.gateways[2]!;
    await g2.kill();
    await g2.respawn();
    await reconnectLost();
    await churn(20);
    stopNotifying = true;
    await notifying;

    // --- the ground truth the test kept ---
    const connected = intents.filter((i) => i.socket?.connected);
    expect(connected).toHaveLength(SOCKETS);
    const users = new Set(connected.map((i) => i.user));
    const members = new Map(ROOMS.map((r) => [r, new Set<string>()]));
    for (const i of connected) for (const r of i.rooms) members.get(r)!.add(i.user);
    const occupied = [...members.values()].filter((m) => m.size > 0).length;

    // the registry converges to it: dead instances reaped, restored pods complete
    await eventually(
      async () => {
        const c = await model.counts();
        return c.connections === SOCKETS && c.usersOnline === users.size && c.rooms === occupied && c.pods.length === live().length;
      },
      { timeoutMs: 3 * HEARTBEAT + 5000, what: 'the registry counts' },
    );
    const counts = await model.counts();
    expect(counts.pods.reduce((n, p) => n + p.connections, 0)).toBe(SOCKETS);
    expect(new Set(counts.pods.map((p) => p.id))).toEqual(new Set(live().map((g) => g.podId)));
    for (const [room, want] of members) {
      const page = await model.roomMembers(room, undefined, 200);
      expect({ room, members: page.members.map((m) => m.userId).sort() }).toEqual({ room, members: [...want].sort() });
    }
    const presence = await model.presence(USERS);
    expect(presence.filter((p) => p.online).map((p) => p.userId).sort()).toEqual([...users].sort());

    // every acknowledged notification is in its user's inbox, once (the ledger and the ZSET see to once)
    await eventually(
      async () => {
        for (const [id, user] of acknowledged) {
          if ((await cluster.redis.zscore(keys(cluster.keyPrefix).inbox(user), id)) === null) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `all ${acknowledged.size} acknowledged notifications stored` },
    );
    for (const user of USERS) {
      const page = await inbox.list(user, { limit: 100 });
      const ids = page.items.map((n) => n.id);
      expect(new Set(ids).size).toBe(ids.length);
    }
    expect(acknowledged.size).toBeGreaterThan(100);
  });
});
