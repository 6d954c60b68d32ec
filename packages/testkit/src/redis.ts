import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface RedisHandle {
  url: string;
  /** How this Redis was provided. */
  kind: 'env' | 'container' | 'local';
  /** Stops the server (no-op for `REDIS_URL`). */
  stop(): Promise<void>;
  /** Stops and starts the same server on the same port and data dir (local only). */
  restart?(): Promise<void>;
  /** Kills the server abruptly (local only). */
  kill?(): Promise<void>;
  /** Starts a killed server again (local only). */
  start?(): Promise<void>;
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

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function startLocalRedis(options: StartRedisOptions): Promise<RedisHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));
  const port = await freePort();
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
  let proc: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;

  const start = async () => {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${stderr.trim()}`))),
    );
    const spawnFailed = new Promise<never>((_, reject) =>
      child.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`))),
    );
    await Promise.race([waitForPing(url, 10_000), exited, spawnFailed]);
  };

  const stopProc = async (signal: NodeJS.Signals) => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
    });
  };

  await start();
  return {
    url,
    kind: 'local',
    stop: async () => {
      await stopProc('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    restart: async () => {
      await stopProc('SIGTERM');
      await start();
    },
    kill: () => stopProc('SIGKILL'),
    start,
  };
}

async function waitForPing(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    } finally {
      client.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
