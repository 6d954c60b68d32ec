// Lifecycle events (SPEC §7a): what writing them costs the registry, and how fast the dispatcher
// delivers them to a webhook.
//
// 1. Registry cost: join + leave cycles (each a room occupied / member added / member removed /
//    room vacated with events on) through Registry.join / leave, the gateway's own writes, with
//    events off and on, in alternating blocks (off on on off …). Per side: operations per second
//    from one client with 64 in flight, and Redis CPU per operation (INFO cpu deltas). The outbox
//    is emptied between blocks, outside the timing: the relay's own work is measured in 3.
// 2. Through a gateway: room:join / room:leave with acks from Socket.IO clients on a gateway pod
//    with events off and one with them on; acknowledged operations per second, pod CPU and Redis
//    CPU per operation. The verdict's figure: what events cost a join or leave as the product makes it.
// 3. Delivery: a dispatcher (in this process, the real one) relays a burst of transitions to the
//    `events` queue and to a local webhook receiver that verifies every signature. Figures: events
//    delivered per second, requests per second, transition-to-receipt latency; baseline: the same
//    batches posted straight to the receiver, one request at a time.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Registry as Metrics } from 'prom-client';
import { loadDispatcherConfig } from '@switchboard/config';
import { createDispatcher } from '@switchboard/dispatcher';
import { startWebhookReceiver } from '@switchboard/harness';
import { createLogger } from '@switchboard/observability';
import { keys, Registry } from '@switchboard/store';
import { signWebhook } from '@switchboard/auth';
import { io } from 'socket.io-client';
import { table, int, ms, ratio } from '../lib/markdown.mjs';
import { startPods, stopPods } from '../lib/pods.mjs';
import { cpuTimeMs } from '../lib/procs.mjs';
import { mintToken } from '../lib/tokens.mjs';
import { redisFor, dropPrefix, stats } from './registry-stats.mjs';

export const name = 'events';
export const description =
  'Lifecycle events: joins and leaves with events off vs on, through the registry and through a gateway (target ≤ 1.1× ' +
  'Redis and pod CPU per operation through a gateway), and webhook deliveries per second to a local receiver through the dispatcher.';

/** Target: a join or leave through a gateway with events on costs at most this many times one with them off (Redis and pod CPU). */
export const TARGET_RATIO = 1.1;
const SECRET = 'bench-webhook-secret-0123456789abcdef';
const DEFAULTS = { blocks: 6, ops: 4000, inflight: 64, sockets: 200, burst: 20_000 };

function configure(options = {}) {
  const cfg = { ...DEFAULTS };
  if (options.quick) Object.assign(cfg, { blocks: 4, ops: 2000, burst: 5000 });
  for (const k of ['blocks', 'ops', 'burst']) if (Number(options[k]) > 0) cfg[k] = Math.floor(Number(options[k]));
  return cfg;
}

async function redisCpuMs(redis) {
  const info = await redis.info('cpu');
  const field = (n) => Number(new RegExp(`^${n}:([\\d.]+)`, 'm').exec(info)?.[1]);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

/** Runs `total` calls of `op(i)` with `inflight` at a time. */
async function pool(total, inflight, op) {
  let next = 0;
  const worker = async () => {
    while (next < total) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(inflight, total) }, worker));
}

async function setup(redis, events, sockets) {
  const keyPrefix = `bench.ev.${randomUUID().slice(0, 8)}`;
  const registry = new Registry(redis, keyPrefix, events ? { events: { outboxMax: 10_000_000 } } : {});
  const instance = { id: `bench-ev-pod#${events ? 'on' : 'off'}`, pod: 'bench-ev-pod' };
  await registry.heartbeat(instance);
  const socks = Array.from({ length: sockets }, (_, i) => ({ socketId: `s${i}`, userId: `u${i}`, guest: false }));
  for (const s of socks) await registry.connect({ ...s, instance, maxConnections: 10 });
  return { keyPrefix, registry, socks };
}

/** One block: `ops` operations alternating join and leave of each socket's own room. */
async function block(redis, side, cfg) {
  const cpu0 = await redisCpuMs(redis);
  const t0 = performance.now();
  // each worker slot owns its sockets, so joins and leaves of one socket never overlap
  await pool(cfg.ops, cfg.inflight, async (i) => {
    const socket = side.socks[(i >> 1) % side.socks.length];
    const room = `public:ev-${socket.socketId}`;
    if (i % 2 === 0) await side.registry.join(socket, room);
    else await side.registry.leave(socket, room);
  });
  const elapsed = performance.now() - t0;
  const cpu = (await redisCpuMs(redis)) - cpu0;
  return { opsPerSec: (cfg.ops / elapsed) * 1000, cpuUsPerOp: (cpu * 1000) / cfg.ops };
}

