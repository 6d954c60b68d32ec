import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually, freePort, redisEnvOf, retryOnPortTaken, spawnOwned, TEST_JWT_SECRET } from '@switchboard/testkit';
import { serviceMain } from './services.js';

/** A Node process started by a test, the way `scripts/cluster.sh` starts it. */
export interface ProcessHandle {
  name: string;
  /** `http://127.0.0.1:<port>`: the admin's API, the dispatcher's ops port, the demo page. */
  url: string;
  port: number;
  process: ChildProcess;
  /** Resolves with the exit code once the process exits. */
  exited: Promise<number | null>;
  /** The last lines it wrote, for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs` (default 10 s). */
  stop(graceMs?: number): Promise<void>;
}

export interface StartProcessOptions {
  name: string;
  /** The script `node` runs. */
  script: string;
  /** Environment on top of this process's. */
  env: Record<string, string>;
  port: number;
  /** Polled on `http://127.0.0.1:<port>` until it answers 200. */
  readyPath: string;
  /**
   * A line the process prints once it listens, required as well: proof that the answer came from
   * this process and not from another one that took the port since it was found free.
   */
  readyLine?: RegExp;
  /** @default 15000 */
  timeoutMs?: number;
}

/**
 * Runs `node <script>` (this process's Node, through `spawnOwned`: it dies with the test process)
 * and resolves once `readyPath` answers 200; rejects with its output if it exits first.
 */
export async function startProcess(options: StartProcessOptions): Promise<ProcessHandle> {
  const child = spawnOwned(process.execPath, [options.script], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const { readyLine } = options;
  let sawReadyLine = readyLine === undefined;
  const keep = (chunk: Buffer) => {
    const fresh = chunk.toString().split('\n').filter(Boolean);
    if (readyLine && fresh.some((line) => readyLine.test(line))) sawReadyLine = true;
    lines.push(...fresh);
    if (lines.length > 60) lines.splice(0, lines.length - 60);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const output = () => lines.join('\n');
  const url = `http://127.0.0.1:${options.port}`;

  const stop = async (graceMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.kill('SIGTERM');
    await exited;
    clearTimeout(force);
  };

  try {
    await Promise.race([
      eventually(
        async () => {
          if (!sawReadyLine) return false;
          const res = await fetch(`${url}${options.readyPath}`, { signal: AbortSignal.timeout(1000) });
          await res.body?.cancel();
          return res.ok;
        },
        { timeoutMs: options.timeoutMs ?? 15_000, intervalMs: 50, what: `${options.name} to be ready` },
      ),
      exited.then((code) => {
        throw new Error(`${options.name} exited (${code}) before it was ready`);
      }),
    ]);
  } catch (err) {
    await stop(2000);
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${message}\n--- last output of ${options.name} ---\n${output()}`, { cause: err });
  }
  return { name: options.name, url, port: options.port, process: child, exited, output, stop };
}

export interface ServiceProcessOptions {
  /** A `REDIS_URL`, or the Redis environment of the cluster under test (`cluster.redisEnv`). */
  redis: string | Record<string, string>;
  keyPrefix: string;
  /** Environment on top of the test defaults. */
  env?: Record<string, string>;
}

const logLevel = () => process.env.SB_TEST_LOG_LEVEL ?? 'warn';

/** The dispatcher as a process (`services/dispatcher/dist/main.js`); `url` is its ops port. */
export function startDispatcherProcess(options: ServiceProcessOptions): Promise<ProcessHandle> {
  return onFreePort((port) => ({
    name: 'dispatcher',
    script: serviceMain('dispatcher'),
    port,
    readyPath: '/readyz',
    env: {
      ...redisEnvOf(options.redis),
      KEY_PREFIX: options.keyPrefix,
      OPS_PORT: String(port),
      HOST: '127.0.0.1',
      POD_ID: `${options.keyPrefix}-dispatcher`,
      LOG_LEVEL: logLevel(),
      ...options.env,
    },
  }));
}

/** The admin as a process (`services/admin/dist/main.js`), with `ADMIN_API_KEYS` and the test JWT secret. */
export function startAdminProcess(options: ServiceProcessOptions & { apiKeys: string[] }): Promise<ProcessHandle> {
  return onFreePort((port) => ({
    name: 'admin',
    script: serviceMain('admin'),
    port,
    readyPath: '/readyz',
    env: {
      ...redisEnvOf(options.redis),
      KEY_PREFIX: options.keyPrefix,
      PORT: String(port),
      HOST: '127.0.0.1',
      POD_ID: `${options.keyPrefix}-admin`,
      JWT_SECRET: TEST_JWT_SECRET,
      ADMIN_API_KEYS: options.apiKeys.join(','),
      LOG_LEVEL: logLevel(),
      ...options.env,
    },
  }));
}

/**
 * `scripts/demo-server.mjs`, the demo page's server, minting tokens with the test JWT secret.
 * `port` lets the gateways' CORS_ORIGINS name the page's origin before it runs.
 */
export function startDemoServer(options: { lbUrl: string; port?: number; env?: Record<string, string> }): Promise<ProcessHandle> {
  const at = (port: number): StartProcessOptions => ({
    name: 'demo-server',
    script: fileURLToPath(new URL('../../../scripts/demo-server.mjs', import.meta.url)),
    port,
    readyPath: '/healthz',
    readyLine: /^demo-server: http:\/\//,
    env: {
      DEMO_HOST: '127.0.0.1',
      DEMO_PORT: String(port),
      DEMO_LB_URL: options.lbUrl,
      DEMO_MINT_TOKENS: 'true',
      JWT_SECRET: TEST_JWT_SECRET,
      ...options.env,
    },
  });
  return options.port === undefined ? onFreePort(at) : startProcess(at(options.port));
}

/**
 * Starts a process on a free port, again on another one (up to 5 times) when another test's
 * server took the port before it could bind it: the process then exits with EADDRINUSE.
 */
function onFreePort(at: (port: number) => StartProcessOptions): Promise<ProcessHandle> {
  return retryOnPortTaken(async () => startProcess(at(await freePort())));
}
