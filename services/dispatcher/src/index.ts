export * from './deliver.js';
export * from './dispatcher.js';
export * from './metrics.js';
export * from './watchdog.js';
export * from './orphans.js';
