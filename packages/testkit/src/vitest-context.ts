import type {} from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The Redis every test file of a run shares; files isolate by key prefix. */
    redisUrl: string;
  }
}
