// How many registry operations one Redis shard carries: the registry (presence, membership, the
// cluster counters and indexes) lives in one hash slot, `{reg}`, so on Redis Cluster every connect,
// join, leave and disconnect of the whole cluster runs on the one primary serving that slot.
//
// Drives the Registry instance API directly (the very scripts a gateway runs for each connection and
// room change, see registry-stats.mjs) on that shard, and on a standalone Redis as the reference, in
// alternating rounds: operations per second, Redis CPU per operation (INFO cpu deltas of the server,
// used_cpu_sys + used_cpu_user) and Redis memory per registered socket (INFO memory deltas).
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Registry, keys } from '@switchboard/store';
import { table, int } from '../lib/markdown.mjs';
import { clusterPrimaries, counters, diff, nodeClient, primaryForKey } from '../lib/redis-nodes.mjs';
import { cpuTimeMs, isInterrupted, machineBusyMs, childPidsNamed } from '../lib/procs.mjs';
import { waitForQuietMachine } from '../lib/phases.mjs';

export const name = 'registry-rate';
export const description =
  'Registry connect / join / leave / disconnect operations per second on the one Redis Cluster shard holding ' +
  'the `{reg}` slot vs a standalone Redis, Redis CPU per operation and Redis memory per registered socket.';

const DEFAULTS = {
  sides: ['cluster', 'standalone'],
  sockets: 5000, // per round
  rounds: 4, // per side, alternating A B B A …
  concurrency: 200, // registry calls in flight at once (one client; ioredis pipelines them)
  pods: 3,
  events: false, // lifecycle events (EVENTS_QUEUE / WEBHOOK_URLS): each change also writes the outbox
  interference: { quietPct: 15, gateMs: 3000, gateBudgetMs: 15_000, warnAbovePct: 20 },
  // The 1M-connection plan (docs/scaling.md): every connection re-established within 5 minutes (a
  // rolling restart of every pod, a load balancer failover) is 3,333 connects/s, each followed by
  // 2 room joins; with headroom, at most half of the `{reg}` shard's core: connect + 2 joins ≤ 150 µs.
  target: { stormConnectsPerSec: 1_000_000 / 300, shareOfCore: 0.5 },
};

const OPS = ['connect', 'join', 'leave', 'disconnect'];
const LABEL = { cluster: 'Cluster, `{reg}` shard', standalone: 'standalone Redis' };

/** Options: --quick --sockets=N --rounds=N --concurrency=N --events */
function configure(options = {}) {
  const cfg = structuredClone(DEFAULTS);
  const num = (key) => (options[key] === undefined ? undefined : Math.floor(Number(options[key])));
  if (options.quick) Object.assign(cfg, { sockets: 2000, rounds: 2 });
  if (num('sockets') > 0) cfg.sockets = num('sockets');
  if (num('rounds') > 0) cfg.rounds = num('rounds');
  if (num('concurrency') > 0) cfg.concurrency = num('concurrency');
  if (options.events) cfg.events = true;
  if (cfg.sockets > 200_000 || cfg.rounds > 20) throw new Error('--sockets ≤ 200000, --rounds ≤ 20');
  return cfg;
}

/** Runs `op(i)` for i in [0, n), `concurrency` at a time; every call awaited. */
async function inWaves(n, concurrency, op) {
  for (let start = 0; start < n; start += concurrency) {
    const wave = [];
    for (let i = start; i < Math.min(n, start + concurrency); i++) wave.push(op(i));
    await Promise.all(wave);
  }
}

/** Deletes every key under a prefix on one server (SCAN + UNLINK, bounded; the registry's keys share one slot). */
async function dropOnNode(node, keyPrefix) {
  let cursor = '0';
  for (let i = 0; i < 100_000; i++) {
    const [next, found] = await node.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1000);
    if (found.length) await node.unlink(...found);
    cursor = next;
    if (cursor === '0') return;
  }
}

/**
 * One round on one side: a fresh key prefix, `pods` instances with a heartbeat, then N sockets
 * connected (2 per user), each joined to 2 rooms (1 room per 10 sockets), each leaving one of them,
 * then disconnected. Every call is checked.
 */
