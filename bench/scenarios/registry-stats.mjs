// Cost of the cluster counts the admin API shows (SPEC §5: "in time independent of the number of
// connections"): ReadModel.counts() against a registry of 100 and of 10,000 sockets.
//
// Sockets are registered directly through the registry (Registry.connect / join), exactly the writes a
// gateway makes for each connection and room join; no Socket.IO client is involved, because counts()
// reads only these Redis keys and never the sockets.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { ReadModel, Registry } from '@switchboard/store';
import { startRedis } from '@switchboard/testkit';
import { table, int, ms, ratio } from '../lib/markdown.mjs';

/** A duration in ms, in µs below a millisecond (these reads take tens of µs). */
export const dur = (n) => (Number.isFinite(n) && n < 1 ? `${Math.round(n * 1000)} µs` : ms(n));

export const name = 'registry-stats';
export const description =
  'ReadModel.counts() (the /v1/stats counts) with 100 vs 10,000 registered sockets over 3 pods: p50 / p99 / mean, ' +
  'and the 10k / 100 ratio (target ≤ 1.5: constant time).';

export const SIZES = [100, 10_000];
export const PODS = 3;
/** Target: counts() at 10,000 sockets costs at most this many times its cost at 100 (p50). */
export const TARGET_RATIO = 1.5;

const DEFAULTS = { warmup: 300, iterations: 3000, block: 100 };

/** Options: --iterations=N (per size) --quick */
function configure(options = {}) {
  const cfg = { ...DEFAULTS };
  if (options.quick) Object.assign(cfg, { warmup: 100, iterations: 1000 });
  if (Number(options.iterations) > 0) cfg.iterations = Math.floor(Number(options.iterations));
  return cfg;
}

/** A Redis for a standalone run: the runner's, else REDIS_URL, else a fresh local server. */
export async function redisFor(ctx) {
  if (ctx.redisUrl) return { url: ctx.redisUrl, stop: async () => {} };
  return startRedis({ fresh: !process.env.REDIS_URL });
}

/**
 * Registers `sockets` sockets under a fresh key prefix, as gateways would: 3 pods with heartbeats,
 * two sockets per user, each socket in two rooms (one room per 10 sockets). Writes are sent in
 * batches of 500 concurrent script calls, which ioredis pipelines on the one connection.
 * Returns the prefix and what the counts must read.
 */
export async function populate(redis, sockets) {
  const keyPrefix = `bench.${randomUUID().slice(0, 8)}`;
  const registry = new Registry(redis, keyPrefix);
  const instances = Array.from({ length: PODS }, (_, i) => ({ id: `bench-pod-${i}#1`, pod: `bench-pod-${i}` }));
  for (const instance of instances) await registry.heartbeat(instance);
  const users = Math.max(1, Math.floor(sockets / 2));
  const rooms = Math.max(1, Math.floor(sockets / 10));
  const socket = (i) => ({ socketId: `s${i}`, userId: `u${i % users}`, guest: false });
  const BATCH = 500;
  for (let start = 0; start < sockets; start += BATCH) {
    const batch = [];
    for (let i = start; i < Math.min(sockets, start + BATCH); i++) {
      batch.push(registry.connect({ ...socket(i), instance: instances[i % PODS], maxConnections: 1000 }));
    }
    const results = await Promise.all(batch);
    if (results.some((r) => !r.accepted)) throw new Error('a registration was refused');
    const joins = [];
    for (let i = start; i < Math.min(sockets, start + BATCH); i++) {
      joins.push(registry.join(socket(i), `public:room-${i % rooms}`), registry.join(socket(i), `public:room-${(i * 7 + 3) % rooms}`));
    }
    await Promise.all(joins);
  }
  return { keyPrefix, expected: { connections: sockets, usersOnline: users, rooms, pods: PODS } };
}

/** Deletes every key under a prefix (SCAN + UNLINK, bounded). */
export async function dropPrefix(redis, keyPrefix) {
  let cursor = '0';
  for (let i = 0; i < 100_000; i++) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1000);
    if (keys.length) await redis.unlink(...keys);
    cursor = next;
    if (cursor === '0') return;
  }
}

/** Exact percentiles of a sample, in ms. */
export function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  return { count: sorted.length, p50: at(50), p99: at(99), mean: sorted.reduce((a, b) => a + b, 0) / sorted.length, max: sorted[sorted.length - 1] };
}

/**
 * Times `op(size)` for every size, interleaved in blocks (A B B A …) so a drift of the machine hits
 * every size alike. Returns the samples (ms) per size.
 */
