import type { GatewayContext } from './context.js';
import { announceDeparture } from './presence-events.js';

export interface Heartbeat {
  /** Writes the first heartbeat, then keeps beating. */
  start(): Promise<void>;
  stop(): void;
}

/**
 * Keeps this pod alive in the registry and reaps dead pods (SPEC §5). A pod silent for more
 * than two intervals is dead; every live pod checks twice per interval, one at a time under
 * a lock, so a dead pod's sockets are gone within three intervals.
 */
export function createHeartbeat(ctx: GatewayContext, startedAt: number, onReaped: () => Promise<void>): Heartbeat {
  const { registry, readModel, podId, config, logger, metrics, io } = ctx;
  const interval = config.heartbeatIntervalMs;
  const tickMs = Math.max(25, Math.floor(interval / 2));
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let beaten = false;

  async function tick(): Promise<void> {
    const end = metrics.registryDuration.startTimer({ op: 'heartbeat' });
    try {
      const known = await registry.heartbeat(podId, startedAt);
      if (!known && beaten) {
        logger.warn({ pod: podId }, 'this pod was reaped while alive; registering its sockets again');
        await onReaped();
      }
      beaten = true;
    } catch (err) {
      metrics.heartbeatFailures.inc();
      logger.warn({ err }, 'heartbeat failed');
      return;
    } finally {
      end();
    }
    try {
      const endReap = metrics.registryDuration.startTimer({ op: 'reap' });
      const reaped = await registry.reapDeadPods(interval * 2, interval * 4);
      endReap();
      if (reaped.length) {
        const pods = new Set(reaped.map((r) => r.pod));
        metrics.reapedSockets.inc(reaped.length);
        metrics.reapedPods.inc(pods.size);
        logger.warn({ pods: [...pods], sockets: reaped.length }, 'reaped dead pods');
        const now = Date.now();
        for (const r of reaped) announceDeparture(io, r, now);
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
      await registry.heartbeat(podId, startedAt);
      beaten = true;
      loop();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