async function round(side, cfg) {
  const keyPrefix = `bench.rr.${randomUUID().slice(0, 8)}`;
  const registry = new Registry(side.client, keyPrefix, cfg.events ? { events: { outboxMax: 1_000_000 } } : {});
  const instances = Array.from({ length: cfg.pods }, (_, i) => ({ id: `bench-pod-${i}#1`, pod: `bench-pod-${i}` }));
  for (const instance of instances) await registry.heartbeat(instance);
  const node = side.node;
  const n = cfg.sockets;
  const users = Math.max(1, Math.floor(n / 2));
  const rooms = Math.max(1, Math.floor(n / 10));
  const socket = (i) => ({ socketId: `s${i}`, userId: `u${i % users}`, guest: false });
  const roomsOf = (i) => [`public:room-${i % rooms}`, `public:room-${(i * 7 + 3) % rooms}`];
  const out = { ops: {}, memory: {} };
  const sampleNode = () => counters(node);
  const timed = async (op, count, fn) => {
    const r0 = await sampleNode();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await inWaves(count, cfg.concurrency, fn);
    const elapsedMs = performance.now() - t0;
    const c1 = process.cpuUsage(c0);
    const r1 = await sampleNode();
    const d = diff(r0, r1);
    out.ops[op] = { count, elapsedMs, redisCpuMs: d.cpuMs, clientCpuMs: (c1.user + c1.system) / 1000, usedMemoryDelta: d.usedMemory };
    return d;
  };
  try {
    const mem0 = (await sampleNode()).usedMemory;
    await timed('connect', n, async (i) => {
      const r = await registry.connect({ ...socket(i), instance: instances[i % cfg.pods], maxConnections: 1000 });
      if (!r.accepted) throw new Error(`connect refused: ${r.reason}`);
    });
    const memConnected = (await sampleNode()).usedMemory;
    await timed('join', 2 * n, async (k) => {
      const i = k >> 1;
      await registry.join(socket(i), roomsOf(i)[k & 1]);
    });
    const memJoined = (await sampleNode()).usedMemory;
    await timed('leave', n, (i) => registry.leave(socket(i), roomsOf(i)[1]));
    await timed('disconnect', n, async (i) => {
      const left = await registry.disconnect(instances[i % cfg.pods], socket(i), [roomsOf(i)[0]]);
      if (!left) throw new Error(`socket s${i} was not registered at its disconnect`);
    });
    out.memory = { perSocketConnected: (memConnected - mem0) / n, perSocketWith2Rooms: (memJoined - mem0) / n };
    return out;
  } finally {
    await dropOnNode(node, keyPrefix).catch(() => {});
  }
}

