import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import type { DispatcherEventsConfig, WebhookEndpoint } from '@switchboard/config';
import type { Logger } from '@switchboard/observability';
import { EVENTS_QUEUE, lifecycleEventRoom, type LifecycleEvent, WEBHOOKS_QUEUE, type WebhookJob } from '@switchboard/protocol';
import { EventOutbox, keys, throttled, WebhookBacklog, type OutboxEntry, type OutboxPosition, type RedisClient } from '@switchboard/store';
import type { EventMetrics } from './metrics.js';
import { dropJobOptions, deliverJobOptions } from './webhooks.js';

/**
 * The relay (SPEC §7a): one dispatcher at a time (a lease in the registry's slot) reads the
 * lifecycle-event outbox in order and hands each batch on: to the `events` queue (job id = event
 * id) and to every webhook endpoint's pending events, whose batch-job chain it starts. Only then
 * are the entries deleted, so a relay that dies midway leaves them to the next one, which hands
 * them on again: the queue keeps the first job of an id, an endpoint skips what it took already.
 */

export interface EventRelayDeps {
  /** Commands: the lease, the endpoints' pending events, deletes. */
  redis: RedisClient;
  /** BullMQ's connection (`maxRetriesPerRequest: null`), for the `events` and `webhooks` queues. */
  connection: RedisClient;
  logger: Logger;
  metrics: EventMetrics;
}

export interface EventRelayOptions {
  keyPrefix: string;
  /** The queues' prefix (`{<KEY_PREFIX>}` on Cluster). */
  queuePrefix: string;
  events: DispatcherEventsConfig;
  /** How long a relay holds the lease without renewing it. @default 5000 */
  leaseMs?: number;
  /** Most outbox entries handed on at once. @default 500 */
  batchSize?: number;
}

export interface EventRelay {
  /** Whether this dispatcher holds the lease now. */
  readonly leader: boolean;
  readonly webhooksQueue: Queue<WebhookJob> | undefined;
  readonly eventsQueue: Queue<LifecycleEvent> | undefined;
  start(): void;
  /** Stops reading and gives up the lease; leaves the deps' clients open. */
  close(): Promise<void>;
}

// Renews the lease if this relay holds it. KEYS: lock. ARGV: token, lease (ms).
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;
// Gives the lease up if this relay holds it. KEYS: lock. ARGV: token.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Whether an event goes to an endpoint: user events always, room events of the prefixes (none: all). */
export function passes(event: LifecycleEvent, roomPrefixes: readonly string[]): boolean {
  const room = lifecycleEventRoom(event);
  return room === undefined || !roomPrefixes.length || roomPrefixes.some((p) => room.startsWith(p));
}

