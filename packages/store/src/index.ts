export * from './keys.js';
export * from './redis.js';
