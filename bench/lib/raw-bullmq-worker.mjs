// Raw BullMQ worker (forked by the notifications scenario): the reference the dispatcher is measured
// against. A plain `Worker` on the same queue name, under its own key prefix, with a no-op processor
// and the dispatcher's concurrency: what BullMQ itself costs per job, with no delivery work.
//
// Env: REDIS_URL, KEY_PREFIX, QUEUE, CONCURRENCY. Tells the parent { type: 'ready' } once the worker
// is connected; answers { id, type: 'count' } with { id, ok, result: { completed, failed } } and
// exits on { type: 'close' } or when the parent goes away.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const { REDIS_URL, KEY_PREFIX, QUEUE, CONCURRENCY } = process.env;
if (!REDIS_URL || !KEY_PREFIX || !QUEUE) {
  console.error('REDIS_URL, KEY_PREFIX and QUEUE are required');
  process.exit(2);
}

const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null, connectionName: 'bench:raw-worker' });
connection.on('error', () => {});
let completed = 0;
let failed = 0;

const worker = new Worker(QUEUE, async () => {}, {
  connection,
  prefix: KEY_PREFIX,
  concurrency: Math.max(1, Number(CONCURRENCY) || 1),
});
worker.on('completed', () => completed++);
worker.on('failed', () => failed++);
worker.on('error', () => {});

async function close() {
  const timer = setTimeout(() => process.exit(0), 2000);
  try {
    await worker.close(true);
    connection.disconnect();
  } finally {
    clearTimeout(timer);
    process.exit(0);
  }
}

process.on('message', (msg) => {
  if (msg?.type === 'count') process.send?.({ id: msg.id, ok: true, result: { completed, failed } });
  else if (msg?.type === 'close') void close();
});
// The parent went away (crash, SIGKILL): do not linger.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => void close());

await worker.waitUntilReady();
process.send?.({ type: 'ready' });
