import type { Job, Queue, Worker } from 'bullmq';
import type { RedisClient } from '@switchboard/store';
import type { Logger } from '@switchboard/observability';

/** Active jobs looked at per recovery pass. */
const ACTIVE_SCAN_MAX = 1000;

export interface OrphanRecovery {
  /** Marks a job as processed by this worker right now. */
  track(jobId: string): () => void;
  /** Moves this worker's orphaned jobs back to waiting; resolves with how many. */
  recover(): Promise<number>;
  stop(): void;
}

/**
 * After Redis comes back from an outage it may hold state older than what the workers saw: a
 * restart from an older snapshot, a failover to a replica that missed the last writes. A job this
 * worker completed can be "active" again, locked in this worker's name, and nobody works on it
 * until BullMQ's stalled-job check finds it, a lock duration plus up to two stalled intervals
 * later (about a minute with the defaults). So on every reconnect this worker looks at the active
 * jobs and moves back to waiting those it holds a lock for but does not process, and those that
 * have no lock at all; they are delivered again at once, and the notification ledger keeps that
 * from storing or sending anything twice.
 */
export function watchOrphans(deps: { worker: Worker; queue: Queue; connection: RedisClient; logger: Logger }): OrphanRecovery {
  const { worker, queue, connection, logger } = deps;
  const processing = new Set<string>();
  let running: Promise<number> | undefined;

  async function pass(): Promise<number> {
    const active: Job[] = await queue.getActive(0, ACTIVE_SCAN_MAX - 1);
    let moved = 0;
    for (const job of active) {
      if (!job.id || processing.has(job.id)) continue;
      const lock = await connection.get(`${queue.toKey(job.id)}:lock`);
      const ours = lock !== null && lock.startsWith(`${worker.id}:`);
      if (lock !== null && !ours) continue; // another worker's: its own recovery, or the stalled check
      const result = await job.moveToWait(ours ? lock : '0');
      if (result >= 0) moved++;
    }
    if (moved) logger.warn({ moved }, 'jobs left active by a Redis restart moved back to waiting');
    return moved;
  }

  function recover(): Promise<number> {
    running ??= pass().finally(() => {
      running = undefined;
    });
    return running;
  }

  const recoverNow = () => {
    recover().catch((err: unknown) => logger.warn({ err }, 'recovering jobs after a reconnect failed'));
  };
  // jobs in flight across the reconnect may have lost their lock too: once they are done, look again
  let waitingFor: Set<string> | undefined;
  let wasDown = false;
  const onClose = () => {
    wasDown = true;
  };
  const onReady = () => {
    if (!wasDown) return;
    wasDown = false;
    recoverNow();
    if (processing.size) waitingFor = new Set(processing);
  };
  connection.on('close', onClose);
  connection.on('ready', onReady);

  return {
    track(jobId) {
      processing.add(jobId);
      return () => {
        processing.delete(jobId);
        if (waitingFor?.delete(jobId) && waitingFor.size === 0) {
          waitingFor = undefined;
          recoverNow();
        }
      };
    },
    recover,
    stop() {
      connection.off('close', onClose);
      connection.off('ready', onReady);
    },
  };
}
