// Redis Cluster vs one standalone Redis, each with its default pub/sub (sharded on Cluster, classic on
// standalone), side by side in one run: room fan-out (the fanout scenario's phases, shorter) and
// notification jobs through the dispatcher (the notifications scenario's rounds, Switchboard only).
import { randomBytes } from 'node:crypto';
import { loadRedisConfig } from '@switchboard/config';
import { now } from '../lib/clock.mjs';
import { table, int, ms, ratio } from '../lib/markdown.mjs';
import { childPidsNamed, isInterrupted } from '../lib/procs.mjs';
import { compare, configure as configureFanout } from './fanout.mjs';
import { configure as configureNotifications, measurer, startSwitchboard, totals } from './notifications.mjs';
import { dropPrefix } from './registry-stats.mjs';
import { Redis } from 'ioredis';

export const name = 'topologies';
export const description =
  'Redis Cluster (sharded pub/sub) vs standalone Redis (classic), same run: fan-out saturation deliveries/s over 2 pods ' +
  '(target: Cluster ≥ 0.9× standalone) and dispatcher notification jobs/s, end to end included.';

const LABEL = { standalone: 'standalone', cluster: 'Cluster' };

/** Options: those of fanout for the fan-out part (--quick, --full, --steps …), --jobs=N (notifications per mode and side) */
export async function run(ctx) {
  const started = now();
  const cluster = await ctx.redisCluster();
  const clusterPids = cluster.processes.map((p) => p.pid);

  // ——— 1. fan-out ———
  const fcfg = configureFanout(ctx.options, { short: true });
  if (!ctx.options.sides) fcfg.sides = ['standalone', 'cluster'];
  fcfg.targets = { saturation: 0.9, p99: undefined };
  const fan = await compare(
    ctx,
    fcfg,
    {
      reference: 'standalone',
      subject: 'cluster',
      redisText: 'the run\'s standalone Redis (classic pub/sub) vs a Redis Cluster of 3 primaries and 3 replicas (sharded pub/sub, its default)',
      specs: {
        standalone: { label: 'standalone', kind: 'switchboard', script: fcfg.gateway, redisUrl: ctx.redisUrl, prefix: 'tstd' },
        cluster: { label: 'Cluster', kind: 'switchboard', script: fcfg.gateway, redisEnv: cluster.env, prefix: 'tclu' },
      },
    },
    { name, title: 'fan-out' },
  );
  if (isInterrupted()) throw new Error('interrupted');

  // ——— 2. notifications ———
  const ncfg = configureNotifications({ ...(ctx.options.quick ? { quick: true } : {}), jobs: ctx.options.jobs ?? (ctx.options.quick ? 4000 : 12_000) });
  ncfg.rounds = 4;
  ncfg.warmupJobs = ctx.options.quick ? 500 : 1000;
  ncfg.maxMs = 180_000;
  if (ncfg.jobs % ncfg.rounds !== 0) throw new Error(`--jobs must be a multiple of ${ncfg.rounds}`);
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const closers = [];
  const prefixes = [];
  const env = {};
  const status = {};
  const rounds = {};
  const redis = new Redis(ctx.redisUrl, { connectionName: 'bench:topologies' });
  redis.on('error', () => {});
  const nstarted = now();
  try {
    const standalonePids = childPidsNamed('redis-server').filter((pid) => !clusterPids.includes(pid));
    const connected = Array.from({ length: ncfg.users }, (_, i) => `bench-${runId}-u${i}`);
    const offline = Array.from({ length: ncfg.users }, (_, i) => `bench-${runId}-off${i}`);
    const rr = (list) => (tag) => (k, t) => ({ to: { userId: list[k % list.length] }, type: 'bench.notify', data: { t, p: tag, s: k } });
    for (const side of ['standalone', 'cluster']) {
      try {
        const target =
          side === 'cluster'
            ? { env: cluster.env, connection: loadRedisConfig({ ...cluster.env }) }
            : { env: { REDIS_URL: ctx.redisUrl }, connection: ctx.redisUrl };
        const stack = await startSwitchboard({ ctx, cfg: ncfg, runId, connected, prefixes: side === 'standalone' ? prefixes : [], closers, redis: target, tag: side === 'cluster' ? 'ntclu' : 'ntstd' });
        stack.redisPids = side === 'cluster' ? clusterPids : standalonePids;
        env[side] = stack;
        status[side] = 'ok';
      } catch (err) {
        if (isInterrupted()) throw err;
        status[side] = `failed: ${err?.message ?? err}`;
        ctx.log(`  notifications, ${side}: FAILED ${status[side]}`);
      }
    }
    const { measure } = measurer({ cfg: ncfg, env, started: nstarted });
    const live = Object.keys(env);
    for (const side of live) {
      await measure(side, { tag: `warm-${side}`, count: ncfg.warmupJobs, build: rr(connected)(`warm-${side}`), expectedReceipts: ncfg.warmupJobs });
      await measure(side, { tag: `warmoff-${side}`, count: ncfg.warmupJobs, build: rr(offline)(`warmoff-${side}`) });
    }
    const modes = live.flatMap((side) => [`${side}:dispatcher`, `${side}:e2e`]);
    for (const m of modes) rounds[m] = [];
    const perRound = ncfg.jobs / ncfg.rounds;
    ctx.log(`notification jobs: ${int(ncfg.jobs)} per side and mode in ${ncfg.rounds} rounds`);
    for (let r = 0; r < ncfg.rounds; r++) {
      for (const m of r % 2 === 0 ? modes : [...modes].reverse()) {
        const [side, mode] = m.split(':');
        const tag = `${side}-${mode}-${r}`;
        let res;
        try {
          res = await measure(side, { tag, count: perRound, build: rr(mode === 'dispatcher' ? offline : connected)(tag), expectedReceipts: mode === 'e2e' ? perRound : 0 });
        } catch (err) {
          if (isInterrupted()) throw err;
          status[side] = `round ${r + 1} (${mode}) not completed: ${err?.message ?? err}`;
          ctx.log(`  ${LABEL[side]} ${mode} round ${r + 1}: ${status[side]}`);
          continue;
        }
        rounds[m].push(res);
        ctx.log(`  ${LABEL[side].padEnd(10)} ${mode.padEnd(10)} round ${r + 1}: ${int((res.count / res.jobsMs) * 1000)} jobs/s, other CPU ${Math.round(res.otherCpuPct ?? 0)} %`);
      }
    }
  } finally {
    for (const fn of closers.reverse()) await Promise.resolve().then(fn).catch(() => {});
    for (const prefix of prefixes) await dropPrefix(redis, prefix).catch(() => {});
    redis.disconnect();
  }
  return report({ fan, ncfg, status, rounds, seconds: (now() - started) / 1000 });
}

