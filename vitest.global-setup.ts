import type { TestProject } from 'vitest/node';
// A relative import: the global setup does not resolve the workspace's source export condition.
import { startRedis } from './packages/testkit/src/redis.js';

/** One Redis per test run: `REDIS_URL`, a container, or a local `redis-server`. */
export default async function setup(project: TestProject) {
  const redis = await startRedis();
  project.provide('redisUrl', redis.url);
  project.provide('redis', { REDIS_URL: redis.url });
  return async () => {
    await redis.stop();
  };
}
