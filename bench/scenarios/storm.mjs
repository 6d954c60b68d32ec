// Reconnect storm: a pod holding N clients behind HAProxy is killed with SIGKILL; how long until every
// client is connected again to the other pods, and (Switchboard) until the registry shows the truth.
// The bare Socket.IO stack does the same, in the same run.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { deleteKeys, eventually, freePort, startHaproxy } from '@switchboard/testkit';
import { ReadModel } from '@switchboard/store';
import { now, sleep } from '../lib/clock.mjs';
import { table, int, ms, ratio } from '../lib/markdown.mjs';
import { serverAvailable, startPods, stopPods } from '../lib/pods.mjs';
import { isInterrupted } from '../lib/procs.mjs';
import { WorkerProcess } from '../lib/worker-ipc.mjs';

export const name = 'storm';
export const description =
  'Reconnect storm: a pod holding 5,000 websocket clients behind HAProxy is killed with SIGKILL; time until every client ' +
  'is connected again to the 2 other pods, and until the registry shows the truth; bare Socket.IO stack vs Switchboard.';

const CONNECTOR = fileURLToPath(new URL('../lib/connector.mjs', import.meta.url));
const SIDE_LABEL = { baseline: 'bare Socket.IO + Redis adapter', switchboard: 'Switchboard' };
const HEARTBEAT_MS = 5000; // the gateway's default: a silent pod is reaped within 3 intervals

