import type { Logger } from '@switchboard/observability';
import type { ReadModel, Registry } from '@switchboard/store';
import type { GatewayServer } from './context.js';
import type { GatewayMetrics } from './metrics.js';
import type { PodRegistry } from './pod-registry.js';
import { announceDeparture } from './presence-events.js';

export interface HeartbeatDeps {
  io: GatewayServer;
  registry: Registry;
  readModel: ReadModel;
  pod: PodRegistry;
  intervalMs: number;
  logger: Logger;
  metrics: GatewayMetrics;
}

export interface Heartbeat {
  /** Writes the first heartbeat, then keeps beating. */
  start(): Promise<void>;
  stop(): void;
}

/**
 * Keeps this instance alive in the registry and reaps silent ones (SPEC §5). An instance silent
 * for more than two intervals (Redis time) is dead; every live pod checks twice per interval, one
 * at a time under a lock, so a dead instance's sockets are gone within three intervals.
 *
 * A pod reaps only after it has itself beaten without a gap for two intervals: after a Redis
 * outage (or a stall of this pod) every heartbeat is old, and the first pod back must not take the
 * others for dead before they had the time to beat again.
 *
 * The first beat after a gap (beats that failed, or one missed) also puts back what this pod holds:
 * the Redis that answers now may have lost writes (a replica promoted by Sentinel or a Cluster
 * failover, a restart from an older snapshot) without this pod's client ever reconnecting.
 */
export function createHeartbeat(deps: HeartbeatDeps): Heartbeat {
  const { registry, readModel, pod, logger, metrics, io } = deps;
  const interval = deps.intervalMs;
  const maxAgeMs = interval * 2;
  const tickMs = Math.max(25, Math.floor(interval / 2));
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let startedAt: number | undefined;
  let lastBeatAt: number | undefined;
  let healthySince: number | undefined;
  let failedSinceBeat = false;

  async function beat(): Promise<number> {
    const end = metrics.registryDuration.startTimer({ op: 'heartbeat' });
    try {
      const hb = await registry.heartbeat(pod.instance, startedAt);
      const first = startedAt === undefined;
      const gap = failedSinceBeat || (lastBeatAt !== undefined && hb.now - lastBeatAt > interval);
      startedAt = hb.startedAt;
      failedSinceBeat = false;
      if (lastBeatAt === undefined || gap) healthySince = hb.now;
      lastBeatAt = hb.now;
      if (!first && (!hb.known || gap)) {
        if (!hb.known) logger.warn({ instance: pod.instance.id }, 'this instance was reaped while alive; registering its sockets again');
        else logger.info('heartbeats resumed after a gap; making the registry hold what this pod holds');
        pod.restore().catch((err: unknown) => {
          failedSinceBeat = true; // try again at the next beat
          logger.warn({ err }, 'registering the sockets again failed; retrying at the next beat');
        });
      }
      return hb.now;
    } finally {
      end();
    }
  }

  async function tick(): Promise<void> {
    let now: number;
    try {
      now = await beat();
    } catch (err) {
      healthySince = undefined;
      failedSinceBeat = true;
      metrics.heartbeatFailures.inc();
      logger.warn({ err }, 'heartbeat failed');
      return;
    }
    if (healthySince === undefined || now - healthySince < maxAgeMs) return;
    try {
      const endReap = metrics.registryDuration.startTimer({ op: 'reap' });
      const reaped = await registry.reapSilentInstances(maxAgeMs, interval * 4);
      endReap();
      if (reaped.length) {
        const pods = new Set(reaped.map((r) => r.pod));
        metrics.reapedSockets.inc(reaped.length);
        metrics.reapedPods.inc(pods.size);
        logger.warn({ pods: [...pods], sockets: reaped.length }, 'reaped silent instances');
        for (const r of reaped) announceDeparture(io, r);
      }
      metrics.heartbeatAge.set((await readModel.oldestHeartbeatAgeMs()) / 1000);
    } catch (err) {
      logger.warn({ err }, 'reaping failed');
    }
  }

  const loop = () => {
    timer = setTimeout(() => {
      void tick().finally(() => {
        if (!stopped) loop();
      });
    }, tickMs);
    timer.unref();
  };

  return {
    async start() {
      await beat();
      loop();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
