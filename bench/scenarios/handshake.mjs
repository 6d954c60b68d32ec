// Handshakes and memory per connection: a bare Socket.IO pod without auth, the same with jose's
// HS256 verify in io.use, and a Switchboard gateway, measured in turn in the same run.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { now, sleep } from '../lib/clock.mjs';
import { Histogram } from '../lib/histogram.mjs';
import { table, int, ms, ratio } from '../lib/markdown.mjs';
import { waitForQuietMachine } from '../lib/phases.mjs';
import { GC_NODE_ARGS, collect, commandCalls, commandDelta, rssBytes, waitIdle } from '../lib/pod-stats.mjs';
import { serverAvailable, startPods, stopPods } from '../lib/pods.mjs';
import { childPidsNamed, cpuTimeMs, isInterrupted, machineBusyMs } from '../lib/procs.mjs';
import { WorkerProcess } from '../lib/worker-ipc.mjs';

export const name = 'handshake';
export const description =
  'Handshakes/s and connect p50/p99 (3,000 websocket connects, 100 in flight, a fresh HS256 token per user) and RSS per ' +
  'idle connection at 10,000: bare Socket.IO + Redis adapter, bare + jose verify, Switchboard, in turn in one run.';

const CONNECTOR = fileURLToPath(new URL('../lib/connector.mjs', import.meta.url));

const SIDES = {
  bare: { label: 'bare, no auth', kind: 'baseline', env: {} },
  jose: { label: 'bare + jose in io.use', kind: 'baseline', env: { BASELINE_AUTH: 'jose' } },
  switchboard: { label: 'Switchboard', kind: 'switchboard', env: {} },
};

const DEFAULTS = {
  sides: ['bare', 'jose', 'switchboard'],
  connects: 3000,
  inFlight: 100,
  // connecting processes for the rate rounds, the connects and the in-flight bound split evenly
  clients: 2,
  rounds: 7,
  warmup: 3000,
  idle: 10_000,
  targets: { rate: 0.9, p99: 1.2, memory: 1.2 },
};

function configure(options = {}) {
  const cfg = structuredClone(DEFAULTS);
  const num = (key) => (options[key] === undefined ? undefined : Number(options[key]));
  if (options.quick) Object.assign(cfg, { connects: 1000, rounds: 1, warmup: 100, idle: 2000 });
  if (options.sides) cfg.sides = String(options.sides).split(',').filter((s) => s in SIDES);
  if (num('connects')) cfg.connects = num('connects');
  if (num('in-flight')) cfg.inFlight = num('in-flight');
  if (num('clients')) cfg.clients = Math.max(1, Math.floor(num('clients')));
  if (num('rounds')) cfg.rounds = num('rounds');
  if (num('idle') !== undefined) cfg.idle = num('idle');
  if (options.gateway) cfg.gateway = String(options.gateway);
  return cfg;
}

