import type { TestProject } from 'vitest/node';
import { startRedis } from '@switchboard/testkit';

/** One Redis per test run: `REDIS_URL`, a container, or a local `redis-server`. */
export default async function setup(project: TestProject) {
  const redis = await startRedis();
  project.provide('redisUrl', redis.url);
  return async () => {
    await redis.stop();
  };
}
