export { createGateway, type Gateway, type GatewayDeps } from './gateway.js';
export type { GatewayServer, InboxReader } from './context.js';
export { findToken, originAllowed } from './handshake.js';
export { TokenBucket } from './rate-limit.js';
