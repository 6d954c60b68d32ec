#!/usr/bin/env node
// Where a Switchboard handshake and an idle connection go: one gateway started with --cpu-prof,
// N websocket connects (one user and token each), then heap snapshots after a full GC at 0 and at
// `--idle` connections, and the Redis commands per handshake (INFO commandstats). Prints the top
// CPU self time by function and by package, and the heap diff by constructor.
//
//   node bench/tools/profile-handshake.mjs [--connects=3000] [--idle=10000] [--gateway=path] [--keep]
//                                          [--baseline[=jose]]   the bare server instead (to compare)
//
// Everything runs on 127.0.0.1 and is stopped at the end; profiles and snapshots go to a fresh
// temporary directory, removed unless --keep.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startRedis } from '@switchboard/testkit';
import { sleep } from '../lib/clock.mjs';
import { GC_NODE_ARGS, commandCalls, commandDelta, waitIdle } from '../lib/pod-stats.mjs';
import { ROOT, startPods, stopPods } from '../lib/pods.mjs';
import { cleanup, installExitHandlers, onCleanup } from '../lib/procs.mjs';
import { WorkerProcess } from '../lib/worker-ipc.mjs';

const opts = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? true]));
const connects = Number(opts.connects ?? 3000);
const idle = Number(opts.idle ?? 10_000);
const CONNECTOR = fileURLToPath(new URL('../lib/connector.mjs', import.meta.url));

async function snapshot(pid, dir) {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGWINCH');
  for (let i = 0; i < 600; i++) {
    await sleep(500);
    const fresh = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (fresh.length) {
      const file = join(dir, fresh[0]);
      const size = statSync(file).size;
      await sleep(1000);
      if (statSync(file).size === size && size > 0) return file;
    }
  }
  throw new Error('no heap snapshot within 5 minutes');
}

/** Self size and count by `type:name` of a heap snapshot. */
function heapByConstructor(file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((n) => f.indexOf(n));
  const out = new Map();
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    const type = types[snap.nodes[i + iType]];
    let name = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '(string)' : snap.strings[snap.nodes[i + iName]];
    if (type === 'code' || type === 'hidden') name = `(${type})`;
    if (type === 'array') name = `(array) ${name}`;
    if (type === 'closure') name = `(closure) ${name}`;
    const key = name.slice(0, 80);
    const e = out.get(key) ?? { count: 0, size: 0 };
    e.count++;
    e.size += snap.nodes[i + iSize];
    out.set(key, e);
  }
  return out;
}

/** The monotonic clock in µs: the clock of V8's CPU profiles (startTime, timeDeltas) in every process. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

/** CPU self time by function and package, of the samples within [from, to] (monotonic µs) if given. */
function cpuBreakdown(file, from = -Infinity, to = Infinity) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const self = new Map();
  const dt = prof.timeDeltas;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const ticks = new Map();
  let t = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    t += dt[i] ?? 0;
    if (t < from || t > to) continue;
    ticks.set(prof.samples[i], (ticks.get(prof.samples[i]) ?? 0) + (dt[i] ?? 0));
  }
  let total = 0;
  const byPackage = new Map();
  for (const [id, us] of ticks) {
    const n = byId.get(id);
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)' || functionName === '(program)' || functionName === '(garbage collector)') {
      self.set(functionName, (self.get(functionName) ?? 0) + us);
      if (functionName !== '(idle)') {
        total += us;
        byPackage.set(functionName, (byPackage.get(functionName) ?? 0) + us);
      }
      continue;
    }
    total += us;
    const where = url.replace(`file://${ROOT}`, '').replace(/^.*node_modules\//, 'node_modules/');
    const key = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + us);
    const pkg = where.startsWith('node_modules/')
      ? where.split('/').slice(1, where.split('/')[1].startsWith('@') ? 3 : 2).join('/')
      : where.startsWith('node:') || where === ''
        ? '(node internals, native)'
        : where.split('/').slice(0, 2).join('/');
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  return { total, self, byPackage };
}

