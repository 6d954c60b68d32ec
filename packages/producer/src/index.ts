export * from './producer.js';
/** Reads the Redis topology from SPEC §9's variables (`REDIS_URL`, `REDIS_SENTINELS`, `REDIS_CLUSTER_NODES`, …), as the services do. */
export { loadRedisConfig, type RedisConfig } from '@switchboard/config';
