import type { RedisClient } from '@switchboard/store';

export interface Watchdog {
  stop(): void;
}

/**
 * Calls `onDown` once when any of the clients has not been ready for `limitMs`. A process that
 * cannot reach Redis does no work; exiting lets the orchestrator restart it and alert on it.
 * Shorter outages are ridden out: ioredis and BullMQ reconnect by themselves.
 */
export function watchRedis(clients: readonly RedisClient[], limitMs: number, onDown: (downMs: number) => void): Watchdog {
  const intervalMs = Math.max(25, Math.min(1000, Math.floor(limitMs / 5)));
  let downSince: number | undefined;
  const timer = setInterval(() => {
    const now = Date.now();
    if (clients.every((c) => c.status === 'ready')) {
      downSince = undefined;
      return;
    }
    downSince ??= now;
    if (now - downSince >= limitMs) {
      clearInterval(timer);
      onDown(now - downSince);
    }
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
