// Classic vs sharded pub/sub on Redis Cluster (SPEC §8 PUBSUB_MODE): 4 gateway pods, 400 rooms whose
// members all sit on one pod each, every room published to in turn at a fixed rate. What each pod's
// adapter subscriber receives per published message (classic: every pod receives every broadcast;
// sharded: a pod receives only the broadcasts of the rooms it holds), and what that costs the pods and
// Redis, side by side in one run.
import { randomBytes } from 'node:crypto';
import { now } from '../lib/clock.mjs';
import { table, int, ms, pct, ratio } from '../lib/markdown.mjs';
import { measurePhase, summarize, waitForQuiet, waitForQuietMachine } from '../lib/phases.mjs';
import { serverAvailable, serverScript, startPods, stopPods } from '../lib/pods.mjs';
import { childPidsNamed, isInterrupted } from '../lib/procs.mjs';
import { ReceiverPool } from '../lib/receiver-pool.mjs';
import { busCounters, clusterPrimaries, counters, diff, nodeClient, sum } from '../lib/redis-nodes.mjs';
import { RoomsPublisher } from '../lib/rooms-publisher.mjs';

export const name = 'pubsub';
export const description =
  'Classic vs sharded pub/sub on Redis Cluster: 4 pods, 400 rooms each held by one pod, a fixed publish rate; ' +
  'pub/sub messages each pod receives per message published to its rooms (classic ≈ 4, sharded ≈ 1), pod and ' +
  'Redis CPU per message, deliveries/s, p99.';

const DEFAULTS = {
  sides: ['classic', 'sharded'],
  gateway: undefined,
  pods: 4,
  rooms: 400,
  membersPerRoom: 2,
  rate: 400, // msg/s in all, round-robin over the rooms: 1 msg/s per room
  padBytes: 100,
  batchSize: 50,
  connectTimeoutMs: 10_000,
  warmup: { rate: 100, durationMs: 1500, drainMs: 1500 },
  // per side, as `segments` interleaved segments (A B B A …)
  fixed: { durationMs: 12_000, segments: 4, drainMs: 2000 },
  idleMs: 3000, // Redis measured with nothing published, before the segments
  interference: { quietPct: 15, gateMs: 4000, gateBudgetMs: 20_000, retryAbovePct: 25, perPhase: 2, retries: 4, warnAbovePct: 20 },
  // sharded: each pod receives 1 ± this per message published to its rooms
  target: { sharded: 1, tolerance: 0.1 },
};

const LABEL = { classic: 'classic', sharded: 'sharded' };
const PREFIX_TAG = { classic: 'pscls', sharded: 'psshd' };

/** Options: --quick --rate=N --rooms=N --members=N --segments=N --duration-ms=N (per side) --gateway=path */
function configure(options = {}) {
  const cfg = structuredClone(DEFAULTS);
  const num = (key) => (options[key] === undefined ? undefined : Math.floor(Number(options[key])));
  if (options.quick) Object.assign(cfg.fixed, { durationMs: 6000, segments: 2 });
  if (typeof options.gateway === 'string') cfg.gateway = options.gateway;
  if (num('rate') > 0) cfg.rate = num('rate');
  if (num('rooms') > 0) cfg.rooms = num('rooms');
  if (num('members') > 0) cfg.membersPerRoom = num('members');
  if (num('segments') > 0) cfg.fixed.segments = num('segments');
  if (num('duration-ms') > 0) cfg.fixed.durationMs = num('duration-ms');
  if (cfg.rooms % cfg.pods !== 0) throw new Error(`--rooms must be a multiple of ${cfg.pods}`);
  if (cfg.rate > 5000 || cfg.rooms > 4000 || cfg.membersPerRoom > 20) throw new Error('--rate ≤ 5000, --rooms ≤ 4000, --members ≤ 20');
  return cfg;
}

