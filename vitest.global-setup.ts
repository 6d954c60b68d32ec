import type { TestProject } from 'vitest/node';
// Relative imports: the global setup does not resolve the workspace's source export condition.
import { startTopology, type TopologyKind } from './packages/testkit/src/topology.js';

/**
 * One Redis per test project and run, named by the project: standalone (`REDIS_URL`, a container,
 * or a local `redis-server`), a Sentinel group, or a Redis Cluster. Files isolate by key prefix.
 */
export default async function setup(project: TestProject) {
  const kind = project.name as TopologyKind;
  const topology = await startTopology(kind);
  project.provide('redis', topology.env);
  if (topology.env.REDIS_URL) project.provide('redisUrl', topology.env.REDIS_URL);
  return async () => {
    await topology.stop();
  };
}
