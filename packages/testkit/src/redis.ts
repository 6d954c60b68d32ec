import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { spawnOwned, stopProcess } from './processes.js';

export interface RedisHandle {
  url: string;
  /** How this Redis was provided. */
  kind: 'env' | 'container' | 'local';
  /** Stops the server (no-op for `REDIS_URL`); it cannot be started again. */
  stop(): Promise<void>;
  /** Stops and starts the same server on the same port and data dir (local only). */
  restart?(): Promise<void>;
  /** Kills the server abruptly (local only). */
  kill?(): Promise<void>;
  /** Starts a killed server again; a no-op while it runs (local only). */
  start?(): Promise<void>;
  /** The server's pid while it runs (local only). */
  readonly pid?: number | undefined;
}

export interface StartRedisOptions {
  /** Turn on the append-only file (local server only). @default false */
  appendonly?: boolean;
  /** Ignore `REDIS_URL` and start a server. @default false */
  fresh?: boolean;
  /** More `redis-server` arguments, e.g. `['--maxmemory', '100mb']` (local server only). */
  serverArgs?: string[];
}

/**
 * Redis for tests: `REDIS_URL` when set; a testcontainers container where a Docker engine
 * answers; otherwise a `redis-server` on a random loopback port in a temp dir.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisHandle> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv && !options.fresh) return { url: fromEnv, kind: 'env', stop: async () => {} };
  if (!options.appendonly && !options.serverArgs?.length && (await dockerEngineAnswers())) {
    const container = await startContainer().catch(() => undefined);
    if (container) return container;
  }
  return startLocalRedis(options);
}

async function dockerEngineAnswers(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 5000).unref()),
    ]);
    return true;
  } catch {
    return false;
  }
}

async function startContainer(): Promise<RedisHandle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer('redis:7-alpine')
    .withExposedPorts(6379)
    .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
    .start();
  return {
    url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`,
    kind: 'container',
    stop: async () => {
      await container.stop();
    },
  };
}

/**
 * A loopback port that was free a moment ago, for a server a test starts as a separate process.
 *
 * It is drawn at random from below the kernel's ephemeral range: a port that `listen(0)` hands out
 * comes from that range, where any outgoing connection of any process (a Redis client, a fetch) may
 * take it before the server binds it. Below the range only another server picking the same port can,
 * and callers that start one retry on `EADDRINUSE` ({@link isAddressInUse}).
 */
export async function freePort(): Promise<number> {
  const [low, high] = portRange();
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (await canListen(port)) return port;
  }
  return listenOn(0);
}

/** Whether a start failed because its port was taken meanwhile. */
export const isAddressInUse = (text: string): boolean =>
  // Node; redis-server (also for a cluster bus port); HAProxy
  /EADDRINUSE|address already in use|failed listening on port|cannot bind/i.test(text);

/** The ports {@link freePort} draws from: 10000 up to the start of the ephemeral range (Linux), or 20000–29999. */
function portRange(): [number, number] {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 11_000) return [10_000, first - 1];
  } catch {
    // not Linux: a range that is outside the usual ephemeral ranges (49152+, 32768+)
  }
  return [20_000, 29_999];
}

const canListen = (port: number): Promise<boolean> => listenOn(port).then(() => true, () => false);

function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(bound));
    });
  });
}

export interface LocalRedisOptions extends Omit<StartRedisOptions, 'fresh'> {
  /** @default a free port */
  port?: number;
}

/**
 * A `redis-server` on a random loopback port in a temp dir, whatever `REDIS_URL` says: the
 * handle has `pid`, `kill`, `start` and `restart`. It runs under {@link spawnOwned}, so it dies
 * with this process.
 */
export async function startLocalRedis(options: LocalRedisOptions = {}): Promise<RedisHandle> {
  if (options.port !== undefined) return startLocalRedisOn(options.port, options);
  return retryOnPortTaken(async () => startLocalRedisOn(await freePort(), options));
}

/**
 * Runs `start` again (up to 5 times) when it fails because the free port it drew was taken before
 * its server bound it; any other failure is thrown at once.
 */
export async function retryOnPortTaken<T>(start: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= attempts || !isAddressInUse(err instanceof Error ? err.message : String(err))) throw err;
    }
  }
}

async function startLocalRedisOn(port: number, options: LocalRedisOptions): Promise<RedisHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', options.appendonly ? 'yes' : 'no',
    '--appendfsync', 'always',
    '--protected-mode', 'no',
    '--maxclients', '10000',
    '--loglevel', 'warning',
    ...(options.serverArgs ?? []),
  ];
  const url = `redis://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  let stopped = false;
  // start, kill, restart and stop run one after the other: a stop that raced a restart used to
  // find no process (between the two halves of the restart) and leave the new one running
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(op: () => Promise<T>): Promise<T> => {
    const run = queue.then(op);
    queue = run.catch(() => {});
    return run;
  };
  const running = (p: ChildProcess | undefined): p is ChildProcess =>
    p !== undefined && p.exitCode === null && p.signalCode === null;

  const launch = async () => {
    if (stopped) throw new Error(`redis-server on port ${port} was stopped`);
    // Starting while it runs is a no-op: a second server would fail to bind, and the first
    // would no longer be the one stop() stops (and outlive the test run).
    if (running(proc)) return;
    const child = spawnOwned('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${stderr.trim()}`))),
    );
    const spawnFailed = new Promise<never>((_, reject) =>
      child.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`))),
    );
    exited.catch(() => {});
    spawnFailed.catch(() => {});
    try {
      await Promise.race([waitForServer(url, 10_000, child.pid), exited, spawnFailed]);
    } catch (err) {
      await stopProcess(child, 'SIGKILL'); // never leave a server behind that did not come up
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  };

  const halt = async (signal: NodeJS.Signals) => {
    const p = proc;
    proc = undefined;
    if (p) await stopProcess(p, signal);
  };

  await serial(launch);
  return {
    url,
    kind: 'local',
    get pid() {
      return running(proc) ? proc.pid : undefined;
    },
    stop: () =>
      serial(async () => {
        stopped = true;
        await halt('SIGTERM');
        rmSync(dir, { recursive: true, force: true });
      }),
    restart: () =>
      serial(async () => {
        await halt('SIGTERM');
        await launch();
      }),
    kill: () => serial(() => halt('SIGKILL')),
    start: () => serial(launch),
  };
}

/**
 * Resolves once the server at `url` answers and is process `pid` when given: another server on
 * the port (one that took it first) must not pass for the one just started.
 */
async function waitForServer(url: string, timeoutMs: number, pid?: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      const info = await client.info('server');
      const answered = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
      if (pid === undefined || answered === pid) return;
      throw new Error(`another redis-server (pid ${answered}) answers on ${url}`);
    } catch (err) {
      if (Date.now() > deadline) throw err;
    } finally {
      client.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
