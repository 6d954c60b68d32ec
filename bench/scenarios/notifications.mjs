// Notifications (SPEC §6): the dispatcher end to end (producer SDK → BullMQ → dispatcher → inbox and
// emitter → gateway → clients) against a raw BullMQ worker on the same Redis, and bulk fan-out (one
// job to 1,000 users) against one job per user.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { loadDispatcherConfig } from '@switchboard/config';
import { createProducer, NOTIFICATION_JOB_NAME, RECOMMENDED_JOB_OPTIONS } from '@switchboard/producer';
import { NOTIFICATIONS_QUEUE } from '@switchboard/protocol';
import { InboxStore, keys } from '@switchboard/store';
import { freePort } from '@switchboard/testkit';
import { now, sleep, withDeadline } from '../lib/clock.mjs';
import { Histogram } from '../lib/histogram.mjs';
import { table, int, ms, ratio } from '../lib/markdown.mjs';
import { waitForQuietMachine } from '../lib/phases.mjs';
import { ROOT, serverScript, startPods, stopPods } from '../lib/pods.mjs';
import { childPidsNamed, cpuTimeMs, isInterrupted, isRunning, machineBusyMs, spawnNode, stopChild } from '../lib/procs.mjs';
import { WorkerProcess } from '../lib/worker-ipc.mjs';
import { dropPrefix, dur } from './registry-stats.mjs';

export const name = 'notifications';
export const description =
  'Notification jobs: dispatcher jobs/s vs a raw BullMQ worker (target ≥ 0.7×), end-to-end notifications/s and ' +
  'enqueue→receive latency to 200 connected users; bulk fan-out (1 job → 1,000 users) vs 1 job per user (target ≥ 10× faster).';

const DISPATCHER = 'services/dispatcher/dist/main.js';
const RAW_WORKER = 'bench/lib/raw-bullmq-worker.mjs';
const RECEIVERS = 'bench/lib/notification-receivers.mjs';

const DEFAULTS = {
  gateway: undefined, // default entry point
  users: 200, // connected users, one socket each
  jobs: 40_000, // single-user jobs per mode in the throughput comparison
  rounds: 8, // each mode's jobs in this many parts, interleaved A B C C B A …: short alternations, so a slow spell of the machine falls on every mode alike
  chunk: 500, // jobs per notifyMany / addBulk call
  warmupJobs: 3000, // per side, not reported
  // bulk: bulkJobs jobs to all users; single: singleJobs single-user jobs round-robin over them. Per notification, so
  // the volumes may differ: bulk rounds this long (~0.3 s) are not at the mercy of one scheduler hiccup.
  fanout: { users: 1000, bulkJobs: 120, singleJobs: 40_000, rounds: 4 },
  concurrency: undefined, // the dispatcher's default unless --concurrency
  connectBatch: 50,
  connectTimeoutMs: 10_000, // per batch of clients; 30 s for all of them
  readyTimeoutMs: 20_000,
  callTimeoutMs: 10_000, // one enqueue call or one Redis read
  pollMs: 20,
  settleMs: 3000, // after the queue is empty, how long missing notifications may still arrive
  stallMs: 5000, // no progress for this long: the phase is given up
  phaseMaxMs: 40_000,
  maxMs: 110_000, // phases are cut rather than let the scenario run past this
  interference: { quietPct: 15, gateMs: 3000, gateBudgetMs: 15_000, warnAbovePct: 20 },
  targets: { jobsRatio: 0.7, fanoutSpeedup: 10 },
};

/** Options: --quick --jobs=N --users=N --concurrency=N --gateway=<entry point relative to the repository root> */
export function configure(options = {}) {
  const cfg = structuredClone(DEFAULTS);
  const num = (key) => (options[key] === undefined ? undefined : Math.floor(Number(options[key])));
  if (options.quick) Object.assign(cfg, { jobs: 6000, warmupJobs: 1000, fanout: { ...cfg.fanout, bulkJobs: 12, singleJobs: 6000, rounds: 2 } });
  if (typeof options.gateway === 'string') cfg.gateway = options.gateway;
  if (num('jobs') > 0) cfg.jobs = num('jobs');
  if (num('users') > 0) cfg.users = num('users');
  if (num('concurrency') > 0) cfg.concurrency = num('concurrency');
  cfg.concurrency ??= loadDispatcherConfig({}).concurrency;
  // The fan-out audience is the connected users plus offline ones.
  if (cfg.users >= cfg.fanout.users) throw new Error(`--users must be below ${cfg.fanout.users}`);
  if (cfg.jobs % cfg.rounds !== 0) throw new Error(`--jobs must be a multiple of ${cfg.rounds}`);
  if (cfg.fanout.bulkJobs % cfg.fanout.rounds !== 0) throw new Error('fan-out bulk jobs must split evenly over the rounds');
  if (cfg.fanout.singleJobs % (cfg.fanout.rounds * cfg.fanout.users) !== 0) throw new Error('fan-out single jobs must split evenly over the rounds and users');
  return cfg;
}

const SIDE_LABEL = { switchboard: 'Switchboard', raw: 'raw BullMQ' };
/**
 * What a single-user round measures. `dispatcher`: jobs to users with no open socket, so each job is
 * validated, stored in the inbox and published to the live gateway (which decodes it and finds no
 * socket), and no client I/O competes for this machine's cores; the jobs/s target is judged on it.
 * `e2e`: jobs to the connected users, each notification received by a client on this machine.
 */
const MODE_LABEL = { dispatcher: 'dispatcher', e2e: 'end to end', raw: 'raw BullMQ' };

