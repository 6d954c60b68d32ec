export * from './producer.js';