export async function run(ctx) {
  const clients = Number(ctx.options.clients ?? (ctx.options.quick ? 1000 : 5000));
  const sides = String(ctx.options.sides ?? 'baseline,switchboard').split(',').filter((s) => s in SIDE_LABEL && serverAvailable(s));
  const results = {};
  const redis = new Redis(ctx.redisUrl, { lazyConnect: true });
  await redis.connect();
  try {
    for (const side of sides) {
      if (isInterrupted()) break;
      ctx.log(`${SIDE_LABEL[side]}:`);
      results[side] = await storm(side, clients, ctx, redis);
    }
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
  return report(clients, results);
}

async function storm(kind, clients, ctx, redis) {
  const id = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const keyPrefix = `bench.st${kind === 'baseline' ? 'b' : 's'}.${id}`;
  const jwtSecret = randomBytes(32).toString('base64url');
  const ports = [];
  while (ports.length < 3) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const pods = [];
  let lb;
  const connector = new WorkerProcess(CONNECTOR, { label: `bench-storm-${kind}`, env: { ...process.env, NODE_ENV: 'production' } });
  const start = async (i) => {
    const [pod] = await startPods({ kind, count: 1, redisUrl: ctx.redisUrl, keyPrefix, jwtSecret, ports: [ports[i]], env: { POD_ID: `storm-${kind}-${'abc'[i]}` } });
    pods.push(pod);
    return pod;
  };
  try {
    // Only pod A is up while the clients connect, so that it holds all of them.
    const a = await start(0);
    lb = await startHaproxy({ gateways: ports.map((p) => `127.0.0.1:${p}`), checkIntervalMs: 200, stats: true });
    await eventually(async () => (await serversUp(lb)) >= 1, { timeoutMs: 10_000, intervalMs: 100, what: 'HAProxy sending to pod A' });
    const userIds = Array.from({ length: clients }, (_, i) => `storm-${id}-u${i}`);
    const c = await connector.call('connect', { url: lb.url, userIds, jwtSecret, inFlight: 100, reconnection: true, timeoutMs: 30_000 }, 600_000);
    if (c.connected < clients) throw new Error(`only ${c.connected}/${clients} clients connected: ${JSON.stringify(c.failures)}`);
    await start(1);
    await start(2);
    // HAProxy puts B and C in after 2 passed checks (200 ms apart)
    await eventually(async () => (await serversUp(lb)) === 3, { timeoutMs: 10_000, intervalMs: 100, what: 'HAProxy sending to pods B and C' });
    const model = kind === 'switchboard' ? new ReadModel(redis, keyPrefix) : undefined;
    if (model) {
      const before = await model.counts();
      ctx.log(`  registry before the kill: ${before.connections} connections on ${before.pods.length} pods`);
    }

    const t0 = now();
    a.child.kill('SIGKILL');
    ctx.log(`  ${clients} clients on pod A; pod A killed (SIGKILL)`);
    let allBackMs;
    let registryMs;
    let last = { connectedSince: 0 };
    const deadline = t0 + 90_000;
    while (now() < deadline && !isInterrupted() && (allBackMs === undefined || (model && registryMs === undefined))) {
      await sleep(100);
      if (allBackMs === undefined) {
        last = await connector.call('status', { since: t0 });
        if (last.connectedSince >= clients && last.connected >= clients) allBackMs = last.lastConnectAt - t0;
      }
      if (model && registryMs === undefined) {
        const counts = await model.counts();
        const truth = counts.connections === clients && counts.usersOnline === clients && counts.pods.length === 2 && !counts.pods.some((p) => p.id === `storm-${kind}-a`);
        if (truth && allBackMs !== undefined) registryMs = now() - t0;
      }
    }
    const r = { clients, allBackMs, registryMs, reconnected: last.connectedSince };
    ctx.log(`  every client connected again after ${ms(allBackMs)}${model ? `, registry true after ${ms(registryMs)}` : ''}`);
    return r;
  } finally {
    await connector.close();
    await stopPods(pods);
    await lb?.stop();
    await deleteKeys(redis, keyPrefix);
  }
}

/** Gateways HAProxy currently sends to (its stats page as CSV: one line per server, status UP). */
async function serversUp(lb) {
  const res = await fetch(`${lb.statsUrl}/stats;csv`, { signal: AbortSignal.timeout(1000) });
  const csv = await res.text();
  return csv.split('\n').filter((line) => line.startsWith('gateways,gw') && line.split(',')[17] === 'UP').length;
}

function report(clients, results) {
  const b = results.baseline;
  const s = results.switchboard;
  const cell = (r, fn) => (r ? fn(r) : 'not run');
  const rows = [
    ['Every client connected again (kill → last reconnect)', cell(b, (r) => ms(r.allBackMs)), cell(s, (r) => ms(r.allBackMs)), b && s ? ratio(s.allBackMs / b.allBackMs) : ''],
    ['Clients reconnected', cell(b, (r) => `${int(r.reconnected)} / ${int(clients)}`), cell(s, (r) => `${int(r.reconnected)} / ${int(clients)}`), ''],
    ['Registry shows the truth (kill → counts exact, dead pod reaped)', 'no registry', cell(s, (r) => ms(r.registryMs)), ''],
  ];
  const ok = b?.allBackMs !== undefined && s?.allBackMs !== undefined && s.registryMs !== undefined;
  return {
    name,
    title: 'storm — reconnect storm after a pod is killed',
    verdict: ok ? 'PASS' : b && s ? 'FAIL' : 'INCOMPLETE',
    markdown: [
      `**Workload:** 3 pods behind HAProxy (\`deploy/haproxy/haproxy.cfg\`, checks every 200 ms), ${int(clients)} websocket clients ` +
        '(one user and token each, Socket.IO client reconnection: 1 s ± 50 % first delay, at most 5 s) all connected to pod A ' +
        '(B and C started after), then pod A killed with SIGKILL. The registry is true when its counts equal the clients ' +
        `and pod A is gone from it, which the reaper does within 3 heartbeat intervals (${HEARTBEAT_MS / 1000} s, the default). ` +
        '`PASS` when every client came back and the registry became true within 90 s.',
      '',
      table(['figure', SIDE_LABEL.baseline, SIDE_LABEL.switchboard, 'Switchboard / bare'], rows),
    ].join('\n'),
    data: results,
  };
}