/** GET url until it answers 200, within `timeoutMs`; fails early when the process exits. */
async function waitHttpReady(url, child, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isRunning(child)) throw new Error(`${what} exited (code ${child.exitCode}) before it was ready:\n${tail(child.output)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  throw new Error(`${what} not ready (GET ${new URL(url).pathname}) within ${timeoutMs} ms:\n${tail(child.output)}`);
}

const tail = (text) => (text || '(no output)').trim().split('\n').slice(-15).join('\n');

/** The dispatcher's `switchboard_dispatcher_jobs_total{result="completed"}`, from its ops port. */
async function dispatcherCompleted(opsUrl) {
  const res = await fetch(`${opsUrl}/metrics`, { signal: AbortSignal.timeout(3000) });
  const text = await res.text();
  const m = text.match(/^switchboard_dispatcher_jobs_total\{[^}]*result="completed"[^}]*\}\s+(\S+)/m);
  if (!m) throw new Error('the dispatcher metrics have no switchboard_dispatcher_jobs_total{result="completed"}');
  return Number(m[1]);
}

/** Finish time (ms since the epoch, the worker's clock) of the newest completed job. */
async function lastFinishedAt(queue) {
  const client = await queue.client;
  const [, score] = await client.zrevrange(queue.keys.completed, 0, 0, 'WITHSCORES');
  return score === undefined ? undefined : Number(score);
}

const PENDING_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'paused', 'waiting-children'];
const sumCounts = (counts) => Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);

export async function run(ctx) {
  const started = now();
  const cfg = configure(ctx.options);
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const redis = new Redis(ctx.redisUrl, { connectionName: 'bench:notifications' });
  redis.on('error', () => {});
  const closers = [];
  const prefixes = [];
  const sides = { switchboard: { status: 'pending' }, raw: { status: 'pending' } };
  const env = {}; // live processes and clients, by side
  const live = [];
  const notes = [];
  const fail = (side, err) => {
    if (isInterrupted()) throw err;
    sides[side] = { ...sides[side], status: 'error', reason: err?.message ?? String(err) };
    if (live.includes(side)) live.splice(live.indexOf(side), 1);
    ctx.log(`${SIDE_LABEL[side]} side FAILED: ${sides[side].reason}`);
  };

  const { measure, gateLeft } = measurer({ cfg, env, started });

  const users = Array.from({ length: cfg.fanout.users }, (_, i) => `bench-${runId}-u${i}`);
  const connected = users.slice(0, cfg.users);
  // As many users as are connected, none of them with a socket (and apart from the fan-out audience).
  const offline = Array.from({ length: cfg.users }, (_, i) => `bench-${runId}-off${i}`);
  /** Single-user jobs round-robin over `list`, tagged with the phase. */
  const roundRobin = (list, type) => (tag) => (k, t) => ({ to: { userId: list[k % list.length] }, type, data: { t, p: tag, s: k } });
  const single = roundRobin(connected, 'bench.notify');
  const toOffline = roundRobin(offline, 'bench.notify');

  try {
    // ——— 1. Both sides up: fresh key prefixes, same Redis ———
    const gatewayScript = serverScript('switchboard', cfg.gateway);
    const missing = [gatewayScript, DISPATCHER].filter((s) => !existsSync(resolve(ROOT, s)));
    if (missing.length) {
      sides.switchboard = { status: 'missing', reason: `${missing.join(' and ')} not found (build the workspace: npm run build)` };
      ctx.log(`Switchboard side NOT RUN: ${sides.switchboard.reason}`);
    } else {
      try {
        env.switchboard = await startSwitchboard({ ctx, cfg, runId, connected, prefixes, closers });
        sides.switchboard.status = 'ok';
        live.push('switchboard');
      } catch (err) {
        fail('switchboard', err);
      }
    }
    try {
      env.raw = await startRaw({ ctx, cfg, runId, prefixes, closers });
      sides.raw.status = 'ok';
      live.push('raw');
    } catch (err) {
      fail('raw', err);
    }

    // ——— 2. Warm-up (JIT, connections, scripts loaded), and a check that notifications arrive at all ———
    for (const side of [...live]) {
      try {
        const w = await measure(side, {
          tag: 'warm',
          count: cfg.warmupJobs,
          build: single('warm'),
          expectedReceipts: side === 'switchboard' ? cfg.warmupJobs : 0,
        });
        if (side === 'switchboard' && w.received === 0) throw new Error(`warm-up: no notification reached any client (${int(w.completed)} jobs completed)`);
        // the dispatcher mode's users too: their inboxes exist before the first measured round, as the connected users' do
        if (side === 'switchboard') await measure(side, { tag: 'warm-offline', count: cfg.warmupJobs, build: toOffline('warm-offline') });
        ctx.log(`  ${SIDE_LABEL[side].padEnd(11)} warm-up: ${int(cfg.warmupJobs)} jobs in ${ms(w.jobsMs)}`);
      } catch (err) {
        fail(side, err);
      }
    }

    // ——— 3. Single-user throughput: dispatcher (users offline), end to end, raw; A B C C B A ———
    const perRound = cfg.jobs / cfg.rounds;
    const modes = [...(live.includes('switchboard') ? ['dispatcher', 'e2e'] : []), ...(live.includes('raw') ? ['raw'] : [])];
    const rounds = Object.fromEntries(modes.map((mode) => [mode, []]));
    ctx.log(`single-user jobs: ${int(cfg.jobs)} per side and mode in ${cfg.rounds} rounds, chunks of ${cfg.chunk}, concurrency ${cfg.concurrency}`);
    for (let round = 0; round < cfg.rounds; round++) {
      for (const mode of round % 2 === 0 ? [...modes] : [...modes].reverse()) {
        const side = mode === 'raw' ? 'raw' : 'switchboard';
        if (!live.includes(side)) continue;
        try {
          const tag = `${mode}-${round}`;
          const r = await measure(side, {
            tag,
            count: perRound,
            build: mode === 'dispatcher' ? toOffline(tag) : single(tag),
            expectedReceipts: mode === 'e2e' ? perRound : 0,
          });
          rounds[mode].push(r);
          ctx.log(
            `  ${MODE_LABEL[mode].padEnd(11)} round ${round + 1}: ${int(perRound)} jobs, ${int((r.count / r.jobsMs) * 1000)} jobs/s` +
              (mode === 'e2e' ? `, received ${int(r.received)}, p50 ${ms(r.hist.percentile(50))}, p99 ${ms(r.hist.percentile(99))}` : '') +
              `, other CPU ${pctCell(r.otherCpuPct)}`,
          );
        } catch (err) {
          fail(side, err);
        }
      }
    }
    if (live.includes('switchboard')) Object.assign(sides.switchboard, { offline: rounds.dispatcher, single: rounds.e2e });
    if (live.includes('raw')) sides.raw.single = rounds.raw;

    // ——— 4. Bulk fan-out vs one job per user (Switchboard only) ———
    if (live.includes('switchboard')) {
      const { fanout } = cfg;
      const bulkPerRound = fanout.bulkJobs / fanout.rounds;
      const singlePerRound = fanout.singleJobs / fanout.rounds;
      const fan = { bulk: [], single: [] };
      const bulkJob = (tag) => (_k, t) => ({ to: { userIds: users }, type: 'bench.fanout', data: { t, p: tag } });
      const oneEach = roundRobin(users, 'bench.fanout');
      ctx.log(`fan-out to ${int(users.length)} users (${int(connected.length)} connected): ${fanout.bulkJobs} bulk jobs vs ${int(fanout.singleJobs)} single-user jobs`);
      try {
        await measure('switchboard', { tag: 'fan-warm', count: 1, build: bulkJob('fan-warm'), expectedReceipts: connected.length });
        for (let round = 0; round < fanout.rounds; round++) {
          for (const kind of round % 2 === 0 ? ['bulk', 'single'] : ['single', 'bulk']) {
            const tag = `fan-${kind}-${round}`;
            const count = kind === 'bulk' ? bulkPerRound : singlePerRound;
            const notifications = kind === 'bulk' ? bulkPerRound * users.length : singlePerRound;
            const r = await measure('switchboard', {
              tag,
              count,
              build: kind === 'bulk' ? bulkJob(tag) : oneEach(tag),
              expectedReceipts: (notifications / users.length) * connected.length,
            });
            r.notifications = notifications;
            r.fanMs = Math.max(r.jobsMs ?? 0, r.receiptsMs ?? 0);
            fan[kind].push(r);
            ctx.log(
              `  ${kind.padEnd(6)} round ${round + 1}: ${int(count)} jobs → ${int(r.notifications)} notifications in ${ms(r.fanMs)} ` +
                `(${dur(r.fanMs / r.notifications)} each), connected received ${int(r.received)} of ${int(r.expectedReceipts)}`,
            );
          }
        }
        // Stored in the inbox either way: offline users hold every fan-out notification.
        const inbox = new InboxStore(redis, keys(env.switchboard.keyPrefix));
        const offline = [users[cfg.users], users[Math.floor((cfg.users + users.length) / 2)], users[users.length - 1]];
        const expectedUnread = 1 + fanout.bulkJobs + fanout.singleJobs / users.length;
        const unread = await Promise.all(offline.map((u) => inbox.unread(u)));
        sides.switchboard.fanout = { ...fan, inbox: { checked: offline.length, expected: expectedUnread, unread } };
      } catch (err) {
        fail('switchboard', err);
      }
    }
  } finally {
    for (const fn of closers.reverse()) await Promise.resolve().then(fn).catch(() => {});
    for (const prefix of prefixes) await dropPrefix(redis, prefix).catch(() => {});
    redis.disconnect();
  }
  const disturbedNote = gateLeft() <= 0 ? 'the wait for a quiet machine used up its budget: later phases started on a busy machine' : undefined;
  if (disturbedNote) notes.push(disturbedNote);
  return report(cfg, sides, env, notes);
}

/**
 * The measurement of one phase on a side of `env` (side → stack: queue, add, completed, receivers,
 * pids…), with CPU accounting and the wait for a quiet machine; shared with the topologies scenario.
 */
export function measurer({ cfg, env, started }) {
  // ——— CPU accounting and interference (processes outside the bench) ———
  const benchPids = () => [
    process.pid,
    ...childPidsNamed('redis-server'),
    ...Object.values(env).flatMap((e) => e.pids ?? []),
  ];
  const sampleCpu = () => {
    const pids = benchPids();
    const per = Object.fromEntries(pids.map((pid) => [pid, cpuTimeMs(pid)]));
    const values = Object.values(per);
    return { per, bench: values.every(Number.isFinite) ? values.reduce((a, b) => a + b, 0) : undefined, machine: machineBusyMs() };
  };
  let gateLeftMs = cfg.interference.gateBudgetMs;
  const quietMachine = async () => {
    if (gateLeftMs <= 0) return;
    const maxMs = Math.min(cfg.interference.gateMs, gateLeftMs);
    gateLeftMs -= (await waitForQuietMachine(benchPids(), { thresholdPct: cfg.interference.quietPct, maxMs })) ?? 0;
  };
  const timeLeft = () => started + cfg.maxMs - now();
  
  /**
   * One measured phase on a side: enqueues `count` jobs built by `build(k, t)`, `cfg.chunk` per call and
   * as fast as the calls return, then waits until the queue has nothing left to do and the connected
   * users received `expectedReceipts` of them. Throws when jobs are still pending at the deadline.
   */
  const measure = async (side, { tag, count, build, expectedReceipts = 0 }) => {
    const e = env[side];
    if (timeLeft() < 5000) throw new Error('out of time for this scenario');
    const deadline = now() + Math.min(cfg.phaseMaxMs, timeLeft());
    await quietMachine();
    if (e.receivers) await e.receivers.call('phase', { tag });
    const completed0 = await e.completed();
    const cpu0 = sampleCpu();
    const t0 = now();
    const t0Wall = Date.now();
    for (let i = 0; i < count; i += cfg.chunk) {
      if (now() > deadline) throw new Error(`enqueueing ${int(count)} jobs took longer than ${Math.round(cfg.phaseMaxMs / 1000)} s`);
      const t = now();
      const jobs = [];
      for (let k = i; k < Math.min(count, i + cfg.chunk); k++) jobs.push(build(k, t));
      await withDeadline(e.add(jobs), cfg.callTimeoutMs, `enqueueing ${jobs.length} jobs`);
    }
    const enqueueMs = now() - t0;
  
    let drainedAt;
    let lastKey = '';
    let lastChange = now();
    let outcome;
    for (;;) {
      const pending = sumCounts(await withDeadline(e.queue.getJobCounts(...PENDING_STATES), cfg.callTimeoutMs, 'queue counts'));
      const received = e.receivers ? (await e.receivers.call('poll')).received : 0;
      const t = now();
      if (pending === 0 && received >= expectedReceipts) {
        outcome = { ok: true };
        break;
      }
      drainedAt = pending === 0 ? (drainedAt ?? t) : undefined;
      const key = `${pending}/${received}`;
      if (key !== lastKey) {
        lastKey = key;
        lastChange = t;
      }
      if (drainedAt !== undefined && t - drainedAt > cfg.settleMs) {
        outcome = { ok: false, pending, reason: `${int(expectedReceipts - received)} notifications still missing ${cfg.settleMs / 1000} s after the queue emptied` };
      } else if (t - lastChange > cfg.stallMs) {
        outcome = { ok: false, pending, reason: `no progress for ${cfg.stallMs / 1000} s (${int(pending)} jobs pending, ${int(received)} of ${int(expectedReceipts)} received)` };
      } else if (t > deadline) {
        outcome = { ok: false, pending, reason: `timed out (${int(pending)} jobs pending, ${int(received)} of ${int(expectedReceipts)} received)` };
      }
      if (outcome) break;
      await sleep(cfg.pollMs);
    }
    const cpu1 = sampleCpu();
    const elapsedMs = now() - t0;
    if (!outcome.ok && outcome.pending > 0) throw new Error(`${tag}: ${outcome.reason}`);
  
    const finishedAt = await withDeadline(lastFinishedAt(e.queue), cfg.callTimeoutMs, 'last completed job');
    const completed = (await e.completed()) - completed0;
    const { failed } = await withDeadline(e.queue.getJobCounts('failed'), cfg.callTimeoutMs, 'failed count');
    const rep = e.receivers ? await e.receivers.call('report') : undefined;
    const cpuOf = (pid) => (cpu0.per[pid] === undefined || cpu1.per[pid] === undefined ? undefined : cpu1.per[pid] - cpu0.per[pid]);
    const benchCpuMs = cpu0.bench === undefined || cpu1.bench === undefined ? undefined : cpu1.bench - cpu0.bench;
    const machineCpuMs = cpu0.machine === undefined || cpu1.machine === undefined ? undefined : cpu1.machine - cpu0.machine;
    const otherCpuMs = benchCpuMs === undefined || machineCpuMs === undefined ? undefined : Math.max(0, machineCpuMs - benchCpuMs);
    return {
      tag,
      count,
      enqueueMs,
      jobsMs: finishedAt === undefined ? undefined : finishedAt - t0Wall,
      completed,
      failed,
      expectedReceipts,
      received: rep?.unique ?? 0,
      dups: rep?.dups ?? 0,
      receiptsMs: rep?.lastAt === undefined ? undefined : rep.lastAt - t0,
      hist: rep ? Histogram.fromJSON(rep.hist) : undefined,
      problem: outcome.ok ? undefined : outcome.reason,
      elapsedMs,
      workerCpuMs: cpuOf(e.workerPid),
      redisCpuMs: (e.redisPids ?? childPidsNamed('redis-server')).map(cpuOf).reduce((a, b) => (a === undefined || b === undefined ? undefined : a + b), 0),
      // Gateway and clients (Switchboard only); the bench process itself is the producer.
      deliveryCpuMs: (e.deliveryPids ?? []).map(cpuOf).reduce((a, b) => (a === undefined || b === undefined ? undefined : a + b), 0),
      producerCpuMs: cpuOf(process.pid),
      machineCpuPct: machineCpuMs === undefined ? undefined : (machineCpuMs / elapsedMs) * 100,
      otherCpuPct: otherCpuMs === undefined ? undefined : (otherCpuMs / elapsedMs) * 100,
    };
  };
  return { measure, gateLeft: () => gateLeftMs };
}

// ——— setup ———

/**
 * One gateway, one dispatcher, `connected` users with a socket each, and a producer. `redis`: where
 * (`env`: the services' topology variables; `connection`: the producer's) — the run's Redis by default.
 */
export async function startSwitchboard({ ctx, cfg, runId, connected, prefixes, closers, redis, tag = 'nsb' }) {
  redis ??= { env: { REDIS_URL: ctx.redisUrl }, connection: ctx.redisUrl };
  const keyPrefix = `bench.${tag}.${runId}`;
  prefixes.push(keyPrefix);
  const jwtSecret = randomBytes(32).toString('base64url');
  const pods = await startPods({
    kind: 'switchboard',
    script: cfg.gateway,
    count: 1,
    redisEnv: redis.env,
    keyPrefix,
    jwtSecret,
    readyTimeoutMs: cfg.readyTimeoutMs,
  });
  closers.push(() => stopPods(pods));
  const [pod] = pods;

  const opsPort = await freePort();
  const dispatcher = spawnNode(resolve(ROOT, DISPATCHER), {
    label: 'bench-dispatcher',
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      OPS_PORT: String(opsPort),
      ...redis.env,
      KEY_PREFIX: keyPrefix,
      POD_ID: 'bench-dispatcher',
      LOG_LEVEL: 'warn',
      DISPATCHER_CONCURRENCY: String(cfg.concurrency),
    },
  });
  closers.push(() => stopChild(dispatcher, 5000));
  const opsUrl = `http://127.0.0.1:${opsPort}`;
  await waitHttpReady(`${opsUrl}/readyz`, dispatcher, 'dispatcher', cfg.readyTimeoutMs);

  const receivers = new WorkerProcess(resolve(ROOT, RECEIVERS), {
    label: 'bench-notification-receivers',
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production' },
  });
  closers.push(() => receivers.close());
  const batches = Math.ceil(connected.length / cfg.connectBatch) + 2;
  const c = await receivers.call(
    'connect',
    { url: pod.url, userIds: connected, jwtSecret, batchSize: cfg.connectBatch, timeoutMs: cfg.connectTimeoutMs },
    Math.min(cfg.connectTimeoutMs * batches, 30_000),
  );
  if (c.connected < connected.length) throw new Error(`only ${c.connected}/${connected.length} clients connected: ${JSON.stringify(c.failures)}`);

  const producer = createProducer({ connection: redis.connection, keyPrefix, connectTimeoutMs: 5000 });
  closers.push(() => producer.close());
  await withDeadline(producer.queue.waitUntilReady(), cfg.readyTimeoutMs, 'producer queue');
  ctx.log(
    `Switchboard: gateway :${pod.port}, dispatcher (concurrency ${cfg.concurrency}), ${c.connected} clients connected in ` +
      `${(c.ms / 1000).toFixed(1)} s, key prefix ${keyPrefix}`,
  );
  return {
    keyPrefix,
    queue: producer.queue,
    add: (jobs) => producer.notifyMany(jobs),
    completed: () => dispatcherCompleted(opsUrl),
    receivers,
    workerPid: dispatcher.pid,
    pids: [pod.pid, dispatcher.pid, receivers.pid],
    deliveryPids: [pod.pid, receivers.pid],
    connect: c,
  };
}

