import type { ChildProcess } from 'node:child_process';
import { Registry as MetricsRegistry } from 'prom-client';
import { io as ioClient, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { createVerifier, type TokenVerifier } from '@switchboard/auth';
import { loadGatewayConfig, loadRedisConfig, type RedisConfig } from '@switchboard/config';
import { createGateway, type Gateway } from '@switchboard/gateway';
import { createLogger } from '@switchboard/observability';
import {
  ioKey,
  type ClientToServerEvents,
  type HandshakeErrorData,
  type ServerToClientEvents,
  type SessionReady,
} from '@switchboard/protocol';
import { Broadcaster, createRedisClient, InboxStore, keys, waitReady, type RedisClient } from '@switchboard/store';
import {
  deleteKeys,
  eventually,
  freePort,
  mintToken,
  randomKeyPrefix,
  retryOnPortTaken,
  spawnOwned,
  TEST_JWT_SECRET,
  type TokenClaims,
} from '@switchboard/testkit';
import { serviceMain } from './services.js';

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
export interface TestClient extends ClientSocket {
  /** The `session:ready` payload this client got. */
  session: SessionReady;
}

export interface ClusterOptions {
  /**
   * The Redis of the cluster, as the environment a service gets (SPEC §9): `{ REDIS_URL }`,
   * `{ REDIS_SENTINELS, REDIS_SENTINEL_NAME }` or `{ REDIS_CLUSTER_NODES }`, optionally with
   * `PUBSUB_MODE`. A string is a `REDIS_URL`.
   */
  redis: string | Record<string, string>;
  /** @default 2 */
  gateways?: number;
  /** @default a random prefix, so tests can share one Redis */
  keyPrefix?: string;
  /** Gateway environment on top of the defaults (e.g. `{ ALLOW_GUESTS: 'true' }`). */
  env?: Record<string, string>;
  /** Run each gateway as a `node dist/main.js` process instead of in this process. */
  processes?: boolean;
  /** Wraps the token verifier of in-process gateways (e.g. to hold a verification back). */
  wrapVerifier?: (verifier: TokenVerifier) => TokenVerifier;
  /** Node.js flags of a process gateway, by index (e.g. `--import` of a preload). */
  nodeArgs?: (index: number) => string[];
}

export interface ClusterGateway {
  index: number;
  podId: string;
  port: number;
  opsPort: number;
  url: string;
  opsUrl: string;
  /** In-process gateways only. */
  gateway?: Gateway;
  /** In-process gateways only: the gateway's Redis clients (commands, adapter publisher and subscriber). */
  clients?: { commands: RedisClient; pub: RedisClient; sub: RedisClient };
  /** Process gateways only. */
  process?: ChildProcess;
  /** Resolves with the exit code once a process gateway exits. */
  exited?: Promise<number | null>;
  /** SIGTERM for a process, `close()` in process. */
  stop(): Promise<void>;
  /** SIGKILL: the pod dies without cleaning up (processes only). */
  kill(): Promise<void>;
  /**
   * Starts a new process for this gateway after it exited: same `POD_ID`, same ports, as a
   * container restarted by its orchestrator (processes only). Updates this handle.
   */
  respawn(): Promise<void>;
  /** SIGSTOP / SIGCONT: the process stalls and resumes, its connections stay open (processes only). */
  pause(): void;
  resume(): void;
}

export interface ConnectOptions extends TokenClaims {
  /** Which gateway to connect to. @default 0 */
  gateway?: number;
  /** Use this token instead of minting one; `null` connects without any token. */
  token?: string | null;
  /** Socket.IO client options (transports default to websocket). */
  options?: Partial<ManagerOptions & SocketOptions>;
}

export interface Cluster {
  /** The Redis environment every gateway of this cluster gets. */
  redisEnv: Record<string, string>;
  /** The Redis settings of that environment. */
  redisConfig: RedisConfig;
  keyPrefix: string;
  secret: string;
  gateways: ClusterGateway[];
  /** A command client on the cluster's Redis. */
  redis: RedisClient;
  /** Emits to the cluster like the dispatcher and admin do, in the cluster's pub/sub mode. */
  emitter: Broadcaster;
  token(claims: TokenClaims): Promise<string>;
  /** Connects and waits for `session:ready`. */
  connect(userOrOptions: string | ConnectOptions): Promise<TestClient>;
  /** Connects and resolves with the `connect_error` the handshake ends in. */
  refused(options: ConnectOptions): Promise<{ message: string; data?: HandshakeErrorData }>;
  /** A client that is not connected yet (for custom flows); closed by `stop()`. */
  socket(options: ConnectOptions & { token: string | null }): ClientSocket;
  /** Adds a gateway (same options). */
  addGateway(): Promise<ClusterGateway>;
  stop(): Promise<void>;
}


/**
 * Several gateway pods on one Redis, as in production (SPEC §1): the harness of the cluster
 * tests. Each cluster uses its own key prefix, so clusters of parallel test files never meet.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const keyPrefix = options.keyPrefix ?? randomKeyPrefix();
  const secret = TEST_JWT_SECRET;
  const redisEnv = typeof options.redis === 'string' ? { REDIS_URL: options.redis } : options.redis;
  const redisConfig = loadRedisConfig({ ...redisEnv, ...pick(options.env, 'PUBSUB_MODE') });
  const quiet = { warn: () => {} };
  const redis = createRedisClient(redisConfig, 'test', quiet);
  const emitter = new Broadcaster(redis, ioKey(keyPrefix), redisConfig.pubsubMode);
  const gateways: ClusterGateway[] = [];
  const clients = new Set<ClientSocket>();

  const baseEnv = (index: number, port: number, opsPort: number): Record<string, string> => ({
    ...redisEnv,
    KEY_PREFIX: keyPrefix,
    JWT_SECRET: secret,
    PORT: String(port),
    OPS_PORT: String(opsPort),
    HOST: '127.0.0.1',
    POD_ID: `${keyPrefix}-gw${index}`,
    // fatal: the one line a gateway that cannot start writes, for the error that says why
    LOG_LEVEL: process.env.SB_TEST_LOG_LEVEL ?? 'fatal',
    HEARTBEAT_INTERVAL_MS: '1000',
    HANDSHAKE_RATE_PER_SEC: '10000',
    // tests publish in bursts; the budget has tests of its own
    PUBLISH_BUDGET_MESSAGES: '1000000',
    PUBLISH_BUDGET_BYTES: '1000000000',
    ...options.env,
  });

  async function addGateway(): Promise<ClusterGateway> {
    const index = gateways.length;
    const g = options.processes ? await startProcess(index) : await startInProcess(index);
    gateways.push(g);
    return g;
  }

  async function startInProcess(index: number): Promise<ClusterGateway> {
    const env = baseEnv(index, 0, 0);
    const config = loadGatewayConfig(env);
    const logger = createLogger({ service: 'gateway', level: config.logLevel, pod: config.podId });
    const commands = createRedisClient(config.redis, 'test-gateway', quiet, { maxRetriesPerRequest: 1 });
    const pub = createRedisClient(config.redis, 'test-pub', quiet, { maxRetriesPerRequest: 1 });
    const sub = createRedisClient(config.redis, 'test-sub', quiet, { shardedSubscriber: config.redis.pubsubMode === 'sharded' });
    await Promise.all([commands, pub, sub].map((c) => waitReady(c, 30_000)));
    const gateway = createGateway(
      {
        redis: commands,
        pubClient: pub,
        subClient: sub,
        verifier: (options.wrapVerifier ?? ((v) => v))(createVerifier(config.jwt)),
        inbox: new InboxStore(commands, keys(keyPrefix)),
        logger,
        metrics: new MetricsRegistry(),
      },
      config,
    );
    const { port, opsPort } = await gateway.listen();
    let stopped: Promise<void> | undefined;
    return {
      index,
      podId: config.podId,
      port,
      opsPort,
      url: `http://127.0.0.1:${port}`,
      opsUrl: `http://127.0.0.1:${opsPort}`,
      gateway,
      clients: { commands, pub, sub },
      stop: () =>
        (stopped ??= gateway.close({ drainMs: 0 }).then(async () => {
          for (const c of [commands, pub, sub]) c.disconnect();
        })),
      kill: () => Promise.reject(new Error('kill() needs a process gateway')),
      respawn: () => Promise.reject(new Error('respawn() needs a process gateway')),
      pause: () => {
        throw new Error('pause() needs a process gateway');
      },
      resume: () => {
        throw new Error('resume() needs a process gateway');
      },
    };
  }

  // A port drawn free may be taken by another test's server before the gateway binds it: the
  // gateway then exits with EADDRINUSE, and is started again on other ports.
  const startProcess = (index: number): Promise<ClusterGateway> =>
    retryOnPortTaken(async () => startProcessOn(index, await freePort(), await freePort()));

  async function startProcessOn(index: number, port: number, opsPort: number): Promise<ClusterGateway> {
    const env = baseEnv(index, port, opsPort);
    const url = `http://127.0.0.1:${port}`;
    const g = {
      index,
      podId: env.POD_ID!,
      port,
      opsPort,
      url,
      opsUrl: `http://127.0.0.1:${opsPort}`,
    } as ClusterGateway;

    const launch = async () => {
      const child = spawnOwned(process.execPath, [...(options.nodeArgs?.(index) ?? []), serviceMain('gateway')], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // its last output (the logger writes to stdout), for the error when it does not come up
      let output = '';
      const keep = (d: Buffer) => (output = (output + d.toString()).slice(-4000));
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      // after its output has been read to the end
      const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      const signal = async (sig: NodeJS.Signals) => {
        if (child.exitCode === null && child.signalCode === null) {
          if (sig !== 'SIGCONT') child.kill('SIGCONT'); // a paused process handles nothing else
          child.kill(sig);
        }
        await exited;
      };
      g.process = child;
      g.exited = exited;
      g.stop = () => signal('SIGTERM');
      g.kill = () => signal('SIGKILL');
      g.pause = () => void child.kill('SIGSTOP');
      g.resume = () => void child.kill('SIGCONT');
      await Promise.race([
        eventually(async () => (await fetch(`${url}/readyz`)).ok, { timeoutMs: 15_000, intervalMs: 50 }),
        closed.then((code) => {
          throw new Error(`gateway ${index} exited (${code}): ${output}`);
        }),
      ]);
    };
    g.respawn = async () => {
      if (g.process && g.process.exitCode === null && g.process.signalCode === null) {
        throw new Error(`gateway ${index} is still running`);
      }
      await launch();
    };
    await launch();
    return g;
  }

  function socket(o: ConnectOptions & { token: string | null }): ClientSocket {
    const g = gateways[o.gateway ?? 0];
    if (!g) throw new Error(`no gateway ${o.gateway}`);
    const s: ClientSocket = ioClient(g.url, {
      forceNew: true,
      reconnection: false,
      transports: ['websocket'],
      ...(o.token === null ? {} : { auth: { token: o.token } }),
      ...o.options,
    });
    clients.add(s);
    return s;
  }

  const tokenFor = async (o: ConnectOptions) => (o.token !== undefined ? o.token : await mintToken(o, secret));

  async function connect(userOrOptions: string | ConnectOptions): Promise<TestClient> {
    const o: ConnectOptions = typeof userOrOptions === 'string' ? { sub: userOrOptions } : userOrOptions;
    const s = socket({ ...o, token: await tokenFor(o) }) as TestClient;
    s.session = await new Promise<SessionReady>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no session:ready for ${o.sub}`)), 10_000);
      s.once('session:ready', (ready) => {
        clearTimeout(timer);
        resolve(ready);
      });
      s.once('connect_error', (err: Error & { data?: unknown }) => {
        clearTimeout(timer);
        reject(new Error(`connect_error ${err.message} ${JSON.stringify(err.data)}`));
      });
    });
    return s;
  }

  async function refused(o: ConnectOptions): Promise<{ message: string; data?: HandshakeErrorData }> {
    const s = socket({ ...o, token: await tokenFor(o) });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the handshake was not refused')), 10_000);
      s.once('connect', () => {
        clearTimeout(timer);
        s.close();
        reject(new Error('the handshake was accepted'));
      });
      s.once('connect_error', (err: Error & { data?: HandshakeErrorData }) => {
        clearTimeout(timer);
        s.close();
        resolve({ message: err.message, ...(err.data ? { data: err.data } : {}) });
      });
    });
  }

  const count = options.gateways ?? 2;
  try {
    for (let i = 0; i < count; i++) await addGateway();
  } catch (err) {
    await Promise.allSettled(gateways.map((g) => g.stop()));
    redis.disconnect();
    throw err;
  }

  return {
    redisEnv,
    redisConfig,
    keyPrefix,
    secret,
    gateways,
    redis,
    emitter,
    token: (claims) => mintToken(claims, secret),
    connect,
    refused,
    socket,
    addGateway,
    async stop() {
      for (const c of clients) c.close();
      await Promise.allSettled(gateways.map((g) => g.stop()));
      await deleteKeys(redis, keyPrefix); // leave no keys behind in the shared Redis
      redis.disconnect();
    },
  };
}

function pick(env: Record<string, string> | undefined, ...names: string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((n) => (env?.[n] !== undefined ? [[n, env[n]]] : [])));
}
