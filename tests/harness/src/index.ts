export * from './cluster.js';
export * from './services.js';
export * from './service-processes.js';
export * from './webhook-receiver.js';