async function startRaw({ ctx, cfg, runId, prefixes, closers }) {
  const keyPrefix = `bench.nraw.${runId}`;
  prefixes.push(keyPrefix);
  const worker = new WorkerProcess(resolve(ROOT, RAW_WORKER), {
    label: 'bench-raw-worker',
    cwd: ROOT,
    env: {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    REDIS_URL: ctx.redisUrl,
    KEY_PREFIX: keyPrefix,
    QUEUE: NOTIFICATIONS_QUEUE,
    CONCURRENCY: String(cfg.concurrency),
    },
  });
  closers.push(() => worker.close());
  await worker.ready(cfg.readyTimeoutMs);
  const connection = new Redis(ctx.redisUrl, { connectionName: 'bench:raw-producer', maxRetriesPerRequest: 1 });
  connection.on('error', () => {});
  // The same job options as the producer SDK, so both queues keep and trim finished jobs alike.
  const queue = new Queue(NOTIFICATIONS_QUEUE, { connection, prefix: keyPrefix, defaultJobOptions: RECOMMENDED_JOB_OPTIONS });
  queue.on('error', () => {});
  closers.push(async () => {
    await withDeadline(queue.close(), 2000, 'raw queue close').catch(() => {});
    connection.disconnect();
  });
  await withDeadline(queue.waitUntilReady(), cfg.readyTimeoutMs, 'raw queue');
  ctx.log(`raw BullMQ: worker (concurrency ${cfg.concurrency}), key prefix ${keyPrefix}`);
  return {
    keyPrefix,
    queue,
    add: (jobs) => queue.addBulk(jobs.map((data) => ({ name: NOTIFICATION_JOB_NAME, data }))),
    completed: async () => (await worker.call('count')).completed,
    workerPid: worker.pid,
    pids: [worker.pid],
  };
}