export async function run(ctx) {
  const cfg = configure(ctx.options);
  const sides = {};
  const live = [];
  const closers = [];
  const results = Object.fromEntries(cfg.sides.map((s) => [s, []]));
  const others = [];
  try {
    for (const s of cfg.sides) {
      try {
        if (s === 'cluster') {
          const cluster = await ctx.redisCluster();
          const client = cluster.client();
          closers.push(() => client.disconnect());
          const primaries = await clusterPrimaries(cluster.env.REDIS_CLUSTER_NODES.split(',')[0]);
          const primary = await primaryForKey(primaries, keys('bench.rr').instances);
          const node = nodeClient(primary.address, 'bench:registry-rate-info');
          closers.push(() => node.disconnect());
          sides[s] = { status: 'ok', client, node, address: primary.address, shards: primaries.length };
        } else {
          const client = new Redis(ctx.redisUrl, { connectionName: 'bench:registry-rate' });
          client.on('error', () => {});
          closers.push(() => client.disconnect());
          const url = new URL(ctx.redisUrl);
          const node = nodeClient(`${url.hostname}:${url.port}`, 'bench:registry-rate-info');
          closers.push(() => node.disconnect());
          sides[s] = { status: 'ok', client, node, address: `${url.hostname}:${url.port}` };
        }
        live.push(s);
      } catch (err) {
        if (isInterrupted()) throw err;
        sides[s] = { status: 'error', reason: err?.message ?? String(err) };
        ctx.log(`  ${s} side FAILED: ${sides[s].reason}`);
      }
    }
    // warm-up: scripts loaded, JIT, connections
    for (const s of live) await round(sides[s], { ...cfg, sockets: Math.min(cfg.sockets, 1000) });
    let gateLeftMs = cfg.interference.gateBudgetMs;
    for (let r = 0; r < cfg.rounds; r++) {
      for (const s of r % 2 === 0 ? [...live] : [...live].reverse()) {
        const benchPids = [process.pid, ...childPidsNamed('redis-server')];
        if (gateLeftMs > 0) gateLeftMs -= (await waitForQuietMachine(benchPids, { thresholdPct: cfg.interference.quietPct, maxMs: Math.min(cfg.interference.gateMs, gateLeftMs) })) ?? 0;
        const b0 = benchPids.map(cpuTimeMs).reduce((a, b) => a + b, 0);
        const m0 = machineBusyMs();
        const t0 = performance.now();
        const res = await round(sides[s], cfg);
        const elapsed = performance.now() - t0;
        const other = m0 === undefined ? undefined : Math.max(0, machineBusyMs() - m0 - (benchPids.map(cpuTimeMs).reduce((a, b) => a + b, 0) - b0)) / elapsed * 100;
        res.otherCpuPct = other;
        others.push(other ?? 0);
        results[s].push(res);
        ctx.log(
          `  ${s.padEnd(10)} round ${r + 1}: ` +
            OPS.map((op) => `${op} ${int((res.ops[op].count / res.ops[op].elapsedMs) * 1000)}/s (${((res.ops[op].redisCpuMs / res.ops[op].count) * 1000).toFixed(0)} µs Redis)`).join(', ') +
            `; ${int(res.memory.perSocketWith2Rooms)} B/socket with 2 rooms; other CPU ${Math.round(other ?? 0)} %`,
        );
      }
    }
  } finally {
    for (const fn of closers.reverse()) await Promise.resolve().then(fn).catch(() => {});
  }
  return report(cfg, sides, results, others);
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : undefined;
};
const rangeCell = (values, fmt) => (values.length ? `${fmt(median(values))} (${fmt(Math.min(...values))} – ${fmt(Math.max(...values))})` : '–');
const us = (v) => `${v < 10 ? v.toFixed(1) : Math.round(v)} µs`;

function figures(list) {
  const f = {};
  for (const op of OPS) {
    f[op] = {
      opsPerSec: list.map((r) => (r.ops[op].count / r.ops[op].elapsedMs) * 1000),
      redisUsPerOp: list.map((r) => (r.ops[op].redisCpuMs / r.ops[op].count) * 1000),
      clientUsPerOp: list.map((r) => (r.ops[op].clientCpuMs / r.ops[op].count) * 1000),
      redisBusyPct: list.map((r) => (r.ops[op].redisCpuMs / r.ops[op].elapsedMs) * 100),
    };
  }
  f.memory = {
    perSocketConnected: list.map((r) => r.memory.perSocketConnected),
    perSocketWith2Rooms: list.map((r) => r.memory.perSocketWith2Rooms),
  };
  return f;
}

