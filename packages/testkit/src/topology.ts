import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { spawnOwned } from './processes.js';
import { freePort, isAddressInUse, startRedis } from './redis.js';
import { eventually } from './wait.js';

/**
 * Real Redis topologies for tests: standalone, Sentinel (a primary, replicas, sentinels) and
 * Redis Cluster (primaries with replicas), each process a `redis-server` on a random loopback
 * port in a temp dir, started through {@link spawnOwned} so that none outlives the test process.
 * Everything is bound to and announced as 127.0.0.1: tests never reach beyond 127.0.0.0/8.
 */
export type TopologyKind = 'standalone' | 'sentinel' | 'cluster';

/** The client {@link RedisTopology.client} makes: a `Cluster` on a cluster, else a `Redis`. */
export type TopologyClient<K extends TopologyKind = TopologyKind> = K extends 'cluster' ? Cluster : Redis;
/** Options merged into the test kit's defaults by {@link RedisTopology.client}. */
export type TopologyClientOptions<K extends TopologyKind = TopologyKind> = K extends 'cluster' ? ClusterOptions : RedisOptions;

export interface FailoverOptions {
  /** How long to wait for a replica to take over after the kill. @default 30000 */
  timeoutMs?: number;
}

/** One process of a topology. */
export interface TopologyProcess {
  /** Its role once the topology was up; a failover changes which server is the primary. */
  readonly startedAs: 'primary' | 'replica' | 'sentinel';
  /** `127.0.0.1:<port>` */
  readonly address: string;
  readonly pid: number;
  readonly running: boolean;
}

export interface RedisTopology<K extends TopologyKind = TopologyKind> {
  kind: K;
  /**
   * The environment that points a service at it, with SPEC §9's names: standalone
   * `{ REDIS_URL }`, sentinel `{ REDIS_SENTINELS: 'host:port,…', REDIS_SENTINEL_NAME }`, cluster
   * `{ REDIS_CLUSTER_NODES: 'host:port,…' }` (every node).
   */
  env: Record<string, string>;
  /** The processes started for it (none for a `REDIS_URL` or a container). */
  readonly processes: readonly TopologyProcess[];
  /**
   * A new ioredis client on it, with an `error` listener: a `Redis` for standalone and sentinel
   * (sentinel-aware: it follows failovers), a `Cluster` for cluster. `options` are merged into
   * the defaults. The caller closes it.
   */
  client(options?: TopologyClientOptions<K>): TopologyClient<K>;
  /**
   * Sentinel and cluster: SIGKILLs a primary (cluster: the one serving the slot of `key`, or of
   * slot 0 without a key; sentinel: the current one, `key` is ignored) and resolves once a replica
   * has been promoted, every sentinel or node agrees on it, it accepts writes, and every running
   * replica is in sync with a running primary. Rejects without killing anything when the primary
   * has no replica in sync. Standalone: rejects.
   */
  failover(key?: string, options?: FailoverOptions): Promise<{ killed: string; promoted: string }>;
  /**
   * Stops every process (sentinels, primaries, replicas) with SIGKILL (their data goes with
   * their dirs), waits for them to exit and removes their temp dirs; idempotent.
   */
  stop(): Promise<void>;
}

export interface StartClusterOptions {
  /** @default 3 */
  primaries?: number;
  /** @default 1 */
  replicasPerPrimary?: number;
  /** `cluster-node-timeout`: how long a primary is unreachable before it is failed over. @default 1000 */
  nodeTimeoutMs?: number;
  /** How long one attempt to bring the cluster up may take. @default 30000 */
  timeoutMs?: number;
}

export interface StartSentinelOptions {
  /** @default 2 */
  replicas?: number;
  /** @default 3 */
  sentinels?: number;
  /** The primary's name (`REDIS_SENTINEL_NAME`). @default 'sb-primary' */
  name?: string;
  /**
   * `down-after-milliseconds`: how long the primary is unreachable before it is failed over.
   * Checked by Sentinel itself, like `failoverTimeoutMs`: a value it refuses fails the start
   * with its message. @default 1000
   */
  downAfterMs?: number;
  /** `failover-timeout`: also the delay before a failed failover is tried again (twice this). @default 5000 */
  failoverTimeoutMs?: number;
  /** How long one attempt to bring the group up may take. @default 30000 */
  timeoutMs?: number;
}

const HOST = '127.0.0.1';
const CLUSTER_SLOTS = 16384;
/** The cluster bus listens on the client port + 10000. */
const BUS_OFFSET = 10000;
/** Attempts to start a topology when a port chosen as free was taken before the server bound it. */
const START_ATTEMPTS = 3;
const OUTPUT_LINES = 30;
const POLL_MS = 50;
/** The longest one probe of a server (connect and commands) may take. */
const PROBE_TIMEOUT_MS = 2000;
const PROBE_KEY = 'sb-testkit:failover-probe';

// ---------------------------------------------------------------- public entry points