// ——— report ———

export function totals(rs) {
  const sum = (fn) => rs.reduce((s, r) => s + (fn(r) ?? NaN), 0);
  const hist = rs.reduce((h, r) => (r.hist ? h.merge(r.hist) : h), new Histogram());
  const jobs = sum((r) => r.count);
  const other = rs.map((r) => r.otherCpuPct).filter(Number.isFinite);
  return {
    jobs,
    jobsPerSec: (jobs / sum((r) => r.jobsMs)) * 1000,
    enqueuePerSec: (jobs / sum((r) => r.enqueueMs)) * 1000,
    e2ePerSec: (sum((r) => r.received) / sum((r) => r.receiptsMs)) * 1000,
    completed: sum((r) => r.completed),
    failed: Math.max(...rs.map((r) => r.failed)),
    expectedReceipts: sum((r) => r.expectedReceipts),
    received: sum((r) => r.received),
    dups: sum((r) => r.dups),
    latency: hist.summary(),
    workerCpuPer1k: sum((r) => r.workerCpuMs) / (jobs / 1000),
    redisCpuPer1k: sum((r) => r.redisCpuMs) / (jobs / 1000),
    deliveryCpuPer1k: sum((r) => r.deliveryCpuMs) / (jobs / 1000),
    producerCpuPer1k: sum((r) => r.producerCpuMs) / (jobs / 1000),
    machineCpuPct: sum((r) => (r.machineCpuPct * r.elapsedMs) / 100) / sum((r) => r.elapsedMs) * 100,
    otherAvg: other.length ? other.reduce((a, b) => a + b, 0) / other.length : undefined,
    otherMax: other.length ? Math.max(...other) : undefined,
    problems: rs.map((r) => r.problem).filter(Boolean),
  };
}

