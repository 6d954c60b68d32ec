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
import type { PublishBudget, ReadModel, RoomHistory, SocketRef } from '@switchboard/store';
import type { Server } from 'socket.io';
import type { GatewaySocket } from './handshake.js';
import type { LazySet } from './lazy-set.js';
import type { GatewayMetrics } from './metrics.js';
import type { PodRegistry } from './pod-registry.js';
import type { TokenBucket } from './rate-limit.js';
import type { SessionClock } from './session-timer.js';

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
  /** This pod's instance in the registry: joins, leaves, disconnects. */
  pod: PodRegistry;
  readModel: ReadModel;
  history: RoomHistory;
  /** The per-user publish budget across the cluster. */
  budget: PublishBudget;
  inbox: InboxReader;
  /** Token expiries of every socket of the pod. */
  clock: SessionClock;
  logger: Logger;
  metrics: GatewayMetrics;
}

/** In-memory state of one socket on this pod. */
export interface SocketState {
  bucket: TokenBucket;
  /** The socket as the registry knows it. */
  ref: SocketRef;
  /** Rooms joined by the client (not its `user:` room nor internal rooms). */
  rooms: LazySet<string>;
  /** Users whose presence this socket watches. */
  watched: LazySet<string>;
  /** Set once Socket.IO connected the socket (after the handshake registered it). */
  connected: boolean;
}

/** What a handler receives besides its payload. */
export interface HandlerScope {
  socket: GatewaySocket;
  data: SocketData;
  state: SocketState;
}
