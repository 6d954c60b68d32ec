import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { Redis, type Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { deleteKeys, randomKeyPrefix } from '../src/prefix.js';
import { processRunning } from '../src/processes.js';
import { freePort, startLocalRedis } from '../src/redis.js';
import { startRedisCluster, startRedisSentinel, startTopology, type RedisTopology, type TopologyKind } from '../src/topology.js';
import { eventually } from '../src/wait.js';

// The port picker can be made to hand out a port that is taken, as another process would take
// one between the pick and the bind; everything else in redis.js is the real thing.
vi.mock(import('../src/redis.js'), async (importOriginal) => {
  const actual = await importOriginal();
  return { ...actual, freePort: vi.fn(actual.freePort) };
});

/** Pids of the Redis processes (servers, sentinels, redis-cli) this test process has started and not reaped. */
function redisChildren(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid …"
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === process.pid && /^redis-/.test(comm) && processRunning(Number(entry))) pids.push(Number(entry));
  }
  return pids;
}

/** Temp dirs of topologies this test process started that are still there. */
function leftoverDirs(): string[] {
  return readdirSync(tmpdir()).filter((name) => new RegExp(`^sb-(cluster|sentinel)-${process.pid}-`).test(name));
}

function expectNothingLeft() {
  expect(redisChildren()).toEqual([]);
  expect(leftoverDirs()).toEqual([]);
}

const portOf = (address: string) => Number(address.split(':')[1]);
/** A client closed when the test ends (disconnected: its topology may be gone). */
function keep<C extends Redis | Cluster>(client: C): C {
  onTestFinished(() => client.disconnect());
  return client;
}
const direct = (address: string) => keep(new Redis({ host: '127.0.0.1', port: portOf(address), maxRetriesPerRequest: 1, retryStrategy: () => null }));
const infoField = (info: string, field: string) => new RegExp(`^${field}:(.*)\r$`, 'm').exec(info)?.[1];

/** A key whose slot's primary is running and has a replica, by the client's slot map. */
async function keyOnPrimaryWithReplica(client: Cluster, topology: RedisTopology): Promise<string> {
  const running = topology.processes.filter((p) => p.running).map((p) => p.address);
  for (let i = 0; i < 10_000; i++) {
    const nodes = client.slots[Number(await client.cluster('KEYSLOT', `k${i}`))] ?? [];
    if (nodes.length > 1 && running.includes(nodes[0]!)) return `k${i}`;
  }
  throw new Error('no primary with a replica is left');
}

/** SIGKILLs a process of a topology behind its back, and waits until it is gone. */
async function killBehindItsBack(p: { pid: number; running: boolean; address: string }) {
  process.kill(p.pid, 'SIGKILL');
  await eventually(() => !p.running, { what: `${p.address} to exit` });
}

/** Writes `key` in a loop until `done()`; rejects on the first write that fails. */
function writeLoop(client: Redis | Cluster, key: string) {
  let stop = false;
  let writes = 0;
  const loop = (async () => {
    while (!stop) {
      await client.set(key, String(++writes));
    }
  })();
  return {
    done: async () => {
      stop = true;
      await loop;
      return writes;
    },
  };
}