/**
 * A topology of `kind` with its defaults; `standalone` is {@link startRedis} (so `REDIS_URL`,
 * when set, is used as it is), the others are started here.
 */
export function startTopology(kind: 'standalone'): Promise<RedisTopology<'standalone'>>;
export function startTopology(kind: 'sentinel'): Promise<RedisTopology<'sentinel'>>;
export function startTopology(kind: 'cluster'): Promise<RedisTopology<'cluster'>>;
export function startTopology(kind: TopologyKind): Promise<RedisTopology>;
export async function startTopology(kind: TopologyKind): Promise<RedisTopology> {
  switch (kind) {
    case 'standalone':
      return startStandalone();
    case 'sentinel':
      return startRedisSentinel();
    case 'cluster':
      return startRedisCluster();
    default:
      throw new RangeError(`startTopology: unknown topology "${String(kind)}" (standalone, sentinel or cluster)`);
  }
}

async function startStandalone(): Promise<RedisTopology<'standalone'>> {
  const handle = await startRedis();
  const pid = handle.pid;
  const address = new URL(handle.url).host;
  const processes: TopologyProcess[] =
    pid === undefined
      ? []
      : [{ startedAs: 'primary', address, pid, get running() { return handle.pid === pid; } }];
  let stopping: Promise<void> | undefined;
  return {
    kind: 'standalone',
    env: { REDIS_URL: handle.url },
    processes,
    client: (options = {}) => withErrorListener(new Redis(handle.url, options)),
    failover: () => Promise.reject(new Error('failover() needs a sentinel or cluster topology: a standalone Redis has no replica')),
    stop: () => (stopping ??= handle.stop()),
  };
}

/**
 * A Redis Cluster of `primaries` primaries with `replicasPerPrimary` replicas each, created by
 * `redis-cli --cluster create`; resolves once every node reports `cluster_state:ok`, every node
 * has the same slot map (replicas included) and every replica is in sync.
 */
export async function startRedisCluster(options: StartClusterOptions = {}): Promise<RedisTopology<'cluster'>> {
  const primaries = count('startRedisCluster: primaries', options.primaries ?? 3, 1);
  const replicas = count('startRedisCluster: replicasPerPrimary', options.replicasPerPrimary ?? 1, 0);
  const nodeTimeoutMs = count('startRedisCluster: nodeTimeoutMs', options.nodeTimeoutMs ?? 1000, 1);
  const timeoutMs = count('startRedisCluster: timeoutMs', options.timeoutMs ?? 30_000, 1);
  const total = primaries * (1 + replicas);
  return bringUp(`Redis Cluster (${primaries} primaries, ${replicas} replicas each)`, 'cluster', timeoutMs, async (up) => {
    const used = new Set<number>();
    const nodes: Server[] = [];
    for (let i = 0; i < total; i++) {
      const port = await pickPort(used, true);
      const dir = up.nodeDir(port);
      nodes.push(
        up.server(i < primaries ? 'primary' : 'replica', port, [
          '--port', String(port),
          '--bind', HOST,
          '--dir', dir,
          '--protected-mode', 'no',
          '--cluster-enabled', 'yes',
          '--cluster-config-file', join(dir, 'nodes.conf'),
          '--cluster-node-timeout', String(nodeTimeoutMs),
          // the address written into the node table and gossiped: never anything but loopback
          '--cluster-announce-ip', HOST,
          // A replica whose link to its primary has been down longer than node-timeout × factor
          // refuses to fail over; 0 lifts that, so a slow or paused test never leaves slots
          // without a primary.
          '--cluster-replica-validity-factor', '0',
          // Left at the production default (yes): while a killed primary's slots have no
          // primary the whole cluster answers CLUSTERDOWN, which failover tests are to survive.
          '--cluster-require-full-coverage', 'yes',
          // A node lists a replica in CLUSTER SLOTS only once it has heard (by gossip) of a
          // replication offset above 0, and an idle primary's offset moves only with its pings
          // to its replicas: every 10 s by default, every second here.
          '--repl-ping-replica-period', '1',
          ...DURABLE_SERVER_ARGS,
        ]),
      );
    }
    await up.poll('every node to answer', () => everyAnswers(up, nodes));

    // redis-cli chooses the primaries, assigns their slots and replicas, and returns once every
    // node has joined; the roles it chose are read back below
    const cli = up.tool('redis-cli --cluster create', 'redis-cli', [
      '--cluster', 'create', ...nodes.map((n) => n.address),
      '--cluster-replicas', String(replicas),
      '--cluster-yes',
    ]);
    const how = await up.run('redis-cli --cluster create', cli.closed, cli);
    if (cli.child.exitCode !== 0) throw new StartFailure(`redis-cli --cluster create ${how}`, cli);

    await up.poll('every node to report cluster_state:ok and agree on the slot map', () => clusterAgrees(up, nodes, total, replicas));
    await up.poll('every replica to be in sync with its primary', () => replicasInSync(up, nodes));
    for (const node of nodes) node.startedAs = (await node.info('replication')).role === 'master' ? 'primary' : 'replica';

    const seeds = nodes.map((n) => ({ host: HOST, port: n.port }));
    return {
      env: { REDIS_CLUSTER_NODES: nodes.map((n) => n.address).join(',') },
      client: (opts: ClusterOptions = {}) => withErrorListener(new Cluster(seeds, clusterClientOptions(opts))),
      failover: (topology: TopologyState, key?: string, timeout?: number) => clusterFailover(topology, nodes, key, timeout),
    };
  });
}

