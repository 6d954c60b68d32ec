// Idle connections a machine holds: 20,000 on one Switchboard pod, 50,000 across 3 pods, counts
// checked exact in the registry. A scenario, not a CI test: it runs only when named.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { ReadModel } from '@switchboard/store';
import { sleep } from '../lib/clock.mjs';
import { table, int } from '../lib/markdown.mjs';
import { rssBytes } from '../lib/pod-stats.mjs';
import { serverAvailable, startPods, stopPods } from '../lib/pods.mjs';
import { WorkerProcess } from '../lib/worker-ipc.mjs';

export const name = 'capacity';
export const optIn = true;
export const description =
  'Idle authenticated websocket connections: 20,000 on one Switchboard pod, then 50,000 across 3 pods, registry counts ' +
  'checked exact (heavy: run it by name).';

const CONNECTOR = fileURLToPath(new URL('../lib/connector.mjs', import.meta.url));
/** Clients per connecting process: each client is one file descriptor there. */
const PER_WORKER = 9000;

export async function run(ctx) {
  if (!serverAvailable('switchboard')) return { name, verdict: 'INCOMPLETE', markdown: 'gateway not built' };
  const plans = [
    { label: '1 pod', pods: 1, clients: Number(ctx.options.one ?? 20_000) },
    { label: '3 pods', pods: 3, clients: Number(ctx.options.three ?? 50_000) },
  ];
  const redis = new Redis(ctx.redisUrl, { lazyConnect: true });
  await redis.connect();
  const rows = [];
  try {
    for (const plan of plans) rows.push(await hold(plan, ctx, redis));
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
  const pass = rows.every((r) => r.exact);
  return {
    name,
    title: 'capacity — idle connections on one machine',
    verdict: pass ? 'PASS' : 'FAIL',
    markdown: [
      `**Workload:** idle websocket clients (one user and HS256 token each, 100 in flight per connecting process, at most ` +
        `${int(PER_WORKER)} per process), spread round-robin over the pods. Limits on this machine: the open-files limit ` +
        '(`ulimit -n`, each connection is one descriptor in its pod and one in its client process) and the loopback ' +
        'ephemeral ports (`net.ipv4.ip_local_port_range`, per destination port); a pod past its descriptor limit refuses ' +
        'the extra connections, which shows as a count below the target.',
      '',
      table(
        ['population', 'connected', 'registry connections', 'registry users online', 'pods RSS', 'time to connect', 'exact'],
        rows.map((r) => [r.label, int(r.connected), int(r.registry.connections), int(r.registry.usersOnline), r.rss, `${(r.ms / 1000).toFixed(1)} s`, r.exact ? 'yes' : `**no** (${r.note})`]),
      ),
    ].join('\n'),
    data: rows,
  };
}

async function hold({ label, pods: count, clients }, ctx, redis) {
  const id = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const keyPrefix = `bench.cap.${id}`;
  const jwtSecret = randomBytes(32).toString('base64url');
  const pods = await startPods({ kind: 'switchboard', count, redisUrl: ctx.redisUrl, keyPrefix, jwtSecret });
  const workers = Array.from({ length: Math.ceil(clients / PER_WORKER) }, (_, i) =>
    new WorkerProcess(CONNECTOR, { label: `bench-capacity-${i}`, env: { ...process.env, NODE_ENV: 'production' } }),
  );
  try {
    ctx.log(`${label}: ${int(clients)} clients from ${workers.length} processes…`);
    const t0 = Date.now();
    const results = await Promise.all(
      workers.map((w, i) => {
        const n = Math.min(PER_WORKER, clients - i * PER_WORKER);
        const userIds = Array.from({ length: n }, (_, j) => `cap-${id}-u${i * PER_WORKER + j}`);
        return w.call('connect', { url: pods[i % count].url, userIds, jwtSecret, inFlight: 100, timeoutMs: 30_000 }, 900_000);
      }),
    );
    const connected = results.reduce((s, r) => s + r.connected, 0);
    const ms = Date.now() - t0;
    await sleep(1000);
    const registry = await new ReadModel(redis, keyPrefix).counts();
    const rss = pods.map((p) => `${Math.round(rssBytes(p.pid) / 2 ** 20)} MiB`).join(' + ');
    const failures = Object.assign({}, ...results.map((r) => r.failures));
    const exact = connected === clients && registry.connections === clients && registry.usersOnline === clients;
    ctx.log(`  ${int(connected)} connected in ${(ms / 1000).toFixed(1)} s; registry ${int(registry.connections)}; RSS ${rss}`);
    return { label, clients, connected, registry, rss, ms, exact, note: JSON.stringify(failures).slice(0, 200) };
  } finally {
    await Promise.allSettled(workers.map((w) => w.close(10_000)));
    await stopPods(pods);
  }
}
