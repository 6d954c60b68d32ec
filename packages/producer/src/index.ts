export * from './producer.js';
/** Reads the Redis topology from SPEC §9's variables (`REDIS_URL`, `REDIS_SENTINELS`, `REDIS_CLUSTER_NODES`, …), as the services do. */
export { loadRedisConfig, type RedisConfig } from '@switchboard/config';
/** Checks a lifecycle-event webhook request's signature and timestamp (SPEC §7a) against its raw body. */
export { verifyWebhook, WEBHOOK_TOLERANCE_MS, type WebhookVerification } from '@switchboard/auth';
export { EVENTS_QUEUE, type LifecycleEvent, type WebhookBody } from '@switchboard/protocol';