describe('Redis Cluster', () => {
  let cluster: RedisTopology<'cluster'>;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);
  afterAll(() => cluster?.stop());

  it('comes up with 3 primaries and 3 replicas on loopback, serving keys of every slot range', async () => {
    expect(cluster.kind).toBe('cluster');
    expect(cluster.processes.map((p) => p.startedAs).sort()).toEqual(['primary', 'primary', 'primary', 'replica', 'replica', 'replica']);
    expect(cluster.processes.every((p) => p.running && processRunning(p.pid))).toBe(true);
    expect(cluster.env).toEqual({ REDIS_CLUSTER_NODES: cluster.processes.map((p) => p.address).join(',') });
    expect(cluster.env.REDIS_CLUSTER_NODES).toMatch(/^(127\.0\.0\.1:\d+,){5}127\.0\.0\.1:\d+$/);

    const client = keep(cluster.client());
    const prefix = randomKeyPrefix();
    const keys = Array.from({ length: 200 }, (_, i) => `${prefix}:k${i}`);
    await Promise.all(keys.map((k) => client.set(k, k)));
    expect(await Promise.all(keys.map((k) => client.get(k)))).toEqual(keys);

    for (const p of cluster.processes) {
      const node = direct(p.address);
      expect(infoField(String(await node.call('CLUSTER', 'INFO')), 'cluster_state'), p.address).toBe('ok');
      expect(infoField(await node.info('replication'), 'role')).toBe(p.startedAs === 'primary' ? 'master' : 'slave');
      // every primary holds some of the keys: they are spread over the slots
      if (p.startedAs === 'primary') expect(await node.dbsize(), p.address).toBeGreaterThan(20);
    }
    await deleteKeys(client, prefix);
  });

  it('deleteKeys removes a prefix\'s keys on every primary, and nothing else', async () => {
    const client = keep(cluster.client());
    const prefix = randomKeyPrefix();
    const other = randomKeyPrefix();
    const mine = Array.from({ length: 300 }, (_, i) => `${prefix}:${i}`);
    const theirs = [...Array.from({ length: 50 }, (_, i) => `${other}:${i}`), prefix, `${prefix}x:1`, `${other}:${prefix}:1`];
    await Promise.all([...mine, ...theirs].map((k) => client.set(k, '1')));

    await deleteKeys(client, prefix);

    const remaining = new Set<string>();
    for (const node of client.nodes('master')) {
      for (const k of await node.keys(`*`)) remaining.add(k);
    }
    expect(client.nodes('master')).toHaveLength(3);
    expect([...remaining].filter((k) => k.startsWith(`${prefix}:`))).toEqual([]);
    expect([...remaining].filter((k) => theirs.includes(k)).sort()).toEqual([...theirs].sort());
    await deleteKeys(client, other);
    await Promise.all([prefix, `${prefix}x:1`].map((k) => client.del(k)));
  });

  it('deleteKeys refuses a cluster client that knows no primary yet', async () => {
    const client = keep(cluster.client({ lazyConnect: true }));
    await expect(deleteKeys(client, 'x')).rejects.toThrow(/knows no primary/);
  });

  it('failover() of the primary of a key promotes its replica: the key survives, writes go on', async () => {
    const client = keep(cluster.client());
    const prefix = randomKeyPrefix();
    const key = `${prefix}:survivor`;
    // SET and WAIT in one pipeline go to the key's primary: the value is on its replica
    const [[setErr], [waitErr, acked]] = (await client.pipeline().set(key, 'before').wait(1, 5000).exec()) as [Error | null, unknown][];
    expect(setErr ?? waitErr).toBeNull();
    expect(acked).toBe(1);

    const slot = Number(await client.cluster('KEYSLOT', key));
    const owner = client.slots[slot]![0]!;
    const ownerReplicas: string[] = [];
    for (const p of cluster.processes) {
      const info = await direct(p.address).info('replication');
      if (infoField(info, 'role') === 'slave' && Number(infoField(info, 'master_port')) === portOf(owner)) ownerReplicas.push(p.address);
    }
    expect(ownerReplicas).toHaveLength(1);

    const writer = writeLoop(client, `${prefix}:{survivor}:during`); // same slot as the key
    const started = Date.now();
    const { killed, promoted } = await cluster.failover(key);
    const tookMs = Date.now() - started;

    expect(killed).toBe(owner);
    expect(promoted).toBe(ownerReplicas[0]);
    const dead = cluster.processes.find((p) => p.address === killed)!;
    expect(dead.running).toBe(false);
    expect(processRunning(dead.pid)).toBe(false);
    expect(tookMs).toBeLessThan(15_000);

    // the writes issued meanwhile waited for the failover instead of failing
    expect(await writer.done()).toBeGreaterThan(0);
    const resumed = Date.now();
    expect(await client.get(key)).toBe('before');
    await client.set(key, 'after');
    await Promise.all(Array.from({ length: 100 }, (_, i) => client.set(`${prefix}:${i}`, 'x')));
    expect(Date.now() - resumed).toBeLessThan(5_000);

    const newPrimary = direct(promoted);
    expect(infoField(await newPrimary.info('replication'), 'role')).toBe('master');
    expect(await newPrimary.get(key)).toBe('after');
    await deleteKeys(client, prefix);
  }, 60_000);

  it('a failover that does not complete within its bound says what it waited for', async () => {
    const client = keep(cluster.client());
    const key = await keyOnPrimaryWithReplica(client, cluster);
    const slot = Number(await client.cluster('KEYSLOT', key));
    const owner = client.slots[slot]![0]!;
    await expect(cluster.failover(key, { timeoutMs: 1 })).rejects.toThrow(
      new RegExp(`^failover: timed out after 1 ms waiting for a replica of ${owner} \\(killed\\) to take over slot ${slot} and accept writes: `),
    );
    // the cluster completes it by itself
    await eventually(async () => (await client.set(key, '1')) === 'OK' && client.slots[slot]![0] !== owner, {
      timeoutMs: 15_000,
      what: `slot ${slot} to be served again`,
    });
  }, 30_000);

  it('stop() ends a failover in progress and leaves no process nor dir; a second stop() is a no-op', async () => {
    const client = keep(cluster.client());
    const live = cluster.processes.filter((p) => p.running);
    // the one primary with a replica that the previous tests left alone
    const key = await keyOnPrimaryWithReplica(client, cluster);
    const pending = cluster.failover(key);
    pending.catch(() => {});
    await eventually(() => cluster.processes.filter((p) => p.running).length === live.length - 1, { what: 'the primary to be killed' });
    await cluster.stop();
    await expect(pending).rejects.toThrow(/failover: the topology was stopped/);

    for (const p of cluster.processes) expect(processRunning(p.pid), p.address).toBe(false);
    expectNothingLeft();
    await cluster.stop();
    await expect(cluster.failover()).rejects.toThrow(/stopped/);
  }, 30_000);
});

