import type { ManagerOptions, Socket, SocketOptions } from 'socket.io-client';
import type {
  ClientToServerEvents,
  NotificationListResult,
  PresenceInfo,
  PresenceStatus,
  RoomHistoryResult,
  RoomJoinResult,
  RoomMembersResult,
  ServerToClientEvents,
  SessionReady,
} from '@switchboard/protocol';
import type { SwitchboardClientError } from './errors.js';

/** A token, or a function that returns a fresh one each time it is called. */
export type TokenSource = string | (() => string | Promise<string>);

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface ClientOptions {
  /** The gateway (or the load balancer in front of the gateways), e.g. `https://rt.example.com`. */
  url: string;
  /**
   * The access token (a JWT from your backend). A function is called at connect, at every
   * reconnect, and on `session:expiring` (then sent with `auth:refresh`), so the session
   * outlives each token. Without a token the client connects as a guest when the cluster
   * allows guests. Takes precedence over `socket.auth`.
   */
  token?: TokenSource;
  /**
   * Socket.IO client options passed through (`transports`, `path`, `withCredentials`,
   * `reconnectionDelay`, …). The client sets `forceNew: true` unless given here.
   */
  socket?: Partial<ManagerOptions & SocketOptions>;
  /**
   * After a reconnect, join the rooms again (with their room tokens), replay what was missed
   * since the last message seen in each, and watch the same users again.
   * @default true
   */
  resume?: boolean;
  /** How long a call waits for the server's answer before it rejects with `TIMEOUT`. @default 10000 */
  timeoutMs?: number;
}

export interface JoinOptions {
  /**
   * Room token for `private:` rooms. A function is called for this join and again for each
   * re-join after a reconnect; when it throws, `join()` rejects with its error.
   */
  token?: TokenSource;
  /** Return the messages after this id in `history` (e.g. the last id your app stored). */
  since?: string;
}

export interface PublishOptions {
  /** Application message type, 1–64 chars of `[A-Za-z0-9._:/-]`. */
  type?: string;
}

export interface MembersOptions {
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** 1–200. @default 50 */
  limit?: number;
}

export interface HistoryOptions {
  /** Messages after this id; without it, the latest ones. */
  since?: string;
  /** 1–200. @default 50 */
  limit?: number;
}

export interface NotificationListOptions {
  /** `nextBefore` of the previous page. */
  before?: string;
  /** 1–100. */
  limit?: number;
  unreadOnly?: boolean;
}

/**
 * A room's history no longer holds everything missed while disconnected (`result.recovered` is
 * false). `result.messages` are the room's latest messages: they are not replayed as
 * `room:message`, so reload the room's view from them (and `history()` for more).
 */
export type GapListener = (room: string, result: RoomHistoryResult) => void;

/** What a resume failed to restore: a room, or watched users. */
export type ResumeTarget = { room: string } | { userIds: string[] };

/**
 * A room could not be joined again, or users could not be watched again, after a reconnect
 * (e.g. `FORBIDDEN` when a room token has expired). The client has forgotten the target.
 */
export type ResumeErrorListener = (error: SwitchboardClientError, target: ResumeTarget) => void;

export interface SwitchboardClient {
  /** The underlying Socket.IO socket, typed with the protocol: connection events, `connect()`, … */
  readonly socket: ClientSocket;
  /** The latest `session:ready`, once connected. */
  readonly session: SessionReady | undefined;

  /**
   * Resolves with the current session, or with the next `session:ready`. Rejects with a
   * {@link SwitchboardClientError} on the next `connect_error`: a refused handshake carries the
   * server's code (`AUTH_INVALID`, …), a network failure `DISCONNECTED`, a token function that
   * throws `AUTH_REQUIRED`. Rejects at once when the client is closed or has stopped trying.
   */
  ready(): Promise<SessionReady>;

  /** Joins a room; remembered for resume until `leave()`. */
  join(room: string, options?: JoinOptions): Promise<RoomJoinResult>;
  leave(room: string): Promise<void>;
  /** Publishes to a room this client has joined; the other members get a `room:message`. */
  publish(room: string, data: unknown, options?: PublishOptions): Promise<{ id: string; ts: number }>;
  /** Tells the other members whether this user is typing; best effort, not acknowledged. */
  typing(room: string, typing: boolean): void;
  members(room: string, options?: MembersOptions): Promise<RoomMembersResult>;
  history(room: string, options?: HistoryOptions): Promise<RoomHistoryResult>;

  setPresence(status: PresenceStatus, text?: string): Promise<void>;
  /** Watches users' presence (at most 100 per call): current state now, `presence:changed` later. */
  watch(userIds: readonly string[]): Promise<PresenceInfo[]>;
  unwatch(userIds: readonly string[]): Promise<void>;

  notifications(options?: NotificationListOptions): Promise<NotificationListResult>;
  /** Marks notifications read; resolves with the unread count left. */
  markRead(ids: readonly string[] | 'all'): Promise<number>;

  /** Round trip to the gateway, in milliseconds. */
  ping(): Promise<number>;

  /** Listens to a server event; returns a function that removes the listener. */
  on<E extends keyof ServerToClientEvents>(event: E, listener: ServerToClientEvents[E]): () => void;
  /** Listens to history gaps found on resume; returns a function that removes the listener. */
  onGap(listener: GapListener): () => void;
  /** Listens to failures to restore rooms or watches on resume; returns a function that removes the listener. */
  onResumeError(listener: ResumeErrorListener): () => void;

  /** Disconnects for good: pending and later calls reject with `DISCONNECTED`. */
  close(): void;
}
