// GET /v1/stats end to end: the admin service (`node services/admin/dist/main.js`, API key auth) over
// real HTTP on 127.0.0.1, against a registry of 100 and of 10,000 sockets.
//
// As in registry-stats, the sockets are registered directly through the registry: the admin reads
// only the registry's Redis keys (and the queue's counts), never Socket.IO sockets.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort } from '@switchboard/testkit';
import { int } from '../lib/markdown.mjs';
import { isRunning, spawnNode, stopChild } from '../lib/procs.mjs';
import { dropPrefix, dur, interleaved, populate, redisFor, report, SIZES, stats, PODS } from './registry-stats.mjs';

export const name = 'admin-stats';
export const description =
  'GET /v1/stats on the admin service over HTTP with 100 vs 10,000 registered sockets: p50 / p99 / mean, and the ' +
  '10k / 100 ratio (target ≤ 1.5: constant time).';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ADMIN_MAIN = 'services/admin/dist/main.js';
const ADMIN_MAIN_PATH = fileURLToPath(new URL(`../../${ADMIN_MAIN}`, import.meta.url));
const DEFAULTS = { warmup: 200, iterations: 2000, block: 100, readyTimeoutMs: 20_000, requestTimeoutMs: 5000 };

/** Options: --iterations=N (per size) --quick */
function configure(options = {}) {
  const cfg = { ...DEFAULTS };
  if (options.quick) Object.assign(cfg, { warmup: 100, iterations: 600 });
  if (Number(options.iterations) > 0) cfg.iterations = Math.floor(Number(options.iterations));
  return cfg;
}

/** One admin process on a key prefix, ready to answer. */
async function startAdmin({ redisUrl, keyPrefix, apiKey, readyTimeoutMs }) {
  const port = await freePort();
  const child = spawnNode(ADMIN_MAIN_PATH, {
    label: `admin-${keyPrefix}`,
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      HOST: '127.0.0.1',
      PORT: String(port),
      REDIS_URL: redisUrl,
      KEY_PREFIX: keyPrefix,
      POD_ID: `bench-admin-${keyPrefix}`,
      ADMIN_API_KEYS: apiKey,
      LOG_LEVEL: 'warn',
      // one client makes thousands of requests a minute
      ADMIN_RATE_LIMIT_PER_MIN: '100000000',
    },
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (!isRunning(child)) throw new Error(`admin exited (code ${child.exitCode}) before it was ready:\n${child.output.slice(-2000)}`);
    try {
      if ((await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) })).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`admin not ready within ${readyTimeoutMs} ms:\n${child.output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url, child };
}

export async function run(ctx) {
  const cfg = configure(ctx.options);
  if (!existsSync(ADMIN_MAIN_PATH)) throw new Error(`${ADMIN_MAIN} does not exist: build the workspace first (npm run build)`);
  const server = await redisFor(ctx);
  const redis = new Redis(server.url, { connectionName: 'bench:admin-stats' });
  redis.on('error', () => {});
  const apiKey = randomBytes(24).toString('hex');
  const authorization = `Bearer ${apiKey}`;
  const populations = new Map();
  const admins = new Map();
  try {
    for (const size of SIZES) {
      const population = await populate(redis, size);
      populations.set(size, population);
      admins.set(size, await startAdmin({ redisUrl: server.url, keyPrefix: population.keyPrefix, apiKey, readyTimeoutMs: cfg.readyTimeoutMs }));
      ctx.log(`registered ${int(size)} sockets under ${population.keyPrefix}; admin at ${admins.get(size).url}`);
    }

    const get = async (size) => {
      const res = await fetch(`${admins.get(size).url}/v1/stats`, {
        headers: { authorization },
        signal: AbortSignal.timeout(cfg.requestTimeoutMs),
      });
      const body = await res.json();
      if (res.status !== 200) throw new Error(`GET /v1/stats answered ${res.status}: ${JSON.stringify(body)}`);
      return body;
    };
    // The answer must be right before its cost means anything.
    for (const [size, p] of populations) {
      const b = await get(size);
      const got = { connections: b.connections, usersOnline: b.usersOnline, rooms: b.rooms, pods: b.pods.length };
      if (JSON.stringify(got) !== JSON.stringify(p.expected)) {
        throw new Error(`/v1/stats at ${size} sockets read ${JSON.stringify(got)}, expected ${JSON.stringify(p.expected)}`);
      }
    }

    const samples = await interleaved(SIZES, get, cfg);
    for (const size of SIZES) {
      const s = stats(samples.get(size));
      ctx.log(`  ${String(int(size)).padStart(6)} sockets: p50 ${dur(s.p50)}, p99 ${dur(s.p99)}, mean ${dur(s.mean)}`);
    }
    return {
      name,
      ...report({
        title: 'Admin API: GET /v1/stats at 100 vs 10,000 sockets',
        what: 'requests',
        sizes: SIZES,
        samples,
        populations: Object.fromEntries([...populations].map(([size, p]) => [size, p.expected])),
        workload:
          `one \`node ${ADMIN_MAIN}\` process per population (own key prefix, API key auth, logs at warn); sockets ` +
          `registered directly with \`Registry.connect\` / \`join\` as in registry-stats (${PODS} pods, 2 sockets per user, ` +
          `2 rooms per socket); the answers are checked first. ${int(cfg.iterations)} sequential \`GET /v1/stats\` requests ` +
          `per size after ${int(cfg.warmup)} warm-up requests, in blocks of ` +
          `${cfg.block} alternating between the sizes (fetch keeps one connection open per admin). Time = request sent → body read, so it includes HTTP, auth, ` +
          'the registry counts and the queue counts.',
      }),
    };
  } finally {
    await Promise.all([...admins.values()].map((a) => stopChild(a.child, 5000)));
    for (const p of populations.values()) await dropPrefix(redis, p.keyPrefix).catch(() => {});
    redis.disconnect();
    await server.stop();
  }
}