describe('Redis Sentinel', () => {
  it('comes up; after failover() the sentinel-aware client writes to the promoted replica, which has the data', async () => {
    const group = await startRedisSentinel();
    try {
      expect(group.kind).toBe('sentinel');
      const roles = group.processes.map((p) => p.startedAs);
      expect(roles.sort()).toEqual(['primary', 'replica', 'replica', 'sentinel', 'sentinel', 'sentinel']);
      expect(group.processes.every((p) => p.running && /^127\.0\.0\.1:\d+$/.test(p.address))).toBe(true);
      const sentinels = group.processes.filter((p) => p.startedAs === 'sentinel').map((p) => p.address);
      expect(group.env).toEqual({ REDIS_SENTINELS: sentinels.join(','), REDIS_SENTINEL_NAME: 'sb-primary' });
      const primary = group.processes.find((p) => p.startedAs === 'primary')!;
      const replicas = group.processes.filter((p) => p.startedAs === 'replica').map((p) => p.address);

      const client = keep(group.client());
      const servingPort = async () => Number(infoField(await client.info('server'), 'tcp_port'));
      expect(await servingPort()).toBe(portOf(primary.address));
      await client.set('survivor', 'before');
      expect(await client.wait(1, 5000)).toBeGreaterThanOrEqual(1);

      const writer = writeLoop(client, 'during');
      const started = Date.now();
      const { killed, promoted } = await group.failover();
      const tookMs = Date.now() - started;
      expect(killed).toBe(primary.address);
      expect(replicas).toContain(promoted);
      expect(processRunning(primary.pid)).toBe(false);
      // an aborted attempt is retried after twice failover-timeout (2 × 5 s)
      expect(tookMs).toBeLessThan(25_000);

      expect(await writer.done()).toBeGreaterThan(0);
      const resumed = Date.now();
      await client.set('after', '1');
      expect(Date.now() - resumed).toBeLessThan(5_000);
      expect(await servingPort()).toBe(portOf(promoted));
      expect(await client.get('survivor')).toBe('before');
      const newPrimary = direct(promoted);
      expect(infoField(await newPrimary.info('replication'), 'role')).toBe('master');
      expect(await newPrimary.get('survivor')).toBe('before');
      // the other replica now follows the promoted one
      const other = direct(replicas.find((r) => r !== promoted)!);
      expect(Number(infoField(await other.info('replication'), 'master_port'))).toBe(portOf(promoted));

      // a failover that does not complete within its bound says what it waited for
      await expect(group.failover(undefined, { timeoutMs: 1 })).rejects.toThrow(
        new RegExp(`^failover: timed out after 1 ms waiting for the sentinels to promote a replica of ${promoted} \\(killed\\)`),
      );
    } finally {
      await group.stop();
    }
    for (const p of group.processes) expect(processRunning(p.pid), p.address).toBe(false);
    expectNothingLeft();
  }, 90_000);
});

