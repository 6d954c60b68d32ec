export * from './history.js';
export * from './keys.js';
export * from './read-model.js';
export * from './redis.js';
export * from './registry.js';
export * from './inbox.js';
export * from './server-check.js';