const runId = () => `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;

async function startSide(side, ctx, cfg, nodeArgs = []) {
  const s = SIDES[side];
  const id = runId();
  const keyPrefix = `bench.hs${side.slice(0, 2)}.${id}`;
  const jwtSecret = randomBytes(32).toString('base64url');
  const [pod] = await startPods({
    kind: s.kind,
    script: s.kind === 'switchboard' ? cfg.gateway : undefined,
    count: 1,
    redisUrl: ctx.redisUrl,
    keyPrefix,
    jwtSecret,
    env: s.env,
    nodeArgs,
  });
  let users = 0;
  return { side, pod, keyPrefix, jwtSecret, nextUsers: (n) => Array.from({ length: n }, () => `hs-${id}-u${users++}`) };
}

export async function run(ctx) {
  const cfg = configure(ctx.options);
  const available = cfg.sides.filter((side) => serverAvailable(SIDES[side].kind, SIDES[side].kind === 'switchboard' ? cfg.gateway : undefined));
  const missing = cfg.sides.filter((s) => !available.includes(s));
  for (const side of missing) ctx.log(`${SIDES[side].label}: NOT RUN (build the gateway: npm run build)`);

  const redis = new Redis(ctx.redisUrl, { lazyConnect: true });
  await redis.connect();
  const connectors = Array.from(
    { length: cfg.clients },
    (_, i) => new WorkerProcess(CONNECTOR, { label: `bench-handshake-connector-${i + 1}`, env: { ...process.env, NODE_ENV: 'production' } }),
  );
  // the memory phases use the first connector alone
  const [connector] = connectors;
  const clientCpu = () => connectors.reduce((sum, c) => sum + (cpuTimeMs(c.pid) ?? 0), 0);
  const closeAll = () => Promise.all(connectors.map((c) => c.call('close', {}, 30_000)));
  const started = {};
  const results = Object.fromEntries(available.map((side) => [side, { rounds: [], hist: new Histogram(), commands: undefined }]));
  const benchCpu = () => benchPids().reduce((sum, pid) => sum + (cpuTimeMs(pid) ?? 0), 0);
  const benchPids = () => [...Object.values(started).map((t) => t.pod.pid), ...connectors.map((c) => c.pid), process.pid, ...childPidsNamed('redis-server')];
  /** `userIds` split evenly over the connectors, their tokens minted before the clock starts. */
  const prepare = (t, userIds) =>
    Promise.all(
      connectors.map((c, i) =>
        c.call('prepare', { userIds: userIds.filter((_, k) => k % connectors.length === i), jwtSecret: t.jwtSecret }, 120_000),
      ),
    );
  /** Every connector connects its share at once, `inFlight` split over them. */
  const connectAll = async (t, timeoutMs) => {
    const inFlight = Math.max(1, Math.round(cfg.inFlight / connectors.length));
    const rs = await Promise.all(connectors.map((c) => c.call('connect', { url: t.pod.url, inFlight }, timeoutMs)));
    const hist = new Histogram();
    const failures = {};
    for (const r of rs) {
      hist.merge(Histogram.fromJSON(r.hist));
      for (const [k, n] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + n;
    }
    return { connected: rs.reduce((n, r) => n + r.connected, 0), failures, ms: Math.max(...rs.map((r) => r.ms)), hist };
  };

  try {
    // ——— handshake rate: every side up at once, measured in turn, the order alternating ———
    for (const side of available) started[side] = await startSide(side, ctx, cfg);
    for (const side of available) {
      const t = started[side];
      await prepare(t, t.nextUsers(cfg.warmup));
      await connectAll(t, 120_000);
      await closeAll();
      await waitIdle([t.pod.pid]);
    }
    for (let round = 0; round < cfg.rounds && !isInterrupted(); round++) {
      const order = round % 2 === 0 ? available : [...available].reverse();
      for (const side of order) {
        const t = started[side];
        await waitForQuietMachine(benchPids(), { thresholdPct: 15, maxMs: 5000 });
        const userIds = t.nextUsers(cfg.connects);
        await prepare(t, userIds);
        const cmdBefore = await commandCalls(redis);
        const cpuBefore = cpuTimeMs(t.pod.pid);
        const [redisPid] = childPidsNamed('redis-server');
        const otherBefore = { client: clientCpu(), redis: cpuTimeMs(redisPid), machine: machineBusyMs(), bench: benchCpu() };
        const t0 = now();
        const r = await connectAll(t, 300_000);
        const elapsed = now() - t0;
        const cpu = cpuTimeMs(t.pod.pid) - cpuBefore;
        const clientCpuMs = clientCpu() - otherBefore.client;
        const redisCpu = cpuTimeMs(redisPid) - otherBefore.redis;
        const otherCpu = machineBusyMs() - otherBefore.machine - (benchCpu() - otherBefore.bench);
        const cmdAfter = await commandCalls(redis);
        const { hist } = r;
        results[side].hist.merge(hist);
        results[side].commands ??= commandDelta(cmdBefore, cmdAfter, r.connected);
        const row = {
          connected: r.connected,
          failures: r.failures,
          perSec: (r.connected / r.ms) * 1000,
          p50: hist.percentile(50),
          p99: hist.percentile(99),
          podCpuPct: (cpu / elapsed) * 100,
          cpuMsPerHandshake: cpu / r.connected,
          clientCpuMsPerHandshake: clientCpuMs / r.connected,
          redisCpuMsPerHandshake: redisCpu / r.connected,
          otherCpuPct: Math.max(0, (otherCpu / elapsed) * 100),
        };
        results[side].rounds.push(row);
        ctx.log(
          `  round ${round + 1} ${SIDES[side].label.padEnd(22)} ${int(row.perSec)} handshakes/s, p50 ${ms(row.p50)}, p99 ${ms(row.p99)}, ` +
            `pod CPU ${Math.round(row.podCpuPct)} % (${row.cpuMsPerHandshake.toFixed(2)} ms/handshake; ` +
            `client ${row.clientCpuMsPerHandshake.toFixed(2)}, Redis ${row.redisCpuMsPerHandshake.toFixed(2)}), other processes ${Math.round(row.otherCpuPct)} %` +
            (r.connected < userIds.length ? `, FAILED ${JSON.stringify(r.failures)}` : ''),
        );
        await closeAll();
        await waitIdle([t.pod.pid]);
      }
    }
    for (const t of Object.values(started)) await stopPods([t.pod]);
    for (const k of Object.keys(started)) delete started[k];

    // ——— memory per idle connection: a fresh pod per side, RSS after a full GC at 0 and at N ———
    if (cfg.idle > 0) {
      for (const side of available) {
        if (isInterrupted()) break;
        const t = (started[side] = await startSide(side, ctx, cfg, GC_NODE_ARGS));
        await connector.call('connect', { url: t.pod.url, userIds: t.nextUsers(cfg.warmup), jwtSecret: t.jwtSecret, inFlight: cfg.inFlight }, 120_000);
        await connector.call('close', {}, 30_000);
        await waitIdle([t.pod.pid]);
        const mem0 = await collect(t.pod.pid, 1000, t.pod.child);
        const rss0 = rssBytes(t.pod.pid);
        const r = await connector.call('connect', { url: t.pod.url, userIds: t.nextUsers(cfg.idle), jwtSecret: t.jwtSecret, inFlight: cfg.inFlight }, 600_000);
        await waitIdle([t.pod.pid]);
        await sleep(1000);
        const mem1 = await collect(t.pod.pid, 1000, t.pod.child);
        const rss1 = rssBytes(t.pod.pid);
        const heapPerConnection = mem0 && mem1 ? (mem1.heapUsed - mem0.heapUsed) / r.connected : undefined;
        results[side].memory = { connected: r.connected, rss0, rss1, perConnection: (rss1 - rss0) / r.connected, heapPerConnection };
        ctx.log(
          `  ${SIDES[side].label.padEnd(22)} ${int(r.connected)} idle: RSS ${(rss0 / 2 ** 20).toFixed(1)} → ${(rss1 / 2 ** 20).toFixed(1)} MiB, ` +
            `${(results[side].memory.perConnection / 1024).toFixed(1)} KB per connection` +
            (heapPerConnection === undefined ? '' : ` (JS heap ${(heapPerConnection / 1024).toFixed(1)} KB)`),
        );
        await connector.call('close', {}, 60_000);
        await stopPods([t.pod]);
        delete started[side];
      }
    }
  } finally {
    await Promise.all(connectors.map((c) => c.close()));
    for (const t of Object.values(started)) await stopPods([t.pod]);
    await redis.quit().catch(() => redis.disconnect());
  }
  return report(cfg, results, missing);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Commands per handshake, ignoring what is not one per handshake (heartbeats, INFO). */
function commandsCell(commands) {
  const rows = (commands ?? []).filter(([, n]) => n >= 0.05);
  if (!rows.length) return '0';
  const total = rows.reduce((s, [, n]) => s + n, 0);
  return `${total.toFixed(1)}: ${rows.map(([c, n]) => `${c} ${n.toFixed(1)}`).join(', ')}`;
}

function report(cfg, results, missing) {
  const agg = (side) => {
    const r = results[side];
    if (!r?.rounds.length) return undefined;
    const rates = r.rounds.map((x) => x.perSec);
    return {
      perSec: median(rates),
      rates,
      otherPct: r.rounds.map((x) => x.otherCpuPct),
      p50: r.hist.percentile(50),
      p99: r.hist.percentile(99),
      p99s: r.rounds.map((x) => x.p99),
      cpuMs: r.rounds.reduce((a, x) => a + x.cpuMsPerHandshake, 0) / r.rounds.length,
      clientCpuMs: r.rounds.reduce((a, x) => a + x.clientCpuMsPerHandshake, 0) / r.rounds.length,
      redisCpuMs: r.rounds.reduce((a, x) => a + x.redisCpuMsPerHandshake, 0) / r.rounds.length,
      cpuPct: r.rounds.map((x) => x.podCpuPct),
      failed: r.rounds.reduce((a, x) => a + (cfg.connects - x.connected), 0),
      memory: r.memory?.perConnection,
      heap: r.memory?.heapPerConnection,
      commands: r.commands,
    };
  };
  const a = Object.fromEntries(Object.keys(SIDES).map((s) => [s, agg(s)]));
  const sb = a.switchboard;
  const ref = a.jose;
  const ratioOf = (fn) => (sb && ref && fn(sb) !== undefined && fn(ref) ? fn(sb) / fn(ref) : undefined);
  const rateRatio = ratioOf((x) => x.perSec);
  const p99Ratio = ratioOf((x) => x.p99);
  const memRatio = ratioOf((x) => x.memory);
  const verdict = (v, pass) => (v === undefined ? 'NOT RUN' : pass(v) ? 'PASS' : 'FAIL');
  const vRate = verdict(rateRatio, (v) => v >= cfg.targets.rate);
  const vP99 = verdict(p99Ratio, (v) => v <= cfg.targets.p99);
  const vMem = verdict(memRatio, (v) => v <= cfg.targets.memory);
  const cell = (side, fn) => (a[side] ? fn(a[side]) : missing.includes(side) ? 'not run' : '–');
  const list = (xs, f) => xs.map(f).join(' / ');
  const kb = (b) => (Number.isFinite(b) ? `${(b / 1024).toFixed(1)} KB` : '–');
  const row = (label, fn, r, target, v) => [label, cell('bare', fn), cell('jose', fn), cell('switchboard', fn), r === undefined ? '' : ratio(r), target, v ? `**${v}**` : ''];

  const rows = [
    row(`**Handshakes/s** (median of ${cfg.rounds} rounds; each round)`, (x) => `${int(x.perSec)} (${list(x.rates, int)})`, rateRatio, `≥ ${cfg.targets.rate}× bare + jose`, vRate),
    row('Connect p50 (all rounds)', (x) => ms(x.p50), ratioOf((x) => x.p50), '', ''),
    row('**Connect p99** (all rounds; each round)', (x) => `${ms(x.p99)} (${list(x.p99s, ms)})`, p99Ratio, `≤ ${cfg.targets.p99}× bare + jose`, vP99),
    row('Pod CPU per handshake', (x) => ms(x.cpuMs), ratioOf((x) => x.cpuMs), '', ''),
    row(`Client CPU per handshake (${cfg.clients} ${cfg.clients === 1 ? 'process' : 'processes'}, the same for every side; token minting excluded)`, (x) => ms(x.clientCpuMs), ratioOf((x) => x.clientCpuMs), '', ''),
    row('Redis CPU per handshake', (x) => ms(x.redisCpuMs), ratioOf((x) => x.redisCpuMs), '', ''),
    row('Pod CPU while connecting (% of a core, each round)', (x) => list(x.cpuPct, (v) => `${Math.round(v)} %`), undefined, '', ''),
    row('Other processes\' CPU during each round (interference)', (x) => list(x.otherPct, (v) => `${Math.round(v)} %`), undefined, '≈ 0 %', ''),
    row('Failed connects', (x) => int(x.failed), undefined, '0', ''),
    row(`**RSS per idle connection** at ${int(cfg.idle)}`, (x) => kb(x.memory), memRatio, `≤ ${cfg.targets.memory}× bare + jose`, vMem),
    row(`JS heap used per idle connection (after a full GC)`, (x) => kb(x.heap), ratioOf((x) => x.heap), '', ''),
    row('Redis commands per handshake (scripts\' inner calls included)', (x) => commandsCell(x.commands), undefined, '', ''),
  ];
  const complete = vRate !== 'NOT RUN' && vMem !== 'NOT RUN' && vP99 !== 'NOT RUN';
  const overall = !complete ? 'INCOMPLETE' : [vRate, vP99, vMem].every((v) => v === 'PASS') ? 'PASS' : 'FAIL';
  const markdown = [
    `**Workload:** one pod per side on the run's Redis (its own key prefix), ${int(cfg.connects)} websocket connects per round ` +
      `with ${cfg.inFlight} in flight from ${cfg.clients === 1 ? 'one client process' : `${cfg.clients} client processes (the connects and the in-flight bound split evenly)`}, one user and one HS256 token (minted before the clock starts) per ` +
      `connection, ${cfg.rounds} rounds with the order of the sides alternating, after ${cfg.warmup} warm-up connects per side; ` +
      `connect time = \`io()\` → \`connect\`. Memory: a fresh pod per side, RSS after a full GC with ${int(cfg.idle)} idle ` +
      'connections minus RSS after a full GC with none, per connection.',
    '',
    table(['figure', SIDES.bare.label, SIDES.jose.label, SIDES.switchboard.label, 'Switchboard / bare + jose', 'target', 'verdict'], rows),
    '',
    `**Verdict: ${overall}**`,
  ].join('\n');
  return { name, title: 'handshake — handshakes/s, connect latency, memory per connection', verdict: overall, markdown, data: { cfg, sides: a } };
}
