export * from './haproxy.js';
export * from './metrics.js';
export * from './prefix.js';
export * from './redis.js';
export * from './tokens.js';
export * from './wait.js';
export * from './vitest-context.js';
export * from './processes.js';