installExitHandlers();
const dir = mkdtempSync(join(tmpdir(), 'sb-profile-'));
if (!opts.keep) onCleanup(() => rmSync(dir, { recursive: true, force: true }));
try {
  const redisServer = await startRedis({ fresh: true });
  onCleanup(() => redisServer.stop());
  const redis = new Redis(redisServer.url);
  onCleanup(() => redis.quit());
  const jwtSecret = randomBytes(32).toString('base64url');
  const baseline = opts.baseline !== undefined;
  const [pod] = await startPods({
    kind: baseline ? 'baseline' : 'switchboard',
    script: opts.gateway,
    count: 1,
    redisUrl: redisServer.url,
    keyPrefix: `bench.prof.${randomBytes(3).toString('hex')}`,
    jwtSecret,
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`, ...GC_NODE_ARGS],
    env: { BENCH_HEAP_SNAPSHOT_DIR: dir, ...(opts.baseline === 'jose' ? { BASELINE_AUTH: 'jose' } : {}) },
  });
  const connector = new WorkerProcess(CONNECTOR, { label: 'profile-connector', env: { ...process.env, NODE_ENV: 'production' } });
  onCleanup(() => connector.close());
  let u = 0;
  const users = (n) => Array.from({ length: n }, () => `prof-u${u++}`);

  const before = await commandCalls(redis);
  const connectFrom = monoUs();
  const r = await connector.call('connect', { url: pod.url, userIds: users(connects), jwtSecret, inFlight: 100 }, 300_000);
  const connectTo = monoUs();
  const after = await commandCalls(redis);
  console.log(`${r.connected} connects in ${(r.ms / 1000).toFixed(1)} s`);
  console.log('\nRedis commands per handshake (INFO commandstats delta; inner calls of scripts included):');
  for (const [cmd, n] of commandDelta(before, after, r.connected).filter(([, n]) => n >= 0.05)) console.log(`  ${cmd.padEnd(12)} ${n.toFixed(2)}`);
  const closeFrom = monoUs();
  await connector.call('close', {}, 30_000);
  await waitIdle([pod.pid]);
  const closeTo = monoUs();

  let heap0;
  let heap1;
  if (idle > 0) {
    heap0 = heapByConstructor(await snapshot(pod.pid, dir));
    const r2 = await connector.call('connect', { url: pod.url, userIds: users(idle), jwtSecret, inFlight: 100 }, 600_000);
    await waitIdle([pod.pid]);
    heap1 = heapByConstructor(await snapshot(pod.pid, dir));
    console.log(`\nheap diff, ${r2.connected} idle connections vs none (bytes per connection by constructor, top 30):`);
    const rows = [];
    for (const [k, e1] of heap1) {
      const e0 = heap0.get(k) ?? { count: 0, size: 0 };
      rows.push([k, (e1.size - e0.size) / r2.connected, (e1.count - e0.count) / r2.connected]);
    }
    rows.sort((a, b) => b[1] - a[1]);
    const total = rows.reduce((s, x) => s + x[1], 0);
    console.log(`  total: ${total.toFixed(0)} B per connection`);
    for (const [k, b, c] of rows.slice(0, 30)) console.log(`  ${b.toFixed(0).padStart(6)} B  ${c.toFixed(2).padStart(6)} objects  ${k}`);
    await connector.call('close', {}, 60_000);
  }
  await stopPods([pod]);
  await sleep(500);
  const prof = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!prof) throw new Error('no CPU profile written');
  const whole = cpuBreakdown(join(dir, prof));
  const closing = cpuBreakdown(join(dir, prof), closeFrom, closeTo);
  const { total, self, byPackage } = cpuBreakdown(join(dir, prof), connectFrom, connectTo);
  console.log(`\nbusy: ${(whole.total / 1000).toFixed(0)} ms over the whole run (start-up and shutdown included);`);
  console.log(`  connecting: ${(total / 1000).toFixed(0)} ms, ${(total / 1000 / r.connected).toFixed(3)} ms per handshake`);
  console.log(`  closing them: ${(closing.total / 1000).toFixed(0)} ms, ${(closing.total / 1000 / r.connected).toFixed(3)} ms per disconnect`);
  console.log(`\nCPU by package while connecting:`);
  for (const [k, us] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
  console.log('\nCPU self time by function while connecting (top 40):');
  for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
    if (k === '(idle)') continue;
    console.log(`  ${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
  }
  if (opts.keep) console.log(`\nprofiles and snapshots kept in ${dir}`);
} finally {
  await cleanup();
}
