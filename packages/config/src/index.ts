export * from './env.js';
export * from './services.js';
export * from './warnings.js';
export * from './redis.js';