export function createEventRelay(deps: EventRelayDeps, options: EventRelayOptions): EventRelay {
  const { logger, metrics } = deps;
  const config = options.events;
  const leaseMs = options.leaseMs ?? 5000;
  const batchSize = options.batchSize ?? 500;
  const k = keys(options.keyPrefix);
  const outbox = new EventOutbox(deps.redis, options.keyPrefix);
  const backlog = new WebhookBacklog(deps.redis, options.keyPrefix);
  const token = randomBytes(12).toString('hex');
  const webhooks = config.webhooks;
  const eventsQueue = config.queue ? new Queue<LifecycleEvent>(EVENTS_QUEUE, { connection: deps.connection, prefix: options.queuePrefix }) : undefined;
  const webhooksQueue = webhooks ? new Queue<WebhookJob>(WEBHOOKS_QUEUE, { connection: deps.connection, prefix: options.queuePrefix }) : undefined;
  const warn = throttled((obj: object, msg: string) => logger.warn(obj, msg), 5000);
  eventsQueue?.on('error', (err) => warn({ err: { message: err.message } }, 'events queue error'));
  webhooksQueue?.on('error', (err) => warn({ err: { message: err.message } }, 'webhooks queue error'));

  // A blocking XREAD holds its connection: it gets one of its own, closed to end the wait.
  let blocking: RedisClient | undefined;
  let leader = false;
  let stopped = false;
  let loop: Promise<void> | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  // chains seen stuck at the last sweep: endpoint id → job id
  let stuck = new Map<string, string>();

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  async function acquire(): Promise<boolean> {
    const got = await deps.redis.set(k.eventRelayLock, token, 'PX', leaseMs, 'NX');
    if (got === 'OK') return true;
    // a restart of this relay keeps nothing; the lease may still name this token after an error
    return (await deps.redis.eval(RENEW, 1, k.eventRelayLock, token, leaseMs)) === 1;
  }

  async function renew(): Promise<void> {
    if (!leader || stopped) return;
    try {
      if ((await deps.redis.eval(RENEW, 1, k.eventRelayLock, token, leaseMs)) !== 1) {
        leader = false;
        logger.warn('lost the lifecycle-event relay lease: another dispatcher relays');
      }
    } catch (err) {
      // unknown: stop handing on until the lease is held again for sure
      leader = false;
      warn({ err: { message: (err as Error).message } }, 'cannot renew the lifecycle-event relay lease');
    }
  }

  async function handOn(entries: OutboxEntry[]): Promise<void> {
    if (eventsQueue && config.queue) {
      const max = config.queue.maxJobs;
      await eventsQueue.addBulk(
        entries.map(({ event }) => ({
          name: event.type,
          data: event,
          opts: { jobId: event.id, removeOnComplete: { count: max }, removeOnFail: { count: max } },
        })),
      );
      // a queue nobody consumes keeps the newest `max` waiting jobs
      const waiting = await eventsQueue.getWaitingCount();
      if (waiting > max) {
        const removed = await eventsQueue.clean(0, waiting - max, 'wait');
        metrics.queueTrimmed.inc(removed.length);
        warn({ removed: removed.length, max }, 'the events queue holds more waiting jobs than EVENTS_QUEUE_MAX: the oldest were removed');
      }
    }
    const taken = webhooks ? entries.filter((e) => passes(e.event, webhooks.roomPrefixes)) : [];
    if (webhooks && webhooksQueue && taken.length) {
      for (const endpoint of webhooks.endpoints) {
        const result = await backlog.append(endpoint.id, taken, webhooks.maxPending);
        if (result.kick) await addDeliver(endpoint, result.kick, webhooks.batchMs);
        if (result.dropped.length) await keepDropped(endpoint, result.dropped, webhooks.maxPending);
      }
    }
    for (const { event } of entries) metrics.relayed.inc({ type: event.type });
  }

  async function addDeliver(endpoint: WebhookEndpoint, jobId: string, delay: number): Promise<void> {
    await webhooksQueue!.add('deliver', { kind: 'deliver', endpoint: endpoint.id }, { ...deliverJobOptions, jobId, delay });
  }

  async function keepDropped(endpoint: WebhookEndpoint, events: LifecycleEvent[], maxPending: number): Promise<void> {
    metrics.webhookEvents.inc({ endpoint: endpoint.label, result: 'dropped' }, events.length);
    const reason = `endpoint backlog over WEBHOOK_MAX_PENDING (${maxPending}): the oldest events were set aside`;
    await webhooksQueue!.add(
      'dropped',
      { kind: 'dropped', endpoint: endpoint.id, events, reason },
      { ...dropJobOptions, jobId: `${endpoint.id}-d${events[0]!.id}` },
    );
    logger.error({ endpoint: endpoint.label, events: events.length, maxPending }, 'webhook endpoint backlog full: oldest events set aside as a failed batch');
  }

  /** Restarts a chain whose job is gone (a dispatcher died between naming and adding it), or that nothing started. */
  async function sweep(): Promise<void> {
    if (!webhooks || !webhooksQueue || !leader) return;
    const seen = new Map<string, string>();
    for (const endpoint of webhooks.endpoints) {
      const inflight = await backlog.inflight(endpoint.id);
      if (!inflight) {
        const kick = await backlog.kick(endpoint.id);
        if (kick) await addDeliver(endpoint, kick, 0);
        continue;
      }
      if (await webhooksQueue.getJob(inflight)) continue;
      // missing twice in a row: not a job about to be added by the worker that named it
      if (stuck.get(endpoint.id) === inflight) {
        logger.warn({ endpoint: endpoint.label, jobId: inflight }, 'webhook batch job missing: added again');
        await addDeliver(endpoint, inflight, 0);
      } else seen.set(endpoint.id, inflight);
    }
    stuck = seen;
  }

  async function run(): Promise<void> {
    let cursor = '0-0';
    let position: OutboxPosition | undefined;
    while (!stopped) {
      try {
        if (!leader) {
          leader = await acquire();
          if (!leader) {
            await pause(Math.max(100, Math.floor(leaseMs / 3)));
            continue;
          }
          // the previous relay deleted what it handed on: whatever is left comes again
          cursor = '0-0';
          position = undefined;
          logger.info('relaying lifecycle events');
        }
        position ??= await outbox.position();
        const batch = await outbox.readBatch(cursor, batchSize, position, { blockMs: 1000, blocking: blocking! });
        if (!leader || stopped) continue; // lost the lease while waiting: the next holder reads these
        if (!batch.streamIds.length) continue;
        if (batch.entries.length) await handOn(batch.entries);
        for (const bad of batch.invalid) logger.error({ streamId: bad.streamId, reason: bad.reason }, 'outbox entry no registry script writes: deleted');
        const lost = await outbox.commit(batch);
        if (lost) {
          metrics.lost.inc(lost);
          logger.error(
            { lostChanges: lost, outboxMax: config.outboxMax },
            'lifecycle events lost: the outbox was full (EVENTS_OUTBOX_MAX) before the relay read them',
          );
        }
        cursor = batch.lastId;
        position = batch.position;
      } catch (err) {
        if (stopped) break;
        warn({ err: { message: (err as Error).message } }, 'lifecycle-event relay failed; retrying');
        // from the start and the position Redis holds: nothing handed on is taken as done
        cursor = '0-0';
        position = undefined;
        await pause(500);
      }
    }
  }

  return {
    get leader() {
      return leader;
    },
    eventsQueue,
    webhooksQueue,

    start() {
      if (loop) return;
      blocking = deps.redis.duplicate();
      blocking.on('error', () => {}); // its failures reach the read, which retries
      loop = run();
      renewTimer = setInterval(() => void renew(), Math.max(50, Math.floor(leaseMs / 3)));
      sweepTimer = setInterval(() => {
        void sweep().catch((err: Error) => warn({ err: { message: err.message } }, 'lifecycle-event sweep failed'));
      }, 2000);
      renewTimer.unref();
      sweepTimer.unref();
      if (webhooks) void backlog.announce(webhooks.endpoints.map((e) => ({ id: e.id, url: e.label }))).catch(() => {});
    },

    async close() {
      stopped = true;
      clearInterval(renewTimer);
      clearInterval(sweepTimer);
      wake?.();
      blocking?.disconnect();
      await loop;
      if (leader) await deps.redis.eval(RELEASE, 1, k.eventRelayLock, token).catch(() => {});
      leader = false;
      await Promise.all([eventsQueue?.close(), webhooksQueue?.close()]);
    },
  };
}
