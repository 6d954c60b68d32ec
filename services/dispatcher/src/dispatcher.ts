import { Queue, Worker, type Job } from 'bullmq';
import type { Registry } from 'prom-client';
import type { DispatcherConfig } from '@switchboard/config';
import { startOpsServer, type Logger, type OpsServer } from '@switchboard/observability';
import { ioKey, NOTIFICATIONS_QUEUE } from '@switchboard/protocol';
import {
  BroadcastEncoder,
  EventOutbox,
  InboxStore,
  keys,
  NotificationLedger,
  pingWithin,
  queuePrefix,
  throttled,
  waitForReplicas,
  WebhookBacklog,
  type RedisClient,
} from '@switchboard/store';
import { deliver, IdConflictError, InvalidJobError, type DeliverDeps } from './deliver.js';
import { createEventRelay, type EventRelay } from './events.js';
import { createDispatcherMetrics, createEventMetrics, type DispatcherMetrics } from './metrics.js';
import { createWebhookWorker } from './webhooks.js';
import { watchOrphans } from './orphans.js';
import { watchRedis, type Watchdog } from './watchdog.js';

export interface DispatcherDeps {
  /** BullMQ's connection: `maxRetriesPerRequest: null`. */
  connection: RedisClient;
  /** Deliveries (inbox writes and publishes to the gateways) and readiness. */
  redis: RedisClient;
  logger: Logger;
  registry: Registry;
}

export interface DispatcherHooks {
  /** Redis stayed unreachable longer than `redisDownExitMs`; the process should exit non-zero. */
  onFatal?: (err: Error) => void;
}

export interface Dispatcher {
  readonly worker: Worker;
  readonly queue: Queue;
  readonly inbox: InboxStore;
  readonly metrics: DispatcherMetrics;
  /** With lifecycle events on (SPEC §7a): the outbox relay. */
  readonly relay: EventRelay | undefined;
  /** With webhooks on: the worker delivering the queue `webhooks`. */
  readonly webhookWorker: Worker | undefined;
  /** The ops server's port once started. */
  readonly opsPort: number | undefined;
  /** Starts the ops server and the worker. */
  start(): Promise<void>;
  /** Redis answers and the dispatcher is not closing. */
  ready(): Promise<boolean>;
  /**
   * Stops taking jobs and lets active ones finish within the shutdown timeout, then hands the
   * rest back (another dispatcher picks them up once their lock expires). Leaves the deps' clients open.
   */
  close(): Promise<void>;
}

const READY_TIMEOUT_MS = 1000;


/**
 * The notification dispatcher (SPEC §6): a BullMQ worker on the `notifications` queue that
 * stores user notifications in their inboxes and publishes every notification through the
 * Socket.IO Redis emitter.
 *
 * Retries come from each job's options. The producer SDK sets attempts and exponential backoff;
 * producers using plain BullMQ should pass `attempts` and `backoff` too, or a failed job is not retried.
 * A job held by a worker that died is retried once its lock expires: the lock lasts
 * `stalledIntervalMs` and is checked as often.
 */
