// Starts N server processes (the Switchboard gateway or the bare baseline) on loopback ports.
import { existsSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@switchboard/testkit';
import { spawnNode, stopChild, isRunning } from './procs.mjs';
import { sleep } from './clock.mjs';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const SERVERS = {
  baseline: { label: 'baseline', script: 'bench/baseline/server.mjs' },
  switchboard: { label: 'Switchboard gateway', script: 'services/gateway/dist/main.js' },
};

/** The entry point of a kind of server, relative to the repository root (`override` replaces it). */
export const serverScript = (kind, override) => override ?? SERVERS[kind].script;
export const serverAvailable = (kind, override) => existsSync(resolve(ROOT, serverScript(kind, override)));

/**
 * @param {object} o
 * @param {'baseline'|'switchboard'} o.kind
 * @param {string} [o.script]   entry point relative to the repository root, instead of the default
 * @param {number} o.count      number of pods (processes)
 * @param {string} [o.redisUrl] a standalone Redis (`REDIS_URL`)
 * @param {Record<string,string>} [o.redisEnv] instead of `redisUrl`: the topology's variables (SPEC §9),
 *   e.g. `{ REDIS_CLUSTER_NODES }`, with `PUBSUB_MODE` if wanted
 * @param {string} o.keyPrefix  fresh per run so runs never share adapter channels or keys
 * @param {string} o.jwtSecret
 * @param {Record<string,string>} [o.env] extra environment
 * @param {string[]} [o.nodeArgs] Node options before the script (e.g. `--expose-gc`)
 * @param {number[]} [o.ports] public ports to use, one per pod (default: free ones)
 */
export async function startPods({ kind, script: override, count, redisUrl, redisEnv, keyPrefix, jwtSecret, env = {}, nodeArgs = [], ports: fixedPorts, readyTimeoutMs = 30_000 }) {
  const { label } = SERVERS[kind];
  const script = resolve(ROOT, serverScript(kind, override));
  if (!existsSync(script)) throw new Error(`${label} not found (${relative(ROOT, script)})`);
  const pods = [];
  const ports = await distinctFreePorts(count * 2);
  try {
    for (let i = 0; i < count; i++) {
      const [freeA, opsPort] = ports.slice(i * 2, i * 2 + 2);
      const port = fixedPorts?.[i] ?? freeA;
      const id = `bench-${kind}-${String.fromCharCode(97 + i)}`;
      const child = spawnNode(script, {
        label: id,
        cwd: ROOT,
        nodeArgs,
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          NODE_ENV: 'production',
          HOST: '127.0.0.1',
          PORT: String(port),
          OPS_PORT: String(opsPort),
          ...(redisEnv ?? { REDIS_URL: redisUrl }),
          KEY_PREFIX: keyPrefix,
          JWT_SECRET: jwtSecret,
          POD_ID: id,
          LOG_LEVEL: 'warn',
          RATE_LIMIT_PER_SEC: '100000',
          RATE_LIMIT_BURST: '100000',
          MAX_CONNECTIONS_PER_USER: '100',
          // Every bench client connects from 127.0.0.1: lift the gateway's per-address handshake limit.
          HANDSHAKE_RATE_PER_SEC: '100000',
          // One publisher offers the whole load: lift the per-user publish budget.
          PUBLISH_BUDGET_MESSAGES: '100000000',
          PUBLISH_BUDGET_BYTES: '100000000000',
          ...env,
        },
      });
      pods.push({ id, port, opsPort, url: `http://127.0.0.1:${port}`, pid: child.pid, child });
    }
    await Promise.all(pods.map((pod) => waitReady(pod, readyTimeoutMs)));
    return pods;
  } catch (err) {
    await stopPods(pods);
    throw err;
  }
}

/** `n` different free loopback ports (freePort() may hand out the same port twice in a row). */
async function distinctFreePorts(n) {
  const ports = new Set();
  for (let attempts = 0; ports.size < n && attempts < n * 20; attempts++) ports.add(await freePort());
  if (ports.size < n) throw new Error(`could not find ${n} free loopback ports`);
  return [...ports];
}

export async function stopPods(pods) {
  await Promise.all(pods.map((pod) => stopChild(pod.child, 5000)));
}

async function waitReady(pod, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isRunning(pod.child)) {
      throw new Error(`${pod.id} exited (code ${pod.child.exitCode}) before it was ready:\n${tail(pod.child.output)}`);
    }
    try {
      const res = await fetch(`${pod.url}/readyz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  throw new Error(`${pod.id} not ready (GET /readyz) within ${timeoutMs} ms:\n${tail(pod.child.output)}`);
}

const tail = (text) => (text || '(no output)').trim().split('\n').slice(-15).join('\n');