async function registryCost(redis, cfg, log) {
  // the socket of op i is (i >> 1) % sockets: with 64 in flight over 200 sockets, a socket's join
  // and leave are consecutive operations, never concurrent ones
  const sides = { off: await setup(redis, false, cfg.sockets), on: await setup(redis, true, cfg.sockets) };
  const results = { off: [], on: [] };
  try {
    // a block per side first, not counted: JIT, connections, Redis' script cache
    for (const s of ['off', 'on']) await block(redis, sides[s], cfg);
    await redis.del(keys(sides.on.keyPrefix).eventOutbox);
    for (let b = 0; b < cfg.blocks; b++) {
      const order = b % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
      for (const s of order) {
        const r = await block(redis, sides[s], cfg);
        results[s].push(r);
        log(`  block ${b + 1} ${s.padEnd(3)}: ${int(r.opsPerSec)} ops/s, Redis ${r.cpuUsPerOp.toFixed(1)} µs/op`);
        // outside the timing: the relay's work, measured apart
        if (s === 'on') await redis.del(keys(sides.on.keyPrefix).eventOutbox);
      }
    }
  } finally {
    for (const s of Object.values(sides)) await dropPrefix(redis, s.keyPrefix).catch(() => {});
  }
  return results;
}

async function delivery(redisUrl, redis, cfg, log) {
  const receiver = await startWebhookReceiver(SECRET);
  const keyPrefix = `bench.wh.${randomUUID().slice(0, 8)}`;
  const config = loadDispatcherConfig({
    REDIS_URL: redisUrl,
    KEY_PREFIX: keyPrefix,
    OPS_PORT: '0',
    HOST: '127.0.0.1',
    EVENTS_QUEUE: 'true',
    WEBHOOK_URLS: receiver.url,
    WEBHOOK_SECRET: SECRET,
  });
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const commands = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const dispatcher = createDispatcher({ connection, redis: commands, logger: createLogger({ service: 'dispatcher', level: 'silent' }), registry: new Metrics() }, config);
  try {
    await dispatcher.start();
    // the registry writes under the dispatcher's prefix
    const registry = new Registry(redis, keyPrefix, { events: { outboxMax: 10_000_000 } });
    const instance = { id: 'bench-wh-pod#1', pod: 'bench-wh-pod' };
    await registry.heartbeat(instance);
    const socks = Array.from({ length: cfg.sockets }, (_, i) => ({ socketId: `s${i}`, userId: `u${i}`, guest: false }));
    for (const s of socks) await registry.connect({ ...s, instance, maxConnections: 10 });
    // the connects' user.online events come first
    const before = () => receiver.events.length;
    const deadline = Date.now() + 60_000;
    while (before() < cfg.sockets && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const start = before();
    const cpu0 = await redisCpuMs(redis);
    const t0 = performance.now();
    // a burst of joins and leaves: 2 events each
    await pool(cfg.burst, cfg.inflight, async (i) => {
      const socket = socks[(i >> 1) % socks.length];
      const room = `public:wh-${socket.socketId}`;
      if (i % 2 === 0) await registry.join(socket, room);
      else await registry.leave(socket, room);
    });
    const written = performance.now() - t0;
    const want = start + cfg.burst * 2;
    const end = Date.now() + 120_000;
    while (before() < want && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    const elapsed = performance.now() - t0;
    const cpu = (await redisCpuMs(redis)) - cpu0;
    const got = receiver.events.slice(start);
    const receivedAt = Date.now();
    const latencies = got.slice(-1000).map((e) => receivedAt - e.ts);
    const requests = receiver.requests.length;
    log(`  delivered ${int(got.length)} of ${int(cfg.burst * 2)} events in ${ms(elapsed)} (written in ${ms(written)}), ${int(requests)} requests so far`);

    // baseline: the same batches (100 events) posted straight to the receiver, one at a time
    const batches = [];
    for (let i = 0; i < got.length; i += 100) batches.push(got.slice(i, i + 100));
    const b0 = performance.now();
    for (const events of batches) {
      const body = JSON.stringify({ events });
      const ts = Date.now();
      const res = await fetch(receiver.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-switchboard-timestamp': String(ts), 'x-switchboard-signature': signWebhook(SECRET, ts, body) },
        body,
      });
      await res.body?.cancel();
    }
    const baseline = performance.now() - b0;
    await dropPrefix(redis, keyPrefix).catch(() => {});
    return {
      events: got.length,
      expected: cfg.burst * 2,
      eventsPerSec: (got.length / elapsed) * 1000,
      writtenPerSec: ((cfg.burst * 2) / written) * 1000,
      baselineEventsPerSec: (got.length / baseline) * 1000,
      redisCpuUsPerEvent: (cpu * 1000) / Math.max(1, got.length),
      refused: receiver.refused,
      latency: stats(latencies),
    };
  } finally {
    await dispatcher.close();
    connection.disconnect();
    commands.disconnect();
    await receiver.close();
  }
}

/**
 * Joins and leaves through real gateway pods, one with events off and one with them on (same
 * Redis, own prefixes), 50 Socket.IO clients each doing room:join / room:leave with acks, in
 * alternating blocks. Per side: acknowledged operations per second, pod CPU and Redis CPU per one.
 */
async function throughGateways(redisUrl, redis, cfg, log) {
  const secret = 'bench-events-jwt-secret-0123456789abcdef';
  const sides = {};
  try {
    for (const side of ['off', 'on']) {
      const keyPrefix = `bench.evgw.${side}.${randomUUID().slice(0, 6)}`;
      // events on and no dispatcher: the outbox is bounded (trimmed), as when a relay keeps up
      const env = side === 'on' ? { EVENTS_QUEUE: 'true', EVENTS_OUTBOX_MAX: '1000' } : {};
      const [pod] = await startPods({ kind: 'switchboard', count: 1, redisUrl, keyPrefix, jwtSecret: secret, env });
      const clients = [];
      for (let i = 0; i < 50; i++) {
        const socket = io(pod.url, { auth: { token: await mintToken(secret, `evgw-${i}`) }, transports: ['websocket'], reconnection: false });
        await new Promise((resolve, reject) => {
          socket.once('session:ready', resolve);
          socket.once('connect_error', reject);
        });
        clients.push(socket);
      }
      sides[side] = { pod, clients, keyPrefix, results: [] };
    }
    const ops = Math.max(1000, Math.floor(cfg.ops / 2));
    // block -1 of each side is a warm-up, not counted
    for (let b = -1; b < cfg.blocks; b++) {
      for (const name of b % 2 === 0 ? ['off', 'on'] : ['on', 'off']) {
        const side = sides[name];
        const pod0 = cpuTimeMs(side.pod.pid);
        const redis0 = await redisCpuMs(redis);
        const t0 = performance.now();
        // each client alternates join and leave of its own room
        let done = 0;
        await Promise.all(
          side.clients.map(async (socket, i) => {
            for (let k = 0; done < ops; k++) {
              done++;
              const event = k % 2 === 0 ? 'room:join' : 'room:leave';
              const ack = await socket.timeout(10_000).emitWithAck(event, { room: `public:evgw-${i}` });
              if (!ack.ok) throw new Error(`${event} refused: ${ack.error?.code}`);
            }
            // leave the room the last join left it in
            await socket.timeout(10_000).emitWithAck('room:leave', { room: `public:evgw-${i}` });
          }),
        );
        const elapsed = performance.now() - t0;
        const r = {
          opsPerSec: (done / elapsed) * 1000,
          podCpuUsPerOp: ((cpuTimeMs(side.pod.pid) - pod0) * 1000) / done,
          redisCpuUsPerOp: (((await redisCpuMs(redis)) - redis0) * 1000) / done,
        };
        if (b < 0) continue;
        side.results.push(r);
        log(`  gateway block ${b + 1} ${name.padEnd(3)}: ${int(r.opsPerSec)} ops/s, pod ${r.podCpuUsPerOp.toFixed(0)} µs/op, Redis ${r.redisCpuUsPerOp.toFixed(1)} µs/op`);
      }
    }
    return { off: sides.off.results, on: sides.on.results };
  } finally {
    for (const side of Object.values(sides)) {
      for (const c of side.clients) c.close();
      await stopPods([side.pod]);
      await dropPrefix(redis, side.keyPrefix).catch(() => {});
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const range = (xs, f) => `${f(Math.min(...xs))} – ${f(Math.max(...xs))}`;

export async function run(ctx) {
  const cfg = configure(ctx.options);
  const server = await redisFor(ctx);
  const redis = new Redis(server.url, { connectionName: 'bench:events' });
  redis.on('error', () => {});
  try {
    ctx.log(`registry cost: ${cfg.blocks} blocks of ${int(cfg.ops)} join/leave operations per side, ${cfg.inflight} in flight`);
    const cost = await registryCost(redis, cfg, ctx.log);
    ctx.log('through gateways: room:join / room:leave from 50 Socket.IO clients, events off vs on');
    const gw = await throughGateways(server.url, redis, cfg, ctx.log);
    ctx.log(`delivery: a burst of ${int(cfg.burst)} joins and leaves (${int(cfg.burst * 2)} events) to a webhook and the events queue`);
    const d = await delivery(server.url, redis, cfg, ctx.log);

    const cpu = { off: median(cost.off.map((r) => r.cpuUsPerOp)), on: median(cost.on.map((r) => r.cpuUsPerOp)) };
    const rate = { off: median(cost.off.map((r) => r.opsPerSec)), on: median(cost.on.map((r) => r.opsPerSec)) };
    const cpuRatio = cpu.on / cpu.off;
    const gwMed = (side, k) => median(gw[side].map((r) => r[k]));
    const gwRows = ['off', 'on'].map((side) => [
      `events ${side}`,
      int(gwMed(side, 'opsPerSec')),
      range(gw[side].map((r) => r.opsPerSec), int),
      `${gwMed(side, 'podCpuUsPerOp').toFixed(0)} µs`,
      `${gwMed(side, 'redisCpuUsPerOp').toFixed(1)} µs`,
    ]);
    gwRows.push([
      '**on / off**',
      ratio(gwMed('on', 'opsPerSec') / gwMed('off', 'opsPerSec')),
      '',
      ratio(gwMed('on', 'podCpuUsPerOp') / gwMed('off', 'podCpuUsPerOp')),
      ratio(gwMed('on', 'redisCpuUsPerOp') / gwMed('off', 'redisCpuUsPerOp')),
    ]);
    const complete = d.events === d.expected && d.refused === 0;
    const gwRedisRatio = gwMed('on', 'redisCpuUsPerOp') / gwMed('off', 'redisCpuUsPerOp');
    const gwPodRatio = gwMed('on', 'podCpuUsPerOp') / gwMed('off', 'podCpuUsPerOp');
    const verdict = gwRedisRatio <= TARGET_RATIO && gwPodRatio <= TARGET_RATIO && complete ? 'PASS' : 'FAIL';
    const us = (n) => `${n.toFixed(1)} µs`;
    const markdown = [
      `**Workload:** join and leave of a socket's own room through \`Registry.join\` / \`leave\` (each a transition: 2 events with events on), ` +
        `${cfg.sockets} sockets, ${cfg.inflight} in flight from one client, ${cfg.blocks} blocks of ${int(cfg.ops)} operations per side, alternating. ` +
        'Redis CPU from INFO cpu deltas (loopback Redis, also serving this client).',
      '',
      table(
        ['side', 'ops/s (median)', 'ops/s (range)', 'Redis CPU per op (median)', 'range'],
        [
          ['events off', int(rate.off), range(cost.off.map((r) => r.opsPerSec), int), us(cpu.off), range(cost.off.map((r) => r.cpuUsPerOp), us)],
          ['events on', int(rate.on), range(cost.on.map((r) => r.opsPerSec), int), us(cpu.on), range(cost.on.map((r) => r.cpuUsPerOp), us)],
          ['**on / off**', ratio(rate.on / rate.off), '', `**${ratio(cpuRatio)}**`, ''],
        ],
      ),
      '',
      `**Through a gateway:** room:join and room:leave with acks from 50 Socket.IO clients (each its own room: every operation a transition) ` +
        `on one gateway pod with events off and one with them on (\`EVENTS_QUEUE=true\`), ${cfg.blocks} alternating blocks per side.`,
      '',
      table(['side', 'acked ops/s (median)', 'range', 'pod CPU per op', 'Redis CPU per op'], gwRows),
      '',
      `**Delivery:** ${int(cfg.burst)} joins and leaves written as fast as one client can (${int(d.writtenPerSec)} events/s written), relayed by one dispatcher ` +
        'to the `events` queue and one local webhook receiver verifying every signature (batches of up to 100, one request at a time per endpoint).',
      '',
      table(
        ['figure', 'value'],
        [
          ['events delivered', `${int(d.events)} of ${int(d.expected)}${d.refused ? `, ${d.refused} refused` : ''}`],
          ['webhook events/s (transition to receipt, end to end)', int(d.eventsPerSec)],
          ['baseline: the same batches posted straight to the receiver', `${int(d.baselineEventsPerSec)} events/s`],
          ['Redis CPU per event delivered (registry + relay + queue + webhook bookkeeping)', us(d.redisCpuUsPerEvent)],
          ['latency of the last 1,000, transition to receipt: p50 / p99', `${ms(d.latency.p50)} / ${ms(d.latency.p99)}`],
        ],
      ),
      '',
      `**Verdict: ${verdict}** (target: a join or leave through a gateway with events on costs ≤ ${TARGET_RATIO}× Redis CPU and pod CPU of one with them off — ` +
        `here ${ratio(gwRedisRatio)} and ${ratio(gwPodRatio)}; every event delivered, every signature valid). ` +
        `The registry scripts alone, without the rest of a join's work, cost ${ratio(cpuRatio)}: one stream append per transition next to a script of about ${us(cpu.off)}.`,
    ].join('\n');
    return { name, title: 'Lifecycle events: registry cost and webhook delivery', verdict, markdown, data: { cost, cpu, rate, cpuRatio, gateways: gw, delivery: d } };
  } finally {
    redis.disconnect();
    await server.stop();
  }
}