export function createDispatcher(deps: DispatcherDeps, config: DispatcherConfig, hooks: DispatcherHooks = {}): Dispatcher {
  const { logger } = deps;
  const inbox = new InboxStore(deps.redis, keys(config.keyPrefix), config.inbox);
  // On the worker's connection, which holds BullMQ's scripts already: the delivery client stays
  // free of them (ioredis copies every script of a client into each of its pipelines).
  const prefix = queuePrefix(config.keyPrefix, config.redis.topology.kind === 'cluster');
  const queue = new Queue(NOTIFICATIONS_QUEUE, { connection: deps.connection, prefix });
  const metrics = createDispatcherMetrics(deps.registry, queue);
  const deliverDeps: DeliverDeps = {
    inbox,
    ledger: new NotificationLedger(deps.redis, keys(config.keyPrefix), config.idempotencyWindowSec),
    // Encodes as the gateways' adapter decodes: same key, same pub/sub mode.
    encoder: new BroadcastEncoder(ioKey(config.keyPrefix), config.redis.pubsubMode),
    leaseMs: config.stalledIntervalMs,
    replicated: () => waitForReplicas(deps.redis, config.redis.waitReplicas, config.redis.waitTimeoutMs),
    // one round trip per delivery where the ledger and the inboxes share a server and no WAIT comes between
    oneStep: config.redis.topology.kind !== 'cluster' && !config.redis.waitReplicas,
  };
  const warn = throttled((obj: object, msg: string) => logger.warn(obj, msg), 5000);

  const worker = new Worker(
    NOTIFICATIONS_QUEUE,
    async (job: Job<unknown>, token?: string) => {
      const stop = metrics.jobDuration.startTimer();
      const untrack = orphans.track(job.id!);
      try {
        const delivery = await deliver(deliverDeps, job, token);
        if (delivery.duplicate) {
          logger.debug({ jobId: job.id, id: delivery.notification.id }, 'notification delivered already: nothing sent');
          return 'duplicate';
        }
        const due = job.timestamp + (job.opts.delay ?? 0);
        metrics.deliveryLatency.observe(Math.max(0, Date.now() - due) / 1000);
        logger.debug(
          { jobId: job.id, id: delivery.notification.id, type: delivery.notification.type, target: delivery.target },
          'notification delivered',
        );
        return 'delivered';
      } finally {
        untrack();
        stop();
      }
    },
    {
      connection: deps.connection,
      prefix,
      concurrency: config.concurrency,
      stalledInterval: config.stalledIntervalMs,
      lockDuration: config.stalledIntervalMs,
      maxStalledCount: 1,
      autorun: false,
    },
  );

  const orphans = watchOrphans({ worker, queue, connection: deps.connection, logger });

  const relay = config.events && startEvents(config.events);
  const webhookWorker =
    config.events?.webhooks && relay?.webhooksQueue
      ? createWebhookWorker(
          { redis: deps.redis, connection: deps.connection, logger, metrics: relay.metrics, queue: relay.webhooksQueue },
          { keyPrefix: config.keyPrefix, queuePrefix: prefix, webhooks: config.events.webhooks, stalledIntervalMs: config.stalledIntervalMs },
        )
      : undefined;

  function startEvents(events: NonNullable<DispatcherConfig['events']>) {
    const outbox = new EventOutbox(deps.redis, config.keyPrefix);
    const backlog = new WebhookBacklog(deps.redis, config.keyPrefix);
    const endpoints = events.webhooks?.endpoints ?? [];
    const eventMetrics = createEventMetrics(deps.registry, {
      outboxLength: () => outbox.length(),
      endpoints: endpoints.map((e) => e.label),
      pending: async () => new Map(await Promise.all(endpoints.map(async (e) => [e.label, await backlog.pending(e.id)] as const))),
    });
    const r = createEventRelay({ redis: deps.redis, connection: deps.connection, logger, metrics: eventMetrics }, { keyPrefix: config.keyPrefix, queuePrefix: prefix, events });
    return Object.assign(r, { metrics: eventMetrics });
  }

  worker.on('completed', (_job, result) => metrics.jobs.inc({ result: result === 'duplicate' ? 'duplicate' : 'completed' }));
  worker.on('failed', (job, err) => {
    if (!job) return;
    const base = { jobId: job.id, ...loggable(job.data), attemptsMade: job.attemptsMade, reason: err.message };
    if (err instanceof InvalidJobError) {
      metrics.jobs.inc({ result: 'invalid' });
      logger.warn(base, 'invalid notification job');
    } else if (err instanceof IdConflictError) {
      metrics.jobs.inc({ result: 'conflict' });
      logger.warn(base, 'notification id reused with other content');
    } else if (err.name !== 'UnrecoverableError' && job.attemptsMade < (job.opts.attempts ?? 1)) {
      metrics.jobs.inc({ result: 'retried' });
      logger.warn(base, 'notification job failed, will retry');
    } else {
      metrics.jobs.inc({ result: 'failed' });
      logger.error(base, 'notification job failed');
    }
  });
  worker.on('stalled', (jobId) => logger.warn({ jobId }, 'notification job stalled, retrying'));
  worker.on('error', (err) => warn({ err: { message: err.message } }, 'worker error'));
  queue.on('error', (err) => warn({ err: { message: err.message } }, 'queue error'));

  let ops: OpsServer | undefined;
  let watchdog: Watchdog | undefined;
  let running: Promise<void> | undefined;
  let closing: Promise<void> | undefined;

  async function ready(): Promise<boolean> {
    if (closing || !running) return false;
    if (deps.connection.status !== 'ready') return false;
    return pingWithin(deps.redis, READY_TIMEOUT_MS);
  }

  async function shutdown(): Promise<void> {
    watchdog?.stop();
    orphans.stop();
    const drainMs = Math.max(100, Math.floor(config.shutdownTimeoutMs * 0.8));
    const drained = await within(Promise.all([worker.close(), webhookWorker?.close(), relay?.close()]), drainMs);
    if (!drained) {
      logger.warn({ drainMs }, 'active jobs did not finish in time; handing them back');
      await within(Promise.all([worker.close(true), webhookWorker?.close(true)]), 1000);
    }
    await within(queue.close(), 1000);
    await ops?.close();
  }

  return {
    worker,
    queue,
    inbox,
    metrics,
    relay: relay || undefined,
    webhookWorker,
    get opsPort() {
      return ops?.port;
    },

    async start() {
      if (running) return;
      ops = await startOpsServer({
        port: config.opsPort,
        host: config.host,
        registry: deps.registry,
        checks: { ready },
        logger,
      });
      running = worker.run().catch((err: unknown) => {
        logger.error({ err }, 'worker stopped');
      });
      webhookWorker?.run().catch((err: unknown) => {
        logger.error({ err }, 'webhook worker stopped');
      });
      relay?.start();
      watchdog = watchRedis([deps.connection, deps.redis], config.redisDownExitMs, (downMs) => {
        logger.fatal({ downMs }, 'redis unreachable for too long');
        hooks.onFatal?.(new Error(`redis unreachable for ${downMs} ms`));
      });
      logger.info(
        {
          opsPort: ops.port,
          concurrency: config.concurrency,
          keyPrefix: config.keyPrefix,
          events: config.events ? { queue: !!config.events.queue, webhooks: config.events.webhooks?.endpoints.map((e) => e.label) ?? [] } : false,
        },
        'dispatcher started',
      );
    },

    ready,

    close() {
      closing ??= shutdown();
      return closing;
    },
  };
}

/** What may be logged of a job: its type, target kind and id, never its content. */
function loggable(data: unknown): { type?: string; target?: string; id?: string } {
  if (typeof data !== 'object' || data === null) return {};
  const d = data as { type?: unknown; id?: unknown; to?: unknown };
  const out: { type?: string; target?: string; id?: string } = {};
  if (typeof d.type === 'string') out.type = d.type.slice(0, 64);
  if (typeof d.id === 'string') out.id = d.id.slice(0, 128);
  if (typeof d.to === 'object' && d.to !== null) {
    const kind = (['userId', 'userIds', 'room', 'broadcast'] as const).find((k) => k in (d.to as object));
    if (kind) out.target = kind === 'userId' ? 'user' : kind === 'userIds' ? 'users' : kind;
  }
  return out;
}

/** Resolves true when `p` settles within `ms`, false otherwise. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