/** `switchboard_pubsub_messages_received_total` of one pod, from its ops port. */
async function received(pod) {
  const res = await fetch(`http://127.0.0.1:${pod.opsPort}/metrics`, { signal: AbortSignal.timeout(3000) });
  const text = await res.text();
  const m = /^switchboard_pubsub_messages_received_total(?:\{[^}]*\})?\s+(\S+)/m.exec(text);
  if (!m) throw new Error(`${pod.id} exports no switchboard_pubsub_messages_received_total`);
  return Number(m[1]);
}

async function startSide(side, { cfg, cluster, ctx }) {
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const keyPrefix = `bench.${PREFIX_TAG[side]}.${runId}`;
  const jwtSecret = randomBytes(32).toString('base64url');
  const closers = [];
  const close = async () => {
    for (const fn of closers.reverse()) await Promise.resolve().then(fn).catch(() => {});
    closers.length = 0;
  };
  try {
    const pods = await startPods({
      kind: 'switchboard',
      script: cfg.gateway,
      count: cfg.pods,
      redisEnv: { ...cluster.env, PUBSUB_MODE: side },
      env: { MAX_ROOMS_PER_SOCKET: '10000' },
      keyPrefix,
      jwtSecret,
    });
    closers.push(() => stopPods(pods));
    // room j is held by pod j mod pods: its members and its publisher connect there
    const roomsByPod = pods.map((_, p) => Array.from({ length: cfg.rooms / cfg.pods }, (_, k) => `public:r${k * cfg.pods + p}`));
    const pool = new ReceiverPool(cfg.pods, `bench-${side}`);
    closers.push(() => pool.close());
    const assignments = pods.map((pod, p) => {
      const rooms = roomsByPod[p].flatMap((room) => Array.from({ length: cfg.membersPerRoom }, () => room));
      return { url: pod.url, rooms, userIds: rooms.map((_, i) => `bench-${runId}-p${p}-u${i}`) };
    });
    const receivers = assignments.reduce((s, a) => s + a.userIds.length, 0);
    const connect = await pool.connect(assignments, { jwtSecret, room: undefined, batchSize: cfg.batchSize, timeoutMs: cfg.connectTimeoutMs });
    if (connect.joined < receivers) throw new Error(`only ${connect.joined}/${receivers} receivers joined: ${JSON.stringify(connect.failures)}`);
    const publisher = await RoomsPublisher.connect({
      urls: pods.map((p) => p.url),
      roomsByPod,
      jwtSecret,
      userIdPrefix: `bench-${runId}-publisher`,
      padBytes: cfg.padBytes,
      timeoutMs: cfg.connectTimeoutMs,
    });
    closers.push(() => publisher.close());
    ctx.log(`  ${LABEL[side]}: ${pods.length} pods, ${int(connect.joined)} receivers in ${int(cfg.rooms)} rooms joined in ${(connect.ms / 1000).toFixed(1)} s, key prefix ${keyPrefix}`);
    const podPids = pods.map((p) => p.pid);
    return {
      side,
      keyPrefix,
      pods,
      receivers,
      connect,
      env: { pool, publisher, podPids, benchPids: [...podPids, ...pool.pids, process.pid, ...childPidsNamed('redis-server')] },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

export async function run(ctx) {
  const cfg = configure(ctx.options);
  const sides = {};
  const live = [];
  const topo = {};
  const notes = [];
  if (!serverAvailable('switchboard', cfg.gateway)) {
    for (const side of cfg.sides) sides[side] = { status: 'missing', reason: `${serverScript('switchboard', cfg.gateway)} does not exist (build the gateway: npm run build)` };
    return report(cfg, sides, notes);
  }
  const cluster = await ctx.redisCluster();
  const primaries = await clusterPrimaries(cluster.env.REDIS_CLUSTER_NODES.split(',')[0]);
  const nodeClients = cluster.processes.map((p) => ({ address: p.address, primary: primaries.some((q) => q.address === p.address), client: nodeClient(p.address, 'bench:pubsub-info') }));
  const sample = async () => Promise.all(nodeClients.map(async (n) => ({ ...(await counters(n.client)), ...(await busCounters(n.client)) })));
  const retriesLeft = Object.fromEntries(cfg.sides.map((s) => [s, cfg.interference.retries]));
  let gateLeftMs = cfg.interference.gateBudgetMs;

  /** One measured phase of a side, with its pub/sub counters and Redis counters; re-measured when disturbed. */
  const measure = async (side, spec, what) => {
    const t = topo[side];
    for (let attempt = 0; ; attempt++) {
      if (gateLeftMs > 0) {
        gateLeftMs -= (await waitForQuietMachine(t.env.benchPids, { thresholdPct: cfg.interference.quietPct, maxMs: Math.min(cfg.interference.gateMs, gateLeftMs) })) ?? 0;
      }
      const recv0 = await Promise.all(t.pods.map(received));
      const redis0 = await sample();
      const r0 = now();
      const raw = await measurePhase(t.env, { ...spec, deliveriesPerMessage: cfg.membersPerRoom });
      const redis1 = await sample();
      raw.redisWindowMs = now() - r0;
      const recv1 = await Promise.all(t.pods.map(received));
      raw.received = recv1.map((v, i) => v - recv0[i]);
      raw.redis = redis1.map((v, i) => diff(redis0[i], v));
      const otherPct = raw.otherCpuMs === undefined ? 0 : (raw.otherCpuMs / raw.elapsedMs) * 100;
      if (otherPct <= cfg.interference.retryAbovePct || retriesLeft[side] <= 0 || attempt >= cfg.interference.perPhase) return raw;
      retriesLeft[side]--;
      notes.push(`${LABEL[side]} ${what} measured again: other processes used ${Math.round(otherPct)} % of a core during it`);
      ctx.log(`  ${LABEL[side]} ${what}: disturbed (other processes ${Math.round(otherPct)} % of a core), measuring again`);
      await waitForQuiet(t.env.pool);
    }
  };

  try {
    for (const side of cfg.sides) {
      try {
        topo[side] = await startSide(side, { cfg, cluster, ctx });
        sides[side] = { status: 'ok' };
        live.push(side);
      } catch (err) {
        if (isInterrupted()) throw err;
        sides[side] = { status: 'error', reason: err?.message ?? String(err) };
        ctx.log(`  ${LABEL[side]} side FAILED: ${sides[side].reason}`);
      }
    }
    const allBenchPids = [...new Set(Object.values(topo).flatMap((t) => t.env.benchPids))];
    for (const t of Object.values(topo)) t.env.benchPids = allBenchPids;

    for (const side of [...live]) {
      const warm = summarize([await measurePhase(topo[side].env, { ...cfg.warmup, deliveriesPerMessage: cfg.membersPerRoom })]);
      if (warm.deliveries === 0) {
        sides[side] = { status: 'error', reason: `warm-up: nothing delivered (acks ${warm.acked}, refused ${JSON.stringify(warm.nacks)})` };
        live.splice(live.indexOf(side), 1);
      }
    }
    // What Redis spends with nothing published (cluster cron and gossip, the pods' heartbeats), so
    // that the per-message figures can be shown without it.
    const idle0 = await sample();
    const idleT0 = now();
    await new Promise((resolve) => setTimeout(resolve, cfg.idleMs));
    const idleNodes = (await sample()).map((v, i) => diff(idle0[i], v));
    const idleMs = now() - idleT0;
    const idleCpuPerSec = (sum(idleNodes).cpuMs / idleMs) * 1000;
    ctx.log(`  Redis idle (every node): ${Math.round(idleCpuPerSec / 10)} % of a core`);
    const segmentMs = cfg.fixed.durationMs / cfg.fixed.segments;
    ctx.log(`fixed ${cfg.rate} msg/s over ${cfg.rooms} rooms: ${cfg.fixed.segments} × ${segmentMs / 1000} s per side, interleaved`);
    const raws = Object.fromEntries(live.map((s) => [s, []]));
    for (let round = 0; round < cfg.fixed.segments; round++) {
      for (const side of round % 2 === 0 ? [...live] : [...live].reverse()) {
        const raw = await measure(side, { rate: cfg.rate, durationMs: segmentMs, drainMs: cfg.fixed.drainMs }, `segment ${round + 1}`);
        raws[side].push(raw);
        const perPod = raw.received.map((r, i) => r / raw.perPod[i]);
        ctx.log(
          `  ${LABEL[side].padEnd(8)} segment ${round + 1}: received per message of the pod's rooms ${perPod.map((v) => v.toFixed(2)).join(' / ')}, ` +
            `delivered ${int(raw.deliveries)} of ${int(raw.expected)}`,
        );
      }
    }
    for (const side of live) {
      const list = raws[side];
      const fixed = summarize(list);
      const receivedPerPod = list[0].received.map((_, i) => list.reduce((s, r) => s + r.received[i], 0));
      const sentPerPod = list[0].perPod.map((_, i) => list.reduce((s, r) => s + r.perPod[i], 0));
      const perNode = nodeClients.map((n, i) => ({ address: n.address, primary: n.primary, ...sum(list.map((r) => r.redis[i])) }));
      const redisAll = sum(perNode.map(({ address: _a, primary: _p, ...d }) => d));
      const segRatios = list.map((r) => r.received.map((v, i) => v / r.perPod[i]));
      sides[side] = {
        ...sides[side],
        fixed,
        receivedPerPod,
        sentPerPod,
        perPodRatio: receivedPerPod.map((v, i) => v / sentPerPod[i]),
        segmentRatioRange: [Math.min(...segRatios.flat()), Math.max(...segRatios.flat())],
        totalPerMessage: receivedPerPod.reduce((a, b) => a + b, 0) / fixed.sent,
        redis: perNode,
        redisAll,
        redisWindowMs: list.reduce((a, r) => a + r.redisWindowMs, 0),
        idleCpuPerSec,
        keyPrefix: topo[side].keyPrefix,
        connect: topo[side].connect,
        receivers: topo[side].receivers,
      };
    }
  } finally {
    for (const t of Object.values(topo)) await t.close();
    for (const n of nodeClients) n.client.disconnect();
  }
  return report(cfg, sides, notes);
}

// ——— report ———

function report(cfg, sides, notes) {
  const ok = (s) => s?.status === 'ok';
  const c = sides.classic;
  const s = sides.sharded;
  const cell = (x, fn) => (ok(x) ? fn(x) : x?.status === 'missing' ? 'not run' : x?.status === 'error' ? 'error' : '–');
  const both = ok(c) && ok(s);
  const r = (fn) => (both ? fn(s) / fn(c) : undefined);
  const perPodCell = (x) => `${x.perPodRatio.map((v) => v.toFixed(2)).join(' / ')}`;
  const range = (x) => `${x.segmentRatioRange[0].toFixed(2)} – ${x.segmentRatioRange[1].toFixed(2)}`;
  const primaries = (x) => x.redis.filter((n) => n.primary);
  const usPerMsg = (x, key) => (x.redisAll[key] / x.fixed.sent) * 1000; // µs of Redis CPU per published message
  const bytesPerMsg = (x) => x.redisAll.netOutBytes / x.fixed.sent;
  // less what Redis spends idle over the same time
  const netUsPerMsg = (x) => ((x.redisAll.cpuMs - (x.idleCpuPerSec * x.redisWindowMs) / 1000) / x.fixed.sent) * 1000;
  const us = (v) => (Number.isFinite(v) ? `${v < 10 ? v.toFixed(1) : Math.round(v)} µs` : '–');
  const cpuCell = (v) => (Number.isFinite(v) ? `${Math.round(v)} %` : '–');

  const shardedOk =
    ok(s) && s.perPodRatio.every((v) => Math.abs(v - cfg.target.sharded) <= cfg.target.tolerance);
  const verdictShard = ok(s) ? (shardedOk ? 'PASS' : 'FAIL') : 'NOT RUN';
  const rows = [
    [
      '**Pub/sub messages each pod received per message published to its rooms** (pods A / B / C / D)',
      cell(c, perPodCell),
      cell(s, perPodCell),
      ratio(r((x) => x.perPodRatio.reduce((a, b) => a + b, 0))),
      `sharded ${cfg.target.sharded} ± ${cfg.target.tolerance}`,
      `**${verdictShard}**`,
    ],
    ['… range over segments and pods', cell(c, range), cell(s, range), '', '', ''],
    ['Pub/sub messages received by all pods per published message', cell(c, (x) => x.totalPerMessage.toFixed(2)), cell(s, (x) => x.totalPerMessage.toFixed(2)), ratio(r((x) => x.totalPerMessage)), '', ''],
    ['Delivered deliveries/s (offered)', cell(c, (x) => `${int(x.fixed.deliveredPerSec)} (${int(x.fixed.offeredPerSec)})`), cell(s, (x) => `${int(x.fixed.deliveredPerSec)} (${int(x.fixed.offeredPerSec)})`), ratio(r((x) => x.fixed.deliveredPerSec)), '', ''],
    ['Delivery latency p50 / p99 / max', cell(c, (x) => `${ms(x.fixed.latency.p50)} / ${ms(x.fixed.latency.p99)} / ${ms(x.fixed.latency.max)}`), cell(s, (x) => `${ms(x.fixed.latency.p50)} / ${ms(x.fixed.latency.p99)} / ${ms(x.fixed.latency.max)}`), ratio(r((x) => x.fixed.latency.p99)), '', ''],
    ['Loss (missing of expected)', cell(c, (x) => `${pct(x.fixed.loss)} (${int(x.fixed.missing)} of ${int(x.fixed.expected)})`), cell(s, (x) => `${pct(x.fixed.loss)} (${int(x.fixed.missing)} of ${int(x.fixed.expected)})`), '', '0 %', ''],
    ['Pods CPU (sum of 4, % of a core)', cell(c, (x) => cpuCell(x.fixed.podCpuPct)), cell(s, (x) => cpuCell(x.fixed.podCpuPct)), ratio(r((x) => x.fixed.podCpuPct)), '', ''],
    ['**Pods CPU per delivered message**', cell(c, (x) => us(x.fixed.podCpuMsPer1kDeliveries)), cell(s, (x) => us(x.fixed.podCpuMsPer1kDeliveries)), ratio(r((x) => x.fixed.podCpuMsPer1kDeliveries)), '', ''],
    [
      'Redis CPU (all 6 nodes) per published message: measured / less idle (the whole publish path: budget, history, pub/sub)',
      cell(c, (x) => `${us(usPerMsg(x, 'cpuMs'))} / ${us(netUsPerMsg(x))}`),
      cell(s, (x) => `${us(usPerMsg(x, 'cpuMs'))} / ${us(netUsPerMsg(x))}`),
      ratio(r(netUsPerMsg)),
      '',
      '',
    ],
    ['Redis idle CPU (all nodes, % of a core)', cell(c, (x) => cpuCell(x.idleCpuPerSec / 10)), cell(s, (x) => cpuCell(x.idleCpuPerSec / 10)), '', '', ''],
    [
      'Redis CPU per published message, each primary',
      cell(c, (x) => primaries(x).map((n) => us((n.cpuMs / x.fixed.sent) * 1000)).join(' / ')),
      cell(s, (x) => primaries(x).map((n) => us((n.cpuMs / x.fixed.sent) * 1000)).join(' / ')),
      '',
      '',
      '',
    ],
    ['Redis network out (all nodes, to clients) per published message', cell(c, (x) => `${int(bytesPerMsg(x))} B`), cell(s, (x) => `${int(bytesPerMsg(x))} B`), ratio(r(bytesPerMsg)), '', ''],
    [
      'Cluster bus: PUBLISH / SPUBLISH forwarded per published message (all nodes)',
      cell(c, (x) => `${(x.redisAll.busPublishSent / x.fixed.sent).toFixed(2)} / ${(x.redisAll.busPublishShardSent / x.fixed.sent).toFixed(2)}`),
      cell(s, (x) => `${(x.redisAll.busPublishSent / x.fixed.sent).toFixed(2)} / ${(x.redisAll.busPublishShardSent / x.fixed.sent).toFixed(2)}`),
      '',
      '',
      '',
    ],
    ['Other processes\' CPU (interference, average of the segments)', cell(c, (x) => cpuCell(maxOther(x))), cell(s, (x) => cpuCell(maxOther(x))), '', '≈ 0 %', ''],
    ['Receivers joined (connect + join time)', cell(c, (x) => `${int(x.connect.joined)} (${(x.connect.ms / 1000).toFixed(1)} s)`), cell(s, (x) => `${int(x.connect.joined)} (${(x.connect.ms / 1000).toFixed(1)} s)`), '', '', ''],
  ];
  const disturbed = [c, s].some((x) => ok(x) && maxOther(x) > cfg.interference.warnAbovePct);
  const overall = both ? verdictShard : 'INCOMPLETE';
  const lines = [
    `**Workload:** Redis Cluster (3 primaries, 3 replicas, local processes), ${cfg.pods} gateway pods per side ` +
      `(\`PUBSUB_MODE=classic\` / \`sharded\`, a fresh key prefix each, both sides up at once); ${int(cfg.rooms)} rooms ` +
      `\`public:r<j>\`, room j held by pod j mod ${cfg.pods}: its ${cfg.membersPerRoom} receivers (unique users, one receiver ` +
      `process per pod) and the publishing socket of that pod are its only members. ${int(cfg.rate)} msg/s in all, ` +
      `round-robin over the rooms (${(cfg.rate / cfg.rooms).toFixed(2)} msg/s per room, ${int(cfg.rate * cfg.membersPerRoom)} ` +
      `deliveries/s offered), ${cfg.fixed.durationMs / 1000} s per side as ${cfg.fixed.segments} segments interleaved A B B A. ` +
      `Pub/sub counts are the deltas of each pod's \`switchboard_pubsub_messages_received_total\` (what its adapter ` +
      `subscriber received: every pod's broadcasts, its own included); Redis figures are INFO cpu / stats and CLUSTER INFO ` +
      'deltas of every node.',
    '',
  ];
  for (const [side, x] of Object.entries(sides)) {
    if (x.status === 'missing') lines.push(`> **${LABEL[side]} side not run:** ${x.reason}.`, '');
    if (x.status === 'error') lines.push(`> **${LABEL[side]} side failed:** ${String(x.reason).split('\n')[0]}`, '');
  }
  if (disturbed) lines.push('> **Warning:** other processes used more than 20 % of a core during a segment: figures disturbed; rerun on a quiet machine.', '');
  lines.push(table(['Metric', 'classic', 'sharded', 'sharded / classic', 'target', 'result'], rows), '');
  lines.push(
    `**Verdict: ${overall}${disturbed ? ' — UNRELIABLE, disturbed by other processes' : ''}** (target: with sharded pub/sub each ` +
      `pod receives ${cfg.target.sharded} ± ${cfg.target.tolerance} pub/sub messages per message published to a room it holds; ` +
      `classic is expected near ${cfg.pods}, one per pod)`,
  );
  for (const n of notes) lines.push(`- ${n}`);
  return {
    name,
    title: 'Pub/sub on Redis Cluster: classic vs sharded, 4 pods, 400 rooms',
    verdict: overall,
    reliable: !disturbed,
    markdown: lines.join('\n').trimEnd(),
    data: {
      config: cfg,
      sides: Object.fromEntries(
        Object.entries(sides).map(([k, x]) => [k, ok(x) ? { ...x, fixed: { ...x.fixed, hist: undefined } } : x]),
      ),
    },
  };
}

function maxOther(x) {
  return x.fixed.otherCpuPct ?? 0;
}