export async function interleaved(sizes, op, { warmup, iterations, block }) {
  const samples = new Map(sizes.map((s) => [s, []]));
  for (const size of sizes) for (let i = 0; i < warmup; i++) await op(size);
  const rounds = Math.ceil(iterations / block);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? sizes : [...sizes].reverse();
    for (const size of order) {
      const out = samples.get(size);
      for (let i = 0; i < block && out.length < iterations; i++) {
        const t0 = performance.now();
        await op(size);
        out.push(performance.now() - t0);
      }
    }
  }
  return samples;
}

/** The report table and verdict shared by the registry and admin scenarios. */
export function report({ title, what, sizes, samples, populations, workload, notes = [] }) {
  const figures = sizes.map((size) => ({ size, ...stats(samples.get(size)) }));
  const [small, large] = [figures[0], figures[figures.length - 1]];
  const r = { p50: large.p50 / small.p50, p99: large.p99 / small.p99, mean: large.mean / small.mean };
  const verdict = r.p50 <= TARGET_RATIO ? 'PASS' : 'FAIL';
  const rows = figures.map((f) => [int(f.size), int(f.count), dur(f.p50), dur(f.p99), dur(f.mean), dur(f.max)]);
  rows.push([`**${int(large.size)} / ${int(small.size)}**`, '', `**${ratio(r.p50)}**`, ratio(r.p99), ratio(r.mean), '']);
  const markdown = [
    `**Workload:** ${workload}`,
    '',
    table(['registered sockets', `${what} timed`, 'p50', 'p99', 'mean', 'max'], rows),
    '',
    `**Verdict: ${verdict}** (target: p50 at ${int(large.size)} sockets ≤ ${TARGET_RATIO}× p50 at ${int(small.size)}; ` +
      `p99 and mean ratios shown for information)`,
    ...notes.map((n) => `- ${n}`),
  ].join('\n');
  return { title, verdict, markdown, data: { figures, ratios: r, target: TARGET_RATIO, populations } };
}

export async function run(ctx) {
  const cfg = configure(ctx.options);
  const server = await redisFor(ctx);
  const redis = new Redis(server.url, { connectionName: 'bench:registry-stats' });
  redis.on('error', () => {});
  const populations = new Map();
  try {
    for (const size of SIZES) {
      const t0 = performance.now();
      const population = await populate(redis, size);
      populations.set(size, population);
      ctx.log(`registered ${int(size)} sockets under ${population.keyPrefix} in ${ms(performance.now() - t0)}`);
    }
    const models = new Map([...populations].map(([size, p]) => [size, new ReadModel(redis, p.keyPrefix)]));
    // The counts must be right before their cost means anything.
    for (const [size, p] of populations) {
      const c = await models.get(size).counts();
      const got = { connections: c.connections, usersOnline: c.usersOnline, rooms: c.rooms, pods: c.pods.length };
      if (JSON.stringify(got) !== JSON.stringify(p.expected)) {
        throw new Error(`counts() at ${size} sockets read ${JSON.stringify(got)}, expected ${JSON.stringify(p.expected)}`);
      }
    }
    const samples = await interleaved(SIZES, (size) => models.get(size).counts(), cfg);
    for (const size of SIZES) {
      const s = stats(samples.get(size));
      ctx.log(`  ${String(int(size)).padStart(6)} sockets: p50 ${dur(s.p50)}, p99 ${dur(s.p99)}, mean ${dur(s.mean)}`);
    }
    return {
      name,
      ...report({
        title: 'Registry counts: ReadModel.counts() at 100 vs 10,000 sockets',
        what: 'counts()',
        sizes: SIZES,
        samples,
        populations: Object.fromEntries([...populations].map(([size, p]) => [size, p.expected])),
        workload:
          `sockets registered directly with \`Registry.connect\` / \`join\` (the gateway's own writes): ${PODS} pods, 2 sockets ` +
          `per user, each socket in 2 rooms, 1 room per 10 sockets; the counts are checked first. ${int(cfg.iterations)} ` +
          `sequential \`counts()\` calls per size after ${int(cfg.warmup)} warm-up calls, in blocks of ${cfg.block} ` +
          'alternating between the sizes. One ioredis client, loopback Redis.',
      }),
    };
  } finally {
    for (const p of populations.values()) await dropPrefix(redis, p.keyPrefix).catch(() => {});
    redis.disconnect();
    await server.stop();
  }
}
