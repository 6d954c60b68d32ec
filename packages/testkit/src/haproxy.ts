import type { ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnOwned, stopProcess } from './processes.js';
import { freePort, retryOnPortTaken } from './redis.js';

/** The load balancer configuration shared by docker-compose, `scripts/cluster.sh` and tests. */
export const HAPROXY_CONFIG = fileURLToPath(new URL('../../../deploy/haproxy/haproxy.cfg', import.meta.url));

export interface StartHaproxyOptions {
  /** Gateways' public addresses as `host:port`, 1–3 of them. */
  gateways: string[];
  /** Health check interval (`LB_CHECK_INTER`), short so tests see a pod go down quickly. @default 200 */
  checkIntervalMs?: number;
  /** Also open the stats frontend (`/stats`, `/readyz`, `/metrics`) on a free port. @default false */
  stats?: boolean;
  /** How long to wait for the frontend to accept connections. @default 10000 */
  timeoutMs?: number;
}

export interface HaproxyHandle {
  /** `http://127.0.0.1:<port>`: the frontend clients connect to. */
  url: string;
  port: number;
  /** `http://127.0.0.1:<port>` of the stats frontend, when `stats` was asked for. */
  statsUrl?: string;
  /** Stops HAProxy (hard stop: open connections are closed). */
  stop(): Promise<void>;
}

const SLOTS = 3;
const BIND_ATTEMPTS = 3;

/**
 * Runs `haproxy -db -f deploy/haproxy/haproxy.cfg` on a free loopback port in front of the given
 * gateways and resolves once the frontend accepts connections.
 */
export async function startHaproxy(options: StartHaproxyOptions): Promise<HaproxyHandle> {
  const { gateways } = options;
  if (gateways.length < 1 || gateways.length > SLOTS) {
    throw new RangeError(`startHaproxy: 1 to ${SLOTS} gateways, got ${gateways.length}`);
  }
  for (const g of gateways) {
    if (!/^[^\s:]+:\d{1,5}$/.test(g)) throw new TypeError(`startHaproxy: "${g}" is not host:port`);
  }
  const bin = haproxyBinary();
  // Another process may take a free port before HAProxy binds it; only that is retried.
  return retryOnPortTaken(
    async () => launch(bin, await freePort(), options.stats ? await freePort() : undefined, options),
    BIND_ATTEMPTS,
  );
}

async function launch(
  bin: string,
  port: number,
  statsPort: number | undefined,
  options: StartHaproxyOptions,
): Promise<HaproxyHandle> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(LB_|GATEWAY_\d)/.test(key)) env[key] = value;
  }
  env.LB_BIND = `127.0.0.1:${port}`;
  env.LB_CHECK_INTER = `${options.checkIntervalMs ?? 200}ms`;
  env.LB_LOG_LEVEL = 'notice';
  options.gateways.forEach((g, i) => (env[`GATEWAY_${i + 1}`] = g));
  if (statsPort !== undefined) env.LB_STATS_BIND = `127.0.0.1:${statsPort}`;

  const child = spawnOwned(bin, ['-db', '-f', HAPROXY_CONFIG], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = tail(child);
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`cannot run ${bin}: ${err.message}`)));
    child.once('exit', (code, signal) =>
      reject(new Error(`haproxy exited (${signal ?? code}) before accepting connections:\n${output()}`)),
    );
  });
  exited.catch(() => {});

  try {
    await Promise.race([waitForListener(port, options.timeoutMs ?? 10_000), exited]);
  } catch (err) {
    await stopProcess(child);
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    ...(statsPort !== undefined ? { statsUrl: `http://127.0.0.1:${statsPort}` } : {}),
    stop: () => stopProcess(child),
  };
}

/** `haproxy` from `PATH`, or from the sbin directories a non-root `PATH` often lacks. */
export function haproxyBinary(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, 'haproxy');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error('haproxy is not installed (Debian: apt-get install haproxy)');
}

/** Keeps the last lines HAProxy printed, for error messages. */
function tail(child: ChildProcess, max = 40): () => string {
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    if (lines.length > max) lines.splice(0, lines.length - max);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => lines.join('\n');
}

async function waitForListener(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await accepts(port))) {
    if (Date.now() > deadline) throw new Error(`haproxy did not accept connections on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