/**
 * A Sentinel group: one primary, `replicas` replicas and `sentinels` sentinels (quorum: a
 * majority) monitoring it as `name`; resolves once the replicas are in sync and every sentinel
 * knows the primary, every replica and every other sentinel, and can authorize a failover.
 */
export async function startRedisSentinel(options: StartSentinelOptions = {}): Promise<RedisTopology<'sentinel'>> {
  const replicaCount = count('startRedisSentinel: replicas', options.replicas ?? 2, 0);
  const sentinelCount = count('startRedisSentinel: sentinels', options.sentinels ?? 3, 1);
  const name = options.name ?? 'sb-primary';
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new RangeError(`startRedisSentinel: name "${name}" must be letters, digits, ".", "_" or "-"`);
  const downAfterMs = options.downAfterMs ?? 1000;
  const failoverTimeoutMs = options.failoverTimeoutMs ?? 5000;
  const timeoutMs = count('startRedisSentinel: timeoutMs', options.timeoutMs ?? 30_000, 1);
  const label = `Redis Sentinel group "${name}" (${replicaCount} replicas, ${sentinelCount} sentinels)`;
  return bringUp(label, 'sentinel', timeoutMs, async (up) => {
    const used = new Set<number>();
    const serverArgs = (port: number) => [
      '--port', String(port),
      '--bind', HOST,
      '--dir', up.nodeDir(port),
      '--protected-mode', 'no',
      '--replica-announce-ip', HOST,
      ...DURABLE_SERVER_ARGS,
    ];
    const primaryPort = await pickPort(used, false);
    const primary = up.server('primary', primaryPort, serverArgs(primaryPort));
    await up.poll('the primary to answer', () => everyAnswers(up, [primary]));

    const replicas: Server[] = [];
    for (let i = 0; i < replicaCount; i++) {
      const port = await pickPort(used, false);
      replicas.push(up.server('replica', port, [...serverArgs(port), '--replicaof', HOST, String(primaryPort)]));
    }
    await up.poll('every replica to answer', () => everyAnswers(up, replicas));
    // before the sentinels start: a sentinel lists the replicas from the primary's INFO, which
    // it asks again only every 10 s
    await up.poll('every replica to be in sync with the primary', () => replicasInSync(up, [primary, ...replicas]));

    const sentinels: Server[] = [];
    const quorum = Math.floor(sentinelCount / 2) + 1;
    for (let i = 0; i < sentinelCount; i++) {
      const port = await pickPort(used, false);
      const dir = up.nodeDir(port);
      const config = join(dir, 'sentinel.conf');
      // Sentinel rewrites this file as it learns the group, so it lives in the sentinel's dir.
      writeFileSync(
        config,
        [
          `port ${port}`,
          `bind ${HOST}`,
          'protected-mode no',
          `dir ${JSON.stringify(dir)}`,
          'sentinel resolve-hostnames no',
          `sentinel announce-ip ${HOST}`,
          `sentinel monitor ${name} ${HOST} ${primaryPort} ${quorum}`,
          `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
          // the longest a promotion may take before the failover is aborted (and retried after
          // twice this); 5 s is ample on loopback and keeps a retry within the test's bounds
          `sentinel failover-timeout ${name} ${failoverTimeoutMs}`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      sentinels.push(up.server('sentinel', port, [config, '--sentinel', '--loglevel', 'notice']));
    }
    await up.poll('every sentinel to answer', () => everyAnswers(up, sentinels));
    await up.poll('every sentinel to know the primary, its replicas and the other sentinels', () =>
      sentinelsKnowGroup(up, sentinels, name, primaryPort, replicaCount),
    );

    const servers = [primary, ...replicas];
    const addresses = sentinels.map((s) => ({ host: HOST, port: s.port }));
    return {
      env: { REDIS_SENTINELS: sentinels.map((s) => s.address).join(','), REDIS_SENTINEL_NAME: name },
      client: (opts: RedisOptions = {}) => withErrorListener(new Redis(sentinelClientOptions(addresses, name, opts))),
      failover: (topology: TopologyState, _key?: string, timeout?: number) => sentinelFailover(topology, servers, sentinels, name, timeout),
    };
  });
}

// ---------------------------------------------------------------- clients

/**
 * Cluster clients for tests, tuned so that a command issued during a failover waits for it
 * instead of failing:
 * - `scaleReads: 'master'`: reads go to primaries, so a test reads its own writes (replication is
 *   asynchronous);
 * - a command meeting the killed primary ("Connection is closed") or CLUSTERDOWN is retried after
 *   `retryDelayOnFailover` / `retryDelayOnClusterDown`, with a slot refresh, at most
 *   `maxRedirections` times: 50 × 200 ms outlasts a failover (node timeout + election, ~2–3 s);
 * - `clusterRetryStrategy`: when no node answers, keep reconnecting, at most every second;
 * - `enableReadyCheck`: "ready" only once `CLUSTER INFO` says ok;
 * - `slotsRefreshInterval`: the slot map is also refreshed every second, so a client that sent
 *   nothing during the failover learns the new primary soon.
 */
function clusterClientOptions(options: ClusterOptions): ClusterOptions {
  return {
    scaleReads: 'master',
    enableReadyCheck: true,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    maxRedirections: 50,
    clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
    slotsRefreshInterval: 1000,
    ...options,
    redisOptions: { connectTimeout: 2000, ...options.redisOptions },
  };
}

/**
 * Sentinel-aware clients for tests: they ask the sentinels for the primary on every (re)connect
 * and check its role, so they follow a failover:
 * - `retryStrategy`: reconnect quickly (at most every second) while the primary is gone; a
 *   command waits in the offline queue meanwhile, for up to `maxRetriesPerRequest` reconnects
 *   (30: about 25 s, well beyond a failover of a few seconds);
 * - `sentinelRetryStrategy`: the same when no sentinel answers.
 * ioredis's `failoverDetector` stays off: a sentinel failover closes the clients of the servers it
 * reconfigures anyway, and with it on, a reconnect it interrupts is an unhandled rejection.
 */
function sentinelClientOptions(sentinels: { host: string; port: number }[], name: string, options: RedisOptions): RedisOptions {
  return {
    sentinels,
    name,
    role: 'master',
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(100 * times, 1000),
    sentinelRetryStrategy: (times) => Math.min(100 * times, 1000),
    maxRetriesPerRequest: 30,
    ...options,
  };
}

function withErrorListener<C extends Redis | Cluster>(client: C): C {
  // errors also reach the commands that meet them; without a listener ioredis prints each one
  client.on('error', () => {});
  return client;
}

// ---------------------------------------------------------------- failover

/** What a failover needs to know of the topology it runs on. */
interface TopologyState {
  stopped: boolean;
}

async function clusterFailover(topology: TopologyState, nodes: Server[], key: string | undefined, timeoutMs = 30_000): Promise<{ killed: string; promoted: string }> {
  const live = () => nodes.filter((n) => n.running);
  const slot = key === undefined ? 0 : Number(await onAny(live(), (r) => r.call('CLUSTER', 'KEYSLOT', key)));
  const owner = ownerOf(await onAny(live(), (r) => clusterSlots(r)), slot);
  const victim = nodes.find((n) => n.port === owner?.primary);
  if (!victim?.running) throw new Error(`failover: no running primary serves slot ${slot}`);
  const following = await replicasOf(live(), victim);
  if (!following.length) throw new Error(`failover: ${victim.address} (primary of slot ${slot}) has no replica in sync to promote`);

  await victim.kill();
  let promoted: Server | undefined;
  const what = `a replica of ${victim.address} (killed) to take over slot ${slot} and accept writes`;
  await eventually(
    async () => {
      if (topology.stopped) return true;
      const running = live();
      let agreed: number | undefined;
      for (const node of running) {
        const state = (await node.clusterInfo()).cluster_state;
        if (state !== 'ok') throw new Error(`cluster_state:${state} on ${node.address}`);
        const port = ownerOf(await node.on((r) => clusterSlots(r)), slot)?.primary;
        if (port === victim.port) throw new Error(`${node.address} still has slot ${slot} on ${victim.address}`);
        if (agreed !== undefined && port !== agreed) throw new Error(`the nodes disagree on who serves slot ${slot}`);
        agreed = port;
      }
      promoted = running.find((n) => n.port === agreed);
      if (!promoted) throw new Error(`slot ${slot} is on a node that is not running`);
      await probeWrite(promoted, probeKeyInSlot(slot));
      return replicasInSyncNow(running);
    },
    { timeoutMs, intervalMs: POLL_MS, what },
  ).catch((err: Error) => {
    throw new Error(`failover: ${err.message}`);
  });
  if (topology.stopped || !promoted) throw new Error('failover: the topology was stopped');
  return { killed: victim.address, promoted: promoted.address };
}

async function sentinelFailover(
  topology: TopologyState,
  servers: Server[],
  sentinels: Server[],
  name: string,
  timeoutMs = 30_000,
): Promise<{ killed: string; promoted: string }> {
  const liveSentinels = () => sentinels.filter((s) => s.running);
  const port = await onAny(liveSentinels(), (r) => masterPort(r, name));
  const victim = servers.find((s) => s.port === port);
  if (!victim?.running) throw new Error(`failover: the sentinels name ${HOST}:${port} as the primary, which is not running`);
  const following = await replicasOf(servers.filter((s) => s.running), victim);
  if (!following.length) throw new Error(`failover: the primary ${victim.address} has no replica in sync to promote`);

  await victim.kill();
  let promoted: Server | undefined;
  const what = `the sentinels to promote a replica of ${victim.address} (killed) that accepts writes`;
  await eventually(
    async () => {
      if (topology.stopped) return true;
      let agreed: number | undefined;
      for (const sentinel of liveSentinels()) {
        const master = await sentinel.on((r) => sentinelMaster(r, name));
        const at = Number(master.port);
        if (at === victim.port) throw new Error(`${sentinel.address} still names ${victim.address}`);
        if (master.flags !== 'master') throw new Error(`${sentinel.address} flags the primary "${master.flags}"`);
        if (agreed !== undefined && at !== agreed) throw new Error('the sentinels disagree on the primary');
        agreed = at;
      }
      promoted = servers.find((s) => s.port === agreed && s.running);
      if (!promoted) throw new Error(`the sentinels name ${HOST}:${agreed}, which is not running`);
      await probeWrite(promoted, PROBE_KEY);
      // every other server follows it: an aborted attempt of an earlier epoch can leave the
      // replica it chose answering as a primary until the sentinels convert it back, and a
      // client that reached it meanwhile writes there
      return replicasFollow(servers.filter((s) => s.running), promoted);
    },
    { timeoutMs, intervalMs: POLL_MS, what },
  ).catch((err: Error) => {
    throw new Error(`failover: ${err.message}`);
  });
  if (topology.stopped || !promoted) throw new Error('failover: the topology was stopped');
  return { killed: victim.address, promoted: promoted.address };
}

/** A write to `key` straight on `server` (no redirection followed), then removed. */
async function probeWrite(server: Server, key: string): Promise<void> {
  await server.on(async (r) => {
    const reply = await r.set(key, String(Date.now()));
    if (reply !== 'OK') throw new Error(`SET on ${server.address} answered ${String(reply)}`);
    await r.del(key);
  });
}

/** The running servers that replicate `primary` with their link up. */
async function replicasOf(servers: Server[], primary: Server): Promise<Server[]> {
  const found: Server[] = [];
  for (const s of servers) {
    if (s === primary) continue;
    const info = await s.info('replication').catch(() => undefined);
    if (info?.role === 'slave' && Number(info.master_port) === primary.port && info.master_link_status === 'up') found.push(s);
  }
  return found;
}

/** Whether every server among `servers` but `primary` replicates it with its link up. */
async function replicasFollow(servers: Server[], primary: Server): Promise<boolean> {
  for (const s of servers) {
    if (s === primary) continue;
    const info = await s.info('replication');
    if (info.role !== 'slave') throw new Error(`${s.address} still answers as a primary`);
    if (Number(info.master_port) !== primary.port) throw new Error(`${s.address} replicates ${HOST}:${info.master_port}, not ${primary.address}`);
    if (info.master_link_status !== 'up') throw new Error(`${s.address}: master_link_status:${info.master_link_status}`);
  }
  return true;
}

/** Whether every running replica among `servers` is in sync with a running primary among them. */
async function replicasInSyncNow(servers: Server[]): Promise<boolean> {
  for (const s of servers) {
    const info = await s.info('replication');
    if (info.role !== 'slave') continue;
    const primary = servers.find((p) => p.port === Number(info.master_port));
    if (!primary) throw new Error(`${s.address} replicates ${HOST}:${info.master_port}, which is not running`);
    if (info.master_link_status !== 'up') throw new Error(`${s.address}: master_link_status:${info.master_link_status}`);
  }
  return true;
}

// ---------------------------------------------------------------- readiness checks (start)

async function everyAnswers(up: Startup, servers: Server[]): Promise<boolean> {
  for (const s of servers) {
    up.suspect = s;
    const pid = Number((await s.info('server')).process_id);
    if (pid !== s.child.pid) throw new Error(`another redis-server (pid ${pid}) answers on ${s.address}`);
  }
  return true;
}

async function clusterAgrees(up: Startup, nodes: Server[], total: number, replicas: number): Promise<boolean> {
  let map: string | undefined;
  for (const node of nodes) {
    up.suspect = node;
    const info = await node.clusterInfo();
    if (info.cluster_state !== 'ok') throw new Error(`cluster_state:${info.cluster_state} on ${node.address}`);
    if (Number(info.cluster_known_nodes) !== total) throw new Error(`${node.address} knows ${info.cluster_known_nodes} of ${total} nodes`);
    const ranges = await node.on((r) => clusterSlots(r));
    const covered = ranges.reduce((n, r) => n + r.end - r.start + 1, 0);
    if (covered !== CLUSTER_SLOTS) throw new Error(`${node.address} maps ${covered} of ${CLUSTER_SLOTS} slots`);
    const short = ranges.find((r) => r.replicas.length !== replicas);
    if (short) throw new Error(`${node.address} lists ${short.replicas.length} replicas for slots ${short.start}-${short.end}`);
    const signature = ranges.map((r) => `${r.start}-${r.end}@${r.primary}/${[...r.replicas].sort().join('/')}`).sort().join(' ');
    if (map !== undefined && signature !== map) throw new Error(`${node.address} has another slot map than ${nodes[0]?.address}`);
    map = signature;
  }
  return true;
}

async function replicasInSync(up: Startup, servers: Server[]): Promise<boolean> {
  for (const s of servers) {
    up.suspect = s;
    const info = await s.info('replication');
    if (info.role === 'slave' && info.master_link_status !== 'up') throw new Error(`${s.address}: master_link_status:${info.master_link_status}`);
  }
  return true;
}

async function sentinelsKnowGroup(up: Startup, sentinels: Server[], name: string, primaryPort: number, replicas: number): Promise<boolean> {
  for (const s of sentinels) {
    up.suspect = s;
    await s.on(async (r) => {
      const master = await sentinelMaster(r, name);
      if (Number(master.port) !== primaryPort || master.flags !== 'master') {
        throw new Error(`${s.address} sees the primary at ${master.ip}:${master.port} flagged "${master.flags}"`);
      }
      if (Number(master['num-slaves']) !== replicas) throw new Error(`${s.address} knows ${master['num-slaves']} of ${replicas} replicas`);
      const others = sentinels.length - 1;
      if (Number(master['num-other-sentinels']) !== others) throw new Error(`${s.address} knows ${master['num-other-sentinels']} of ${others} other sentinels`);
      for (const replica of (await r.call('SENTINEL', 'REPLICAS', name)) as unknown[]) {
        const fields = pairs(replica);
        if (fields.flags !== 'slave' || fields['master-link-status'] !== 'ok') {
          throw new Error(`${s.address} sees replica ${fields.ip}:${fields.port} flagged "${fields.flags}", link ${fields['master-link-status']}`);
        }
      }
      await r.call('SENTINEL', 'CKQUORUM', name); // an error unless a failover can be authorized
    });
  }
  return true;
}

// ---------------------------------------------------------------- Redis replies

interface SlotRange {
  start: number;
  end: number;
  primary: number;
  replicas: number[];
}

/** `CLUSTER SLOTS` as ranges with the primary's and the replicas' ports. */
async function clusterSlots(r: Redis): Promise<SlotRange[]> {
  const reply = (await r.call('CLUSTER', 'SLOTS')) as unknown[];
  return reply.map((entry) => {
    const [start, end, primary, ...replicas] = entry as [number, number, unknown[], ...unknown[][]];
    return { start, end, primary: Number(primary[1]), replicas: replicas.map((x) => Number(x[1])) };
  });
}

function ownerOf(ranges: SlotRange[], slot: number): SlotRange | undefined {
  return ranges.find((r) => r.start <= slot && slot <= r.end);
}

async function masterPort(r: Redis, name: string): Promise<number> {
  const reply = (await r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as [string, string] | null;
  if (!reply) throw new Error(`the sentinels do not know "${name}"`);
  return Number(reply[1]);
}

async function sentinelMaster(r: Redis, name: string): Promise<Record<string, string>> {
  return pairs(await r.call('SENTINEL', 'MASTER', name));
}

/** A flat `[field, value, …]` reply as an object. */
function pairs(reply: unknown): Record<string, string> {
  const list = Array.isArray(reply) ? reply.map(String) : [];
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) fields[list[i]!] = list[i + 1]!;
  return fields;
}

/** `INFO` text as `field → value`. */
function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

/** A key of the probe family whose hash slot is `slot` (`CRC16(tag) mod 16384`, tag in braces). */
function probeKeyInSlot(slot: number): string {
  for (let n = 0; ; n++) {
    if (crc16(String(n)) % CLUSTER_SLOTS === slot) return `${PROBE_KEY}:{${n}}`;
  }
}

/** CRC16-CCITT (XMODEM), the hash of Redis Cluster's key slots. */
function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

// ---------------------------------------------------------------- processes

/** Every data server keeps its data across a restart and replicates without delay. */
const DURABLE_SERVER_ARGS = [
  '--appendonly', 'yes',
  '--appendfsync', 'always',
  '--save', '',
  // a replica's first sync starts at once instead of after the default 5 s wait for others
  '--repl-diskless-sync', 'yes',
  '--repl-diskless-sync-delay', '0',
  '--loglevel', 'notice',
];

/** A process the test kit started, with the last lines it printed. */
class Proc {
  readonly child: ChildProcess;
  /** Resolves with how it ended once it exited (the pid is gone then). */
  readonly exited: Promise<string>;
  /** Resolves like {@link exited} once its output is also complete. */
  readonly closed: Promise<string>;
  private readonly lines: string[] = [];
  private failed = false;

  constructor(readonly label: string, command: string, args: readonly string[], env?: NodeJS.ProcessEnv) {
    this.child = spawnOwned(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    const keep = (chunk: Buffer) => {
      this.lines.push(...chunk.toString().split('\n').filter((l) => l.trim()));
      if (this.lines.length > OUTPUT_LINES) this.lines.splice(0, this.lines.length - OUTPUT_LINES);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    const how = (code: number | null, signal: NodeJS.Signals | null) => (signal ? `was killed by ${signal}` : `exited with code ${code}`);
    const spawnError = new Promise<string>((resolve) =>
      this.child.once('error', (err) => {
        this.failed = true;
        resolve(`could not be started: ${err.message}`);
      }),
    );
    this.exited = Promise.race([new Promise<string>((resolve) => this.child.once('exit', (c, s) => resolve(how(c, s)))), spawnError]);
    this.closed = Promise.race([new Promise<string>((resolve) => this.child.once('close', (c, s) => resolve(how(c, s)))), spawnError]);
  }

  get running(): boolean {
    return !this.failed && this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.lines.join('\n');
  }

  /** SIGKILLs it unless it has ended, and resolves once it has exited. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}

class Server extends Proc implements TopologyProcess {
  readonly address: string;

  get pid(): number {
    return this.child.pid ?? -1;
  }

  constructor(public startedAs: TopologyProcess['startedAs'], readonly port: number, args: readonly string[]) {
    const address = `${HOST}:${port}`;
    super(`${startedAs === 'sentinel' ? 'redis-sentinel' : 'redis-server'} ${address} (${startedAs})`, 'redis-server', args);
    this.address = address;
  }

  /**
   * Runs `fn` on a short-lived connection of its own, which never retries nor queues, and gives
   * up after {@link PROBE_TIMEOUT_MS}: a listener that accepts but never answers (another
   * process on the port, a stopped server) must not stall a poll.
   */
  async on<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = new Redis({
      host: HOST,
      port: this.port,
      lazyConnect: true,
      enableReadyCheck: false,
      enableOfflineQueue: false,
      disableClientInfo: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: PROBE_TIMEOUT_MS,
      commandTimeout: PROBE_TIMEOUT_MS,
    });
    r.on('error', () => {});
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.address} did not answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
    });
    try {
      return await Promise.race([r.connect().then(() => fn(r)), timeout]);
    } finally {
      clearTimeout(timer);
      r.disconnect();
    }
  }

  async info(section: string): Promise<Record<string, string>> {
    return parseInfo(await this.on((r) => r.info(section)));
  }

  async clusterInfo(): Promise<Record<string, string>> {
    return parseInfo(String(await this.on((r) => r.call('CLUSTER', 'INFO'))));
  }
}

/** Runs `fn` on the first of `servers` that answers. */
async function onAny<T>(servers: Server[], fn: (r: Redis) => Promise<T>): Promise<T> {
  let last: unknown = new Error('none is running');
  for (const s of servers) {
    try {
      return await s.on(fn);
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`no server answered: ${last instanceof Error ? last.message : String(last)}`);
}

// ---------------------------------------------------------------- bringing a topology up

/** A start that failed because of `proc`, whose last lines go into the message. */
class StartFailure extends Error {
  constructor(message: string, readonly proc?: Proc) {
    super(message);
    this.name = 'StartFailure';
  }
  /** A server could not bind a port chosen as free: another process took it meanwhile. */
  get portTaken(): boolean {
    return isAddressInUse(this.proc?.output() ?? '');
  }
}

/** One attempt at bringing a topology up: what it started, its deadline, its failure. */
class Startup {
  readonly procs: Proc[] = [];
  readonly dir: string;
  /** The process the current step waits for, or the last failed check was about. */
  suspect: Proc | undefined;
  /** What the last failed check found. */
  private problem: string | undefined;
  /** Rejects with the first failure: a process that ended, or the deadline. */
  readonly failed: Promise<never>;
  private fail!: (err: StartFailure) => void;
  private failure: StartFailure | undefined;
  private readonly deadline: number;
  private readonly timer: NodeJS.Timeout;
  private step = 'starting';
  private finished = false;

  constructor(kind: TopologyKind, readonly timeoutMs: number) {
    this.dir = mkdtempSync(join(tmpdir(), `sb-${kind}-${process.pid}-`));
    this.deadline = Date.now() + timeoutMs;
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => {});
    this.timer = setTimeout(() => {
      const problem = this.problem ? ` (${this.problem})` : '';
      this.abort(new StartFailure(`did not come up within ${timeoutMs} ms: still waiting for ${this.step}${problem}`, this.suspect));
    }, timeoutMs);
  }

  get aborted(): boolean {
    return this.failure !== undefined;
  }

  nodeDir(port: number): string {
    const dir = join(this.dir, String(port));
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Starts a server; its ending before the topology is up fails the start. */
  server(role: TopologyProcess['startedAs'], port: number, args: string[]): Server {
    const server = new Server(role, port, args);
    this.procs.push(server);
    void server.closed.then((how) => {
      if (!this.finished) this.abort(new StartFailure(`${server.label} ${how}`, server));
    });
    return server;
  }

  /** Starts a tool that is expected to end (without colours in its output). */
  tool(label: string, command: string, args: string[]): Proc {
    const proc = new Proc(label, command, args, { ...process.env, TERM: 'dumb' });
    this.procs.push(proc);
    return proc;
  }

  /** Waits for `work` (of `proc`, when one is to blame if it does not end in time). */
  async run<T>(step: string, work: Promise<T>, proc?: Proc): Promise<T> {
    this.step = step;
    this.suspect = proc;
    this.problem = undefined;
    return Promise.race([work, this.failed]);
  }

  /**
   * Polls `check` until it holds, within the deadline. A check that fails sets
   * {@link suspect} to the process it is about and throws what it found, for the message.
   */
  async poll(step: string, check: () => Promise<boolean>): Promise<void> {
    await this.run(
      step,
      eventually(
        async () => {
          if (this.aborted) return true;
          try {
            const held = await check();
            this.suspect = undefined;
            return held;
          } catch (err) {
            this.problem = err instanceof Error ? err.message : String(err);
            throw err;
          }
        },
        // past the deadline, so that the deadline's message (with the last problem) is the one
        { timeoutMs: Math.max(0, this.deadline - Date.now()) + 1000, intervalMs: POLL_MS, what: step },
      ).catch((err: Error) => {
        throw new StartFailure(`did not come up within ${this.timeoutMs} ms: ${err.message}`, this.suspect);
      }),
    );
  }

  private abort(err: StartFailure): void {
    if (this.failure) return;
    this.failure = err;
    this.fail(err);
  }

  /** Ends the attempt: stops the deadline and, unless it succeeded, every process and the dir. */
  async end(succeeded: boolean): Promise<void> {
    this.finished = true;
    clearTimeout(this.timer);
    if (succeeded) return;
    await Promise.all(this.procs.map((p) => p.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface Built<K extends TopologyKind> {
  env: Record<string, string>;
  client(options?: TopologyClientOptions<K>): TopologyClient<K>;
  failover(topology: TopologyState, key?: string, timeoutMs?: number): Promise<{ killed: string; promoted: string }>;
}

/**
 * Runs `build` until it succeeds, again (with new ports) when a server lost its port to another
 * process, at most {@link START_ATTEMPTS} times; a failed attempt leaves no process nor dir.
 */
async function bringUp<K extends 'cluster' | 'sentinel'>(
  label: string,
  kind: K,
  timeoutMs: number,
  build: (up: Startup) => Promise<Built<K>>,
): Promise<RedisTopology<K>> {
  for (let attempt = 1; ; attempt++) {
    const up = new Startup(kind, timeoutMs);
    let built: Built<K>;
    try {
      built = await build(up);
    } catch (err) {
      await up.end(false);
      const failure = err instanceof StartFailure ? err : new StartFailure(err instanceof Error ? err.message : String(err), up.suspect);
      if (failure.portTaken && attempt < START_ATTEMPTS) continue;
      const after = failure.portTaken ? ` (a port was taken on each of ${START_ATTEMPTS} attempts)` : '';
      const tail = failure.proc ? `\n--- last lines of ${failure.proc.label} ---\n${failure.proc.output() || '(no output)'}` : '';
      throw new Error(`${label} did not start: ${failure.message}${after}${tail}`, { cause: err });
    }
    await up.end(true);
    return running(kind, up, built);
  }
}

function running<K extends TopologyKind>(kind: K, up: Startup, built: Built<K>): RedisTopology<K> {
  const servers = up.procs.filter((p): p is Server => p instanceof Server);
  const state: TopologyState = { stopped: false };
  let stopping: Promise<void> | undefined;
  // failovers one after the other: each one starts from the primary the last one left
  let queue: Promise<unknown> = Promise.resolve();
  return {
    kind,
    env: built.env,
    processes: servers,
    client: (options) => built.client(options),
    failover: (key, options = {}) => {
      const run = queue.then(() => {
        if (state.stopped) throw new Error('failover: the topology was stopped');
        return built.failover(state, key, options.timeoutMs);
      });
      queue = run.catch(() => {});
      return run;
    },
    stop: () =>
      (stopping ??= (async () => {
        state.stopped = true;
        await Promise.all(up.procs.map((p) => p.kill()));
        rmSync(up.dir, { recursive: true, force: true });
      })()),
  };
}

// ---------------------------------------------------------------- ports and options

/**
 * A free loopback port not in `used`; with `bus`, one whose cluster bus port (+10000) is free
 * too. A port can still be taken before the server binds it: {@link bringUp} retries then.
 */
async function pickPort(used: Set<number>, bus: boolean): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = await freePort();
    if (used.has(port)) continue;
    if (bus) {
      const busPort = port + BUS_OFFSET;
      if (busPort > 65535 || used.has(busPort) || !(await bindable(busPort))) continue;
      used.add(busPort);
    }
    used.add(port);
    return port;
  }
  throw new Error(`found no free loopback port${bus ? ' with a free cluster bus port (+10000)' : ''}`);
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

function count(option: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${option} must be an integer ≥ ${min}, got ${value}`);
  return value;
}