describe('failover() that cannot happen', () => {
  it('rejects on a cluster without replicas, killing nothing', async () => {
    const cluster = await startRedisCluster({ replicasPerPrimary: 0 });
    try {
      expect(cluster.processes).toHaveLength(3);
      await expect(cluster.failover('some-key')).rejects.toThrow(/^failover: 127\.0\.0\.1:\d+ \(primary of slot \d+\) has no replica in sync to promote$/);
      await expect(cluster.failover()).rejects.toThrow(/\(primary of slot 0\) has no replica/);
      expect(cluster.processes.every((p) => p.running)).toBe(true);
      const client = keep(cluster.client());
      await client.set('some-key', '1');
      expect(await client.get('some-key')).toBe('1');

      // a primary killed behind the topology's back, which no replica replaces
      await client.set('{slot0}', '1'); // make sure the slot map is there
      const first = cluster.processes.find((p) => p.address === client.slots[0]![0])!;
      await killBehindItsBack(first);
      await expect(cluster.failover()).rejects.toThrow(/^failover: no running primary serves slot 0$/);
      for (const p of cluster.processes.filter((q) => q.running)) await killBehindItsBack(p);
      await expect(cluster.failover('some-key')).rejects.toThrow(/^no server answered: /);
    } finally {
      await cluster.stop();
    }
    expectNothingLeft();
  }, 60_000);

  it('rejects on a sentinel group without replicas, killing nothing', async () => {
    const group = await startRedisSentinel({ replicas: 0, sentinels: 1 });
    try {
      await expect(group.failover()).rejects.toThrow(/^failover: the primary 127\.0\.0\.1:\d+ has no replica in sync to promote$/);
      expect(group.processes.every((p) => p.running)).toBe(true);

      const primary = group.processes.find((p) => p.startedAs === 'primary')!;
      await killBehindItsBack(primary);
      await expect(group.failover()).rejects.toThrow(`failover: the sentinels name ${primary.address} as the primary, which is not running`);
      await killBehindItsBack(group.processes.find((p) => p.startedAs === 'sentinel')!);
      await expect(group.failover()).rejects.toThrow(/^no server answered: /);
    } finally {
      await group.stop();
    }
    expectNothingLeft();
  }, 60_000);
});