function fanTotals(rs) {
  const notifications = rs.reduce((s, r) => s + r.notifications, 0);
  const elapsed = rs.reduce((s, r) => s + r.fanMs, 0);
  return {
    jobs: rs.reduce((s, r) => s + r.count, 0),
    notifications,
    perNotificationMs: elapsed / notifications,
    perSec: (notifications / elapsed) * 1000,
    expectedReceipts: rs.reduce((s, r) => s + r.expectedReceipts, 0),
    received: rs.reduce((s, r) => s + r.received, 0),
    completed: rs.reduce((s, r) => s + r.completed, 0),
    failed: Math.max(...rs.map((r) => r.failed)),
    other: rs.map((r) => r.otherCpuPct).filter(Number.isFinite),
    problems: rs.map((r) => r.problem).filter(Boolean),
  };
}

const pctCell = (v) => (Number.isFinite(v) ? `${Math.round(v)} %` : '–');
const oneLine = (text) => String(text).split('\n').map((l) => l.trim()).filter(Boolean).join(' ⏎ ').slice(0, 600);
const verdictOf = (value, pass) => (value === undefined || !Number.isFinite(value) ? 'NOT RUN' : pass(value) ? 'PASS' : 'FAIL');

function report(cfg, sides, env, extraNotes) {
  const ok = (side) => sides[side].status === 'ok';
  const sb = ok('switchboard') && sides.switchboard.single?.length ? totals(sides.switchboard.single) : undefined;
  const off = ok('switchboard') && sides.switchboard.offline?.length ? totals(sides.switchboard.offline) : undefined;
  const raw = ok('raw') && sides.raw.single?.length ? totals(sides.raw.single) : undefined;
  const fan = ok('switchboard') ? sides.switchboard.fanout : undefined;
  const bulk = fan?.bulk.length ? fanTotals(fan.bulk) : undefined;
  const one = fan?.single.length ? fanTotals(fan.single) : undefined;
  const notRun = (side) => (sides[side].status === 'missing' ? 'not run' : sides[side].status === 'error' ? 'error' : '–');

  const jobsRatio = off && raw ? off.jobsPerSec / raw.jobsPerSec : undefined;
  const e2eRatio = sb && raw ? sb.jobsPerSec / raw.jobsPerSec : undefined;
  const offlineOk = off && off.completed === off.jobs && off.failed === 0;
  const speedup = bulk && one ? one.perNotificationMs / bulk.perNotificationMs : undefined;
  const lost = sb ? sb.expectedReceipts - sb.received : undefined;
  const deliveryOk = sb && lost === 0 && sb.dups === 0 && sb.completed === sb.jobs && sb.failed === 0;
  const inboxOk = fan ? fan.inbox.unread.every((n) => n === fan.inbox.expected) : false;
  const fanComplete =
    bulk && one && inboxOk && [bulk, one].every((t) => t.received === t.expectedReceipts && t.completed === t.jobs && t.failed === 0);
  const jobsVerdict = verdictOf(jobsRatio, (v) => v >= cfg.targets.jobsRatio && offlineOk);
  const fanVerdict = speedup === undefined ? 'NOT RUN' : speedup >= cfg.targets.fanoutSpeedup && fanComplete ? 'PASS' : 'FAIL';
  const deliveryVerdict = sb ? (deliveryOk ? 'PASS' : 'FAIL') : 'NOT RUN';

  const others = [sb, off, raw].filter(Boolean).flatMap((t) => [t.otherMax]).concat(bulk?.other ?? [], one?.other ?? []).filter(Number.isFinite);
  const otherMax = others.length ? Math.max(...others) : undefined;
  const disturbed = otherMax !== undefined && otherMax > cfg.interference.warnAbovePct;

  const sbCell = (fn) => (sb ? fn(sb) : notRun('switchboard'));
  const offCell = (fn) => (off ? fn(off) : notRun('switchboard'));
  // dispatcher (users offline) / end to end
  const bothCell = (fn) => (off || sb ? `${off ? fn(off) : notRun('switchboard')} / ${sb ? fn(sb) : notRun('switchboard')}` : notRun('switchboard'));
  const bothRatio = (fn) => (raw ? `${off ? ratio(fn(off) / fn(raw)) : '–'} / ${sb ? ratio(fn(sb) / fn(raw)) : '–'}` : '–');
  const rawCell = (fn) => (raw ? fn(raw) : notRun('raw'));
  const fanCell = (t, fn) => (t ? fn(t) : notRun('switchboard'));
  const perRound = cfg.jobs / cfg.rounds;
  const F = cfg.fanout;
  const rows = [
    [
      `**Single-user jobs/s, dispatcher** (users offline: each job stored in the inbox and published to the gateway; first enqueue → last job completed)`,
      offCell((t) => `${int(t.jobsPerSec)} (dispatcher)`),
      rawCell((t) => `${int(t.jobsPerSec)} (raw BullMQ worker)`),
      ratio(jobsRatio),
      `≥ ${cfg.targets.jobsRatio}×`,
      `**${jobsVerdict}**`,
    ],
    [
      `Single-user jobs/s, end to end (users connected: each notification also received by a client on this machine)`,
      sbCell((t) => int(t.jobsPerSec)),
      rawCell((t) => int(t.jobsPerSec)),
      ratio(e2eRatio),
      'for information',
      '',
    ],
    ['End-to-end notifications/s (first enqueue → last receipt)', sbCell((t) => int(t.e2ePerSec)), '', '', '', ''],
    [
      'Enqueue → receive latency p50 / p99 / max',
      sbCell((t) => `${ms(t.latency.p50)} / ${ms(t.latency.p99)} / ${ms(t.latency.max)}`),
      '',
      '',
      '',
      '',
    ],
    [
      'Notifications received / lost / duplicated; jobs completed, failed (end to end)',
      sbCell((t) => `${int(t.received)} of ${int(t.expectedReceipts)} / ${int(lost)} / ${int(t.dups)}; ${int(t.completed)}, ${int(t.failed)}`),
      rawCell((t) => `jobs completed ${int(t.completed)} of ${int(t.jobs)}, failed ${int(t.failed)}`),
      '',
      'all, 0 lost',
      `**${deliveryVerdict}**`,
    ],
    ['Jobs completed, failed (dispatcher, users offline)', offCell((t) => `${int(t.completed)} of ${int(t.jobs)}, ${int(t.failed)}`), '', '', 'all', ''],
    ['Enqueue rate (jobs/s added, chunks of ' + cfg.chunk + ')', sbCell((t) => `${int(t.enqueuePerSec)} (producer SDK)`), rawCell((t) => `${int(t.enqueuePerSec)} (queue.addBulk)`), ratio(sb && raw ? sb.enqueuePerSec / raw.enqueuePerSec : undefined), '', ''],
    ['Worker process CPU per 1,000 jobs (dispatcher / end to end)', bothCell((t) => ms(t.workerCpuPer1k)), rawCell((t) => ms(t.workerCpuPer1k)), bothRatio((t) => t.workerCpuPer1k), '', ''],
    ['Redis CPU per 1,000 jobs (dispatcher / end to end)', bothCell((t) => ms(t.redisCpuPer1k)), rawCell((t) => ms(t.redisCpuPer1k)), bothRatio((t) => t.redisCpuPer1k), '', ''],
    ['Producer (bench process) CPU per 1,000 jobs (dispatcher / end to end)', bothCell((t) => ms(t.producerCpuPer1k)), rawCell((t) => ms(t.producerCpuPer1k)), bothRatio((t) => t.producerCpuPer1k), '', ''],
    ['Gateway + clients CPU per 1,000 jobs (dispatcher / end to end)', bothCell((t) => ms(t.deliveryCpuPer1k)), rawCell(() => 'none (no delivery)'), '', '', ''],
    [`Whole machine busy during the rounds (% of a core, ${os.availableParallelism()} cores; dispatcher / end to end)`, bothCell((t) => pctCell(t.machineCpuPct)), rawCell((t) => pctCell(t.machineCpuPct)), '', '', ''],
    [
      `**Fan-out: time per delivered notification** (${int(F.users)} users, ${int(cfg.users)} connected)`,
      fanCell(bulk, (t) => `${dur(t.perNotificationMs)} (${t.jobs} bulk jobs → ${int(t.notifications)})`),
      fanCell(one, (t) => `${dur(t.perNotificationMs)} (${int(t.jobs)} single-user jobs)`),
      speedup === undefined ? '–' : `${speedup.toFixed(1)}× faster`,
      `≥ ${cfg.targets.fanoutSpeedup}× faster`,
      `**${fanVerdict}**`,
    ],
    ['Fan-out: notifications/s', fanCell(bulk, (t) => int(t.perSec)), fanCell(one, (t) => int(t.perSec)), ratio(bulk && one ? bulk.perSec / one.perSec : undefined), '', ''],
    [
      'Fan-out: connected receipts; jobs completed',
      fanCell(bulk, (t) => `${int(t.received)} of ${int(t.expectedReceipts)}; ${int(t.completed)} of ${int(t.jobs)}`),
      fanCell(one, (t) => `${int(t.received)} of ${int(t.expectedReceipts)}; ${int(t.completed)} of ${int(t.jobs)}`),
      '',
      'all',
      '',
    ],
    [
      'Fan-out: inbox of offline users (unread)',
      fan ? `${fan.inbox.unread.join(', ')} (expected ${fan.inbox.expected} each)` : notRun('switchboard'),
      '',
      '',
      'all stored',
      fan ? (inboxOk ? '**PASS**' : '**FAIL**') : '',
    ],
    [
      "Other processes' CPU (interference, avg / max phase)",
      sbCell((t) => `${pctCell(t.otherAvg)} / ${pctCell(Math.max(t.otherMax ?? 0, off?.otherMax ?? 0, ...(bulk?.other ?? []), ...(one?.other ?? [])))}`),
      rawCell((t) => `${pctCell(t.otherAvg)} / ${pctCell(t.otherMax)}`),
      '',
      '≈ 0 %',
      '',
    ],
  ];

  const complete = jobsVerdict !== 'NOT RUN' && fanVerdict !== 'NOT RUN';
  const overall = !complete
    ? 'INCOMPLETE'
    : jobsVerdict === 'PASS' && fanVerdict === 'PASS' && deliveryVerdict === 'PASS'
      ? 'PASS'
      : 'FAIL';
  const lines = [
    `**Workload:** one Redis, a fresh key prefix per side. *Switchboard*: 1 gateway, 1 dispatcher ` +
      `(\`DISPATCHER_CONCURRENCY\` ${cfg.concurrency}), ${int(cfg.users)} users connected with one socket each (one receiver ` +
      `process); the producer SDK enqueues single-user jobs round-robin over ${int(cfg.users)} users with \`notifyMany\`, ${cfg.chunk} per call, ` +
      `each call awaited before the next, \`data: { t, p, s }\` (\`t\` = enqueue time). Two Switchboard modes: *dispatcher*, ` +
      `jobs to ${int(cfg.users)} users with no socket open (the dispatcher validates, stores in the inbox and publishes to the ` +
      `gateway, which decodes each message and finds no socket: all of the dispatcher's work, none of the clients'), and ` +
      `*end to end*, jobs to the connected users, each notification received by a client on this machine. *Raw BullMQ*: a ` +
      `plain \`Worker\` with a no-op processor and the same concurrency drains jobs of the same shape and options added with ` +
      `\`queue.addBulk\`. ${int(cfg.jobs)} jobs per mode in ${cfg.rounds} rounds of ${int(perRound)}, alternating A B C C B A …, ` +
      `after ${int(cfg.warmupJobs)} warm-up jobs per side. The jobs/s target is judged on the dispatcher mode: the raw worker ` +
      `delivers nothing, and on ${os.availableParallelism()} cores the receiving clients and the gateway's socket writes of the ` +
      `end-to-end mode take CPU that the dispatcher then lacks (in a deployment they run on other machines). ` +
      `*Fan-out*: ${F.bulkJobs} jobs to ${int(F.users)} users each ` +
      `(\`to: { userIds }\`, ${int(F.bulkJobs * F.users)} notifications) vs ${int(F.singleJobs)} single-user jobs round-robin over the same users (${int(cfg.users)} connected, ` +
      `${int(F.users - cfg.users)} offline, every notification stored in the inbox), in ${F.rounds} rounds each in the order bulk / ` +
      'single / single / bulk (repeated); a round ends when its jobs completed and the connected users received theirs.',
    '',
  ];
  for (const side of ['switchboard', 'raw']) {
    const s = sides[side];
    if (s.status === 'missing') lines.push(`> **${SIDE_LABEL[side]} side not run:** ${s.reason}.`, '');
    if (s.status === 'error') lines.push(`> **${SIDE_LABEL[side]} side failed:** ${oneLine(s.reason)}`, '');
  }
  if (disturbed) {
    lines.push(
      `> **Warning:** other processes on this machine used up to ${Math.round(otherMax)} % of a core during a measured phase: ` +
        'the figures are disturbed; rerun on a quiet machine.',
      '',
    );
  }
  lines.push(table(['Metric', 'Switchboard', 'Reference', 'Ratio', 'Target', 'Result'], rows), '');
  lines.push(
    `**Verdict: ${overall}${disturbed ? ' — UNRELIABLE, disturbed by other processes' : ''}** (targets: dispatcher single-user ` +
      `jobs/s ≥ ${cfg.targets.jobsRatio}× a raw BullMQ worker's, every job completed; end to end, every notification received; bulk fan-out ≥ ` +
      `${cfg.targets.fanoutSpeedup}× faster per notification than one job per user, with every notification stored)`,
    '',
  );

  const roundRows = [];
  for (const [side, key, label] of [
    ['switchboard', 'offline', 'dispatcher'],
    ['switchboard', 'single', 'end to end'],
    ['raw', 'single', 'single-user'],
  ]) {
    (sides[side][key] ?? []).forEach((r, i) =>
      roundRows.push([
        SIDE_LABEL[side],
        `${label} ${i + 1}`,
        int(r.count),
        int((r.count / r.enqueueMs) * 1000),
        int((r.count / r.jobsMs) * 1000),
        key === 'single' && side === 'switchboard' ? int((r.received / r.receiptsMs) * 1000) : '',
        r.hist && r.received ? `${ms(r.hist.percentile(50))} / ${ms(r.hist.percentile(99))}` : '',
        pctCell(r.otherCpuPct),
      ]),
    );
  }
  if (fan) {
    for (const kind of ['bulk', 'single']) {
      fan[kind].forEach((r, i) =>
        roundRows.push([
          'Switchboard',
          `fan-out ${kind} ${i + 1}`,
          int(r.count),
          int((r.count / r.enqueueMs) * 1000),
          int((r.count / r.jobsMs) * 1000),
          `${int((r.notifications / r.fanMs) * 1000)} notif/s`,
          `${ms(r.hist.percentile(50))} / ${ms(r.hist.percentile(99))}`,
          pctCell(r.otherCpuPct),
        ]),
      );
    }
  }
  if (roundRows.length) {
    lines.push(
      'Rounds:',
      '',
      table(['side', 'round', 'jobs', 'enqueued jobs/s', 'completed jobs/s', 'received/s', 'latency p50 / p99', 'other CPU'], roundRows),
      '',
    );
  }
  const problems = [...(sb?.problems ?? []), ...(off?.problems ?? []), ...(bulk?.problems ?? []), ...(one?.problems ?? [])];
  for (const note of [...problems, ...extraNotes]) lines.push(`- ${note}`);
  if (sb) {
    lines.push(
      '- The latency is that of a burst: jobs are enqueued faster than they are delivered, so it is mostly time spent ' +
        'waiting in the queue behind earlier jobs, not the cost of one delivery.',
    );
  }

  const strip = (rs) => rs?.map(({ hist, ...r }) => ({ ...r, latency: hist?.summary() }));
  return {
    name,
    title: 'Notifications: dispatcher vs raw BullMQ worker, bulk fan-out vs one job per user',
    verdict: overall,
    reliable: !disturbed,
    markdown: lines.join('\n').trimEnd(),
    data: {
      config: cfg,
      sides: Object.fromEntries(
        Object.entries(sides).map(([side, s]) => [
          side,
          {
            status: s.status,
            reason: s.reason,
            keyPrefix: env[side]?.keyPrefix,
            single: strip(s.single),
            offline: strip(s.offline),
            fanout: s.fanout ? { bulk: strip(s.fanout.bulk), single: strip(s.fanout.single), inbox: s.fanout.inbox } : undefined,
          },
        ]),
      ),
      totals: { switchboard: sb, dispatcher: off, raw, bulk, single: one },
      ratios: { jobs: jobsRatio, e2eJobs: e2eRatio, fanoutSpeedup: speedup },
      verdicts: { jobs: jobsVerdict, delivery: deliveryVerdict, fanout: fanVerdict },
    },
  };
}