function report({ fan, ncfg, status, rounds }) {
  const T = Object.fromEntries(Object.entries(rounds).filter(([, rs]) => rs.length).map(([m, rs]) => [m, totals(rs)]));
  const get = (side, mode) => T[`${side}:${mode}`];
  const cell = (side, mode, fn) => (get(side, mode) ? fn(get(side, mode)) : status[side] === 'ok' ? '–' : 'error');
  const rat = (mode, fn) => (get('standalone', mode) && get('cluster', mode) ? ratio(fn(get('cluster', mode)) / fn(get('standalone', mode))) : '–');
  const range = (side, mode) => {
    const rs = rounds[`${side}:${mode}`] ?? [];
    const v = rs.map((r) => (r.count / r.jobsMs) * 1000);
    return v.length ? `${int(Math.min(...v))} – ${int(Math.max(...v))}` : '–';
  };
  const rows = [];
  for (const [mode, what] of [
    ['dispatcher', 'users offline: inbox write + publish to the gateway'],
    ['e2e', 'users connected: each notification received by a client'],
  ]) {
    rows.push([`**Jobs/s, ${mode === 'e2e' ? 'end to end' : 'dispatcher'}** (${what})`, cell('standalone', mode, (t) => int(t.jobsPerSec)), cell('cluster', mode, (t) => int(t.jobsPerSec)), rat(mode, (t) => t.jobsPerSec)]);
    rows.push([`… range over rounds`, range('standalone', mode), range('cluster', mode), '']);
    rows.push([`Redis CPU per 1,000 jobs (${mode === 'e2e' ? 'end to end' : 'dispatcher'}; Cluster: all 6 nodes)`, cell('standalone', mode, (t) => ms(t.redisCpuPer1k)), cell('cluster', mode, (t) => ms(t.redisCpuPer1k)), rat(mode, (t) => t.redisCpuPer1k)]);
    rows.push([`Dispatcher CPU per 1,000 jobs`, cell('standalone', mode, (t) => ms(t.workerCpuPer1k)), cell('cluster', mode, (t) => ms(t.workerCpuPer1k)), rat(mode, (t) => t.workerCpuPer1k)]);
  }
  rows.push(['End to end: received / lost / duplicated', ...['standalone', 'cluster'].map((s) => cell(s, 'e2e', (t) => `${int(t.received)} / ${int(t.expectedReceipts - t.received)} / ${int(t.dups)}`)), '']);
  rows.push(['End to end: latency p50 / p99', ...['standalone', 'cluster'].map((s) => cell(s, 'e2e', (t) => `${ms(t.latency.p50)} / ${ms(t.latency.p99)}`)), '']);
  rows.push(["Other processes' CPU (avg / max round)", ...['standalone', 'cluster'].map((s) => cell(s, 'dispatcher', (t) => `${Math.round(t.otherAvg ?? 0)} % / ${Math.round(Math.max(t.otherMax ?? 0, get(s, 'e2e')?.otherMax ?? 0))} %`)), '']);
  const complete = ['standalone', 'cluster'].every((s) => get(s, 'dispatcher') && get(s, 'e2e'));
  const allDelivered = complete && ['standalone', 'cluster'].every((s) => {
    const e = get(s, 'e2e');
    const d = get(s, 'dispatcher');
    return e.received === e.expectedReceipts && e.dups === 0 && e.completed === e.jobs && d.completed === d.jobs && e.failed === 0 && d.failed === 0;
  });
  const notifVerdict = !complete ? 'INCOMPLETE' : allDelivered ? 'PASS' : 'FAIL';
  const others = Object.values(T).map((t) => t.otherMax ?? 0);
  const disturbed = fan.reliable === false || (others.length && Math.max(...others) > ncfg.interference.warnAbovePct);
  const overall = fan.verdict === 'INCOMPLETE' || notifVerdict === 'INCOMPLETE' ? 'INCOMPLETE' : fan.verdict === 'PASS' && notifVerdict === 'PASS' ? 'PASS' : 'FAIL';
  const lines = [
    '### Fan-out',
    '',
    fan.markdown,
    '',
    '### Notification jobs',
    '',
    `**Workload:** per side 1 gateway, 1 dispatcher (\`DISPATCHER_CONCURRENCY\` ${ncfg.concurrency}), ${int(ncfg.users)} connected users, ` +
      `the producer SDK (standalone: \`REDIS_URL\`; Cluster: \`REDIS_CLUSTER_NODES\`, queue prefix \`{<KEY_PREFIX>}\`), ` +
      `both sides up at once. Single-user jobs as in the notifications scenario, ${int(ncfg.jobs)} per side and mode in ` +
      `${ncfg.rounds} rounds, the four side × mode combinations alternating A B C D D C B A, after ${int(ncfg.warmupJobs)} warm-up ` +
      'jobs per side and mode. Jobs/s = jobs / (first enqueue → last job completed).',
    '',
    table(['Metric', 'standalone', 'Cluster', 'Cluster / standalone'], rows),
    '',
    `**Notifications: ${notifVerdict}** (every job completed, every notification received once; the jobs/s ratio is for information).`,
    '',
    `**Verdict: ${overall}${disturbed ? ' — UNRELIABLE, disturbed by other processes' : ''}** (fan-out: Cluster ≥ 0.9× standalone's ` +
      'saturation deliveries/s; notifications: nothing lost)',
  ];
  for (const [side, st] of Object.entries(status)) if (st !== 'ok') lines.push(`- notifications, ${side}: ${st}`);
  return {
    name,
    title: 'Redis Cluster vs standalone: fan-out and notification jobs',
    verdict: overall,
    reliable: !disturbed,
    markdown: lines.join('\n').trimEnd(),
    data: { fanout: fan.data, notifications: { config: ncfg, totals: Object.fromEntries(Object.entries(T).map(([k, t]) => [k, { ...t, latency: t.latency }])), status } },
  };
}
