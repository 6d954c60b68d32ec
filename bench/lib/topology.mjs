// One side of a comparison, fully set up: N pods on one Redis key prefix, receiver worker processes
// whose clients have joined the room (spread evenly over the pods), and a publisher on the first pod.
import { randomBytes } from 'node:crypto';
import { collect, GC_NODE_ARGS } from './pod-stats.mjs';
import { startPods, stopPods } from './pods.mjs';
import { childPidsNamed, rssBytes } from './procs.mjs';
import { Publisher } from './publisher.mjs';
import { ReceiverPool } from './receiver-pool.mjs';

/**
 * @param {object} o
 * @param {'baseline'|'switchboard'} o.kind
 * @param {string} [o.script]        server entry point relative to the repository root (default per kind)
 * @param {string} [o.redisUrl]
 * @param {Record<string,string>} [o.redisEnv] instead of `redisUrl`: the topology's variables (Switchboard pods only)
 * @param {Record<string,string>} [o.podEnv] extra pod environment
 * @param {string} [o.label]         names the side in the key prefix (default: base / sb)
 * @param {number} o.pods            pod processes
 * @param {number} o.workers         receiver processes (worker i connects to pod i mod pods)
 * @param {number} o.receivers       receiver clients in total (unique users)
 * @param {string} o.room
 * @param {number} o.padBytes
 * @param {number} o.batchSize       clients connecting at once, per worker
 * @param {number} o.connectTimeoutMs
 */
export async function startTopology({ kind, script, redisUrl, redisEnv, podEnv, label, pods: podCount, workers, receivers, room, padBytes, batchSize, connectTimeoutMs, log }) {
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  // The gateway accepts [A-Za-z0-9._-]{1,32}; the adapter channel becomes `<prefix>:io`.
  const keyPrefix = `bench.${label ?? (kind === 'baseline' ? 'base' : 'sb')}.${runId}`;
  const jwtSecret = randomBytes(32).toString('base64url');
  const closers = [];
  const close = async () => {
    for (const fn of closers.reverse()) await Promise.resolve().then(fn).catch(() => {});
    closers.length = 0;
  };

  try {
    const pods = await startPods({ kind, script, count: podCount, redisUrl, redisEnv, env: podEnv, keyPrefix, jwtSecret, nodeArgs: GC_NODE_ARGS });
    closers.push(() => stopPods(pods));
    log?.(`${pods.length} pods ready (${pods.map((p) => `${p.id} :${p.port}`).join(', ')}), key prefix ${keyPrefix}`);

    const pool = new ReceiverPool(workers, `bench-${label ?? kind}`);
    closers.push(() => pool.close());
    const perWorker = receivers / workers;
    const assignments = pool.workers.map((_, w) => ({
      url: pods[w % pods.length].url,
      userIds: Array.from({ length: perWorker }, (_, i) => `bench-${runId}-u${w * perWorker + i}`),
    }));
    const rss = () => pods.reduce((sum, p) => sum + (rssBytes(p.pid) ?? NaN), 0);
    const rssBefore = rss();
    const connect = await pool.connect(assignments, { jwtSecret, room, batchSize, timeoutMs: connectTimeoutMs });
    // what the pods hold per connected client (resident memory, all pods; includes garbage not yet collected)
    connect.podRssPerClient = (rss() - rssBefore) / receivers;
    connect.podRssAfter = rss();
    log?.(`${connect.joined}/${receivers} receivers joined ${room} in ${(connect.ms / 1000).toFixed(1)} s`);
    if (connect.joined < receivers) {
      throw new Error(`only ${connect.joined}/${receivers} receivers joined ${room}: ${JSON.stringify(connect.failures)}`);
    }
    // what the set-up left behind (for Switchboard, the member_joined fan-out of 1,000 joins) is
    // collected on every pod of either side before anything is measured
    await Promise.all(pods.map((p) => collect(p.pid, 500)));

    const publisher = await Publisher.connect({
      url: pods[0].url,
      jwtSecret,
      userId: `bench-${runId}-publisher`,
      room,
      padBytes,
      timeoutMs: connectTimeoutMs,
    });
    closers.push(() => publisher.close());

    const podPids = pods.map((p) => p.pid);
    return {
      kind,
      keyPrefix,
      pods: pods.map((p) => p.id),
      connect,
      env: { pool, publisher, podPids, benchPids: [...podPids, ...pool.pids, process.pid, ...childPidsNamed('redis-server')] },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
