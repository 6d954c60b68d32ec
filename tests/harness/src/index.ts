export * from './cluster.js';
export * from './services.js';