describe('a topology that cannot start rejects with the reason and leaves nothing behind', () => {
  it('redis-cli refusing the cluster', async () => {
    const err = await startRedisCluster({ primaries: 2, replicasPerPrimary: 0 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^Redis Cluster \(2 primaries, 0 replicas each\) did not start: redis-cli --cluster create exited with code 1\n--- last lines of redis-cli --cluster create ---\n/);
    expect((err as Error).message).toMatch(/requires at least 3 master nodes/);
    expectNothingLeft();
  }, 30_000);

  it('a sentinel that exits at start, after the primary and replicas started', async () => {
    const err = await startRedisSentinel({ downAfterMs: 0 }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(
      /^Redis Sentinel group "sb-primary" \(2 replicas, 3 sentinels\) did not start: redis-sentinel 127\.0\.0\.1:\d+ \(sentinel\) exited with code 1\n--- last lines of redis-sentinel/,
    );
    expect((err as Error).message).toMatch(/negative or zero time parameter/);
    expectNothingLeft();
  }, 30_000);

  it('the deadline', async () => {
    const err = await startRedisCluster({ timeoutMs: 300 }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^Redis Cluster \(3 primaries, 1 replicas each\) did not start: did not come up within 300 ms: still waiting for /);
    expectNothingLeft();
  }, 30_000);

  it('a port taken before the server binds it: the start is retried with new ports, up to 3 times', async () => {
    // the holder accepts connections and never answers: the readiness probes must give up on it
    const taken = await holdPort();
    try {
      vi.mocked(freePort).mockClear();
      vi.mocked(freePort).mockResolvedValueOnce(taken.port);
      const cluster = await startRedisCluster({ replicasPerPrimary: 0 });
      try {
        // three ports for the attempt that failed, three for the one that succeeded
        expect(vi.mocked(freePort).mock.calls.length).toBeGreaterThanOrEqual(6);
        expect(cluster.processes.map((p) => p.address)).not.toContain(`127.0.0.1:${taken.port}`);
        expect(cluster.processes.every((p) => p.running)).toBe(true);
      } finally {
        await cluster.stop();
      }
      expectNothingLeft();

      // the same port over and over: the first node gets it (and is started), the second none
      vi.mocked(freePort).mockResolvedValue(taken.port);
      await expect(startRedisCluster()).rejects.toThrow(
        /^Redis Cluster \(3 primaries, 1 replicas each\) did not start: found no free loopback port with a free cluster bus port \(\+10000\)$/,
      );
      expectNothingLeft();

      const err = await startRedisSentinel().catch((e: Error) => e);
      expect((err as Error).message).toMatch(
        /^Redis Sentinel group "sb-primary" \(2 replicas, 3 sentinels\) did not start: redis-server 127\.0\.0\.1:\d+ \(primary\) exited with code 1 \(a port was taken on each of 3 attempts\)/,
      );
      expect((err as Error).message).toMatch(/Address already in use/);
      expectNothingLeft();
    } finally {
      vi.mocked(freePort).mockReset(); // back to the real one
      await new Promise((resolve) => taken.server.close(resolve));
    }
  }, 60_000);

  it('options that cannot work', async () => {
    await expect(startRedisCluster({ primaries: 0 })).rejects.toThrow(new RangeError('startRedisCluster: primaries must be an integer ≥ 1, got 0'));
    await expect(startRedisCluster({ replicasPerPrimary: 1.5 })).rejects.toThrow(RangeError);
    await expect(startRedisSentinel({ sentinels: 0 })).rejects.toThrow(/sentinels must be an integer ≥ 1/);
    await expect(startRedisSentinel({ name: 'a b\nsentinel' })).rejects.toThrow(/name "a b\nsentinel" must be letters/);
    await expect(startTopology('docker' as TopologyKind)).rejects.toThrow(/unknown topology "docker"/);
    expectNothingLeft();
  });
});

describe("startTopology('standalone')", () => {
  it('uses REDIS_URL as startRedis does, and leaves that Redis running', async () => {
    const server = await startLocalRedis();
    const saved = process.env.REDIS_URL;
    process.env.REDIS_URL = server.url;
    try {
      const standalone = await startTopology('standalone');
      expect(standalone.kind).toBe('standalone');
      expect(standalone.env).toEqual({ REDIS_URL: server.url });
      expect(standalone.processes).toEqual([]);
      const client = keep(standalone.client());
      expect(infoField(await client.info('server'), 'process_id')).toBe(String(server.pid));
      await expect(standalone.failover()).rejects.toThrow(/standalone Redis has no replica/);
      await standalone.stop();
      await standalone.stop();
      expect(server.pid !== undefined && processRunning(server.pid)).toBe(true);
    } finally {
      restoreEnv('REDIS_URL', saved);
      await server.stop();
    }
  });

  it('without REDIS_URL starts a redis-server of its own, which stop() stops', async () => {
    const saved = process.env.REDIS_URL;
    delete process.env.REDIS_URL;
    try {
      const standalone = await startTopology('standalone');
      try {
        expect(standalone.env.REDIS_URL).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
        const [own] = standalone.processes;
        expect(own?.running).toBe(true);
        const client = keep(standalone.client({ connectionName: 'topology-test' }));
        expect(infoField(await client.info('server'), 'process_id')).toBe(String(own?.pid));
        expect(await client.client('GETNAME')).toBe('topology-test');
        await client.quit();
      } finally {
        await standalone.stop();
      }
      expect(standalone.processes.every((p) => !p.running && !processRunning(p.pid))).toBe(true);
    } finally {
      restoreEnv('REDIS_URL', saved);
    }
  });
});

function restoreEnv(name: string, value: string | undefined) {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

/**
 * A loopback port held by a listener here, whose cluster bus port (+10000) is free. It reads
 * what it is sent and never answers.
 */
async function holdPort(): Promise<{ port: number; server: Server }> {
  for (;;) {
    const server = createServer((socket) => socket.resume());
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : 0);
      });
    });
    if (port + 10000 <= 65535 && (await canBind(port + 10000))) return { port, server };
    await new Promise((resolve) => server.close(resolve));
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}
