import type {} from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The Redis every test file of a run shares, as a service's environment (SPEC §9); files isolate by key prefix. */
    redis: Record<string, string>;
    /** `REDIS_URL` of that Redis when it is a standalone one (tests of standalone-only behaviour). */
    redisUrl: string;
  }
}

/** A `REDIS_URL` or a Redis environment, as the environment a service gets. */
export function redisEnvOf(redis: string | Record<string, string>): Record<string, string> {
  return typeof redis === 'string' ? { REDIS_URL: redis } : redis;
}
