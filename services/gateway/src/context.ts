import type { TokenVerifier } from '@switchboard/auth';
import type { GatewayConfig } from '@switchboard/config';
import type {
  ClientToServerEvents,
  InterServerEvents,
  NotificationListPayload,
  NotificationListResult,
  ServerToClientEvents,
  SocketData,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/observability';
import type { ReadModel, Registry, RoomHistory } from '@switchboard/store';
import type { Server } from 'socket.io';
import type { GatewaySocket } from './handshake.js';
import type { GatewayMetrics } from './metrics.js';
import type { TokenBucket } from './rate-limit.js';

export type GatewayServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** The inbox reads the gateway needs (the dispatcher writes). */
export interface InboxReader {
  list(userId: string, query: NotificationListPayload): Promise<NotificationListResult>;
  markRead(userId: string, which: readonly string[] | 'all'): Promise<number>;
  unread(userId: string): Promise<number>;
}

/** What one pod's handlers share. */
export interface GatewayContext {
  io: GatewayServer;
  config: GatewayConfig;
  podId: string;
  verifier: TokenVerifier;
  registry: Registry;
  readModel: ReadModel;
  history: RoomHistory;
  inbox: InboxReader;
  logger: Logger;
  metrics: GatewayMetrics;
}

/** In-memory state of one socket on this pod. */
export interface SocketState {
  bucket: TokenBucket;
  /** Rooms joined by the client (not its `user:` room nor internal rooms). */
  rooms: Set<string>;
  /** Users whose presence this socket watches. */
  watched: Set<string>;
  /** Resolves once the socket is in the registry (false when it was refused). */
  registered: Promise<boolean>;
  timers: { warn?: NodeJS.Timeout; expire?: NodeJS.Timeout };
}

/** What a handler receives besides its payload. */
export interface HandlerScope {
  socket: GatewaySocket;
  data: SocketData;
  state: SocketState;
}