function report(cfg, sides, results, others) {
  const ok = (s) => sides[s]?.status === 'ok' && results[s].length > 0;
  const F = Object.fromEntries(cfg.sides.filter(ok).map((s) => [s, figures(results[s])]));
  const cell = (s, fn) => (ok(s) ? fn(F[s]) : sides[s]?.status === 'error' ? 'error' : 'not run');
  const rows = [];
  for (const op of OPS) {
    rows.push([`**${op}**: operations/s`, ...cfg.sides.map((s) => cell(s, (f) => rangeCell(f[op].opsPerSec, int)))]);
    rows.push([`${op}: Redis CPU per operation`, ...cfg.sides.map((s) => cell(s, (f) => rangeCell(f[op].redisUsPerOp, us)))]);
    rows.push([`${op}: Redis busy (% of a core) / client CPU per operation`, ...cfg.sides.map((s) => cell(s, (f) => `${Math.round(median(f[op].redisBusyPct))} % / ${us(median(f[op].clientUsPerOp))}`))]);
  }
  rows.push(['**Redis memory per registered socket** (1 of a user\'s 2 sockets, no room)', ...cfg.sides.map((s) => cell(s, (f) => rangeCell(f.memory.perSocketConnected, (v) => `${int(v)} B`)))]);
  rows.push(['Redis memory per registered socket in 2 rooms', ...cfg.sides.map((s) => cell(s, (f) => rangeCell(f.memory.perSocketWith2Rooms, (v) => `${int(v)} B`)))]);
  // the capacity of one shard for this mix, if Redis were the only limit: 1 core / CPU per op
  const mix = (f) => {
    const perConnection = median(f.connect.redisUsPerOp) + 2 * median(f.join.redisUsPerOp) + median(f.leave.redisUsPerOp) + median(f.disconnect.redisUsPerOp);
    return perConnection;
  };
  rows.push([
    'Redis CPU for one connection\'s life (connect + 2 joins + 1 leave + disconnect)',
    ...cfg.sides.map((s) => cell(s, (f) => us(mix(f)))),
  ]);
  rows.push([
    '… connection lives per second one Redis core carries (10⁶ µs / that)',
    ...cfg.sides.map((s) => cell(s, (f) => int(1e6 / mix(f)))),
  ]);
  const budgetUs = (1e6 * cfg.target.shareOfCore) / cfg.target.stormConnectsPerSec;
  const storm = (f) => median(f.connect.redisUsPerOp) + 2 * median(f.join.redisUsPerOp);
  rows.push([
    `**Redis CPU per connect + 2 joins** (target on the \`{reg}\` shard ≤ ${Math.round(budgetUs)} µs)`,
    ...cfg.sides.map((s) => cell(s, (f) => us(storm(f)))),
  ]);
  const otherMax = others.length ? Math.max(...others) : 0;
  const disturbed = otherMax > cfg.interference.warnAbovePct;
  const verdict = !ok('cluster') ? 'INCOMPLETE' : storm(F.cluster) <= budgetUs ? 'PASS' : 'FAIL';
  const lines = [
    `**Workload:** per round a fresh key prefix, ${cfg.pods} pods with a heartbeat, ${int(cfg.sockets)} sockets registered with ` +
      `\`Registry.connect\` (2 per user, round-robin over the pods), each joined to 2 rooms (1 room per 10 sockets), each ` +
      `leaving one of them, then disconnected with \`Registry.disconnect\`: the scripts a gateway runs. ${cfg.concurrency} calls in ` +
      `flight at once on one ioredis client, ${cfg.rounds} rounds per side alternating, after a warm-up round. Lifecycle events ` +
      `${cfg.events ? 'on (each change also appends to the outbox)' : 'off (the default)'}. *Cluster*: the primary serving ` +
      `\`{reg}\` (${sides.cluster?.address ?? '–'}) of a 3-primary, 3-replica Redis Cluster, through an ioredis \`Cluster\` ` +
      `client; *standalone*: the run's Redis. Redis CPU and memory are INFO deltas of that one server. Median (min – max) over the rounds.`,
    '',
  ];
  for (const s of cfg.sides) if (sides[s]?.status === 'error') lines.push(`> **${LABEL[s]} side failed:** ${sides[s].reason}`, '');
  if (disturbed) lines.push(`> **Warning:** other processes used up to ${Math.round(otherMax)} % of a core during a round: figures disturbed.`, '');
  lines.push(table(['Metric', ...cfg.sides.map((s) => LABEL[s])], rows), '');
  lines.push(
    `**Verdict: ${verdict}${disturbed ? ' — UNRELIABLE, disturbed by other processes' : ''}** (target: the \`{reg}\` shard ` +
      `re-registers 1,000,000 connections within 5 minutes, ${int(cfg.target.stormConnectsPerSec)} connects/s with 2 joins each, ` +
      `on at most ${cfg.target.shareOfCore * 100} % of its core. Operations/s are those of one client process on this machine, ` +
      'which shares its 2 cores with Redis; Redis CPU per operation is what bounds one shard)',
  );
  return {
    name,
    title: 'Registry operation rate on one shard (`{reg}`), Redis CPU per operation, memory per socket',
    verdict,
    reliable: !disturbed,
    markdown: lines.join('\n').trimEnd(),
    data: { config: cfg, rounds: results, figures: F, otherCpuPct: others },
  };
}
