import { collectDefaultMetrics, Registry } from 'prom-client';

/** Every metric name starts with this (SPEC §8). */
export const METRIC_PREFIX = 'switchboard_';

/**
 * A registry per service with the process metrics, labelled with the service and pod.
 * Labels stay bounded: never user ids or room names.
 */
export function createRegistry(service: string, pod: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service, pod });
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  // These gauges end in `_total`, which Prometheus reserves for counters (promtool flags them).
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(METRIC_PREFIX + name);
  }
  return registry;
}

/** Latency buckets in seconds, from 100 µs to 10 s. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
