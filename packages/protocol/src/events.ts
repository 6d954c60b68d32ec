import type { ErrorBody, HandshakeErrorCode, SessionErrorCode } from './errors.js';
import type {
  AuthRefreshPayload,
  NotificationListPayload,
  NotificationReadPayload,
  PresenceSetPayload,
  PresenceStatus,
  PresenceUnwatchPayload,
  PresenceWatchPayload,
  RoomHistoryPayload,
  RoomJoinPayload,
  RoomLeavePayload,
  RoomMembersPayload,
  RoomPublishPayload,
  RoomTypingPayload,
  SessionPingPayload,
} from './schemas.js';

/** Every client→server event is answered with this envelope (SPEC §3). */
export type Ack<T> = { ok: true; data: T } | { ok: false; error: ErrorBody };
export type AckCallback<T> = (response: Ack<T>) => void;

/** `data` of a refused handshake's `connect_error`. */
export type HandshakeErrorData = ErrorBody<HandshakeErrorCode>;

export interface RoomMessage {
  room: string;
  /** Server-assigned id, ordered within the room; pass it as `since` to catch up. */
  id: string;
  /** Server time, ms since the epoch. */
  ts: number;
  type?: string;
  from: { userId: string; name?: string };
  data: unknown;
}

export interface Member {
  userId: string;
  name?: string;
  status: PresenceStatus;
}

export interface PresenceInfo {
  userId: string;
  online: boolean;
  status: PresenceStatus;
  /** ms since the epoch; set once the user has been seen. */
  lastSeen?: number;
}

export interface Notification {
  id: string;
  type: string;
  title?: string;
  body?: string;
  data?: Record<string, unknown>;
  ts: number;
}

export interface InboxItem extends Notification {
  read: boolean;
}

export interface RoomJoinResult {
  room: string;
  /** Number of distinct users in the room, this one included. */
  members: number;
  /** Messages after `since`, when `since` was given. */
  history?: { messages: RoomMessage[]; recovered: boolean };
}
export interface RoomHistoryResult {
  messages: RoomMessage[];
  /** False when `since` is older than what the room's history still holds. */
  recovered: boolean;
}
export interface RoomMembersResult {
  members: Member[];
  nextCursor?: string;
}
export interface NotificationListResult {
  items: InboxItem[];
  unread: number;
  nextBefore?: string;
}

export interface ClientToServerEvents {
  'room:join': (payload: RoomJoinPayload, ack: AckCallback<RoomJoinResult>) => void;
  'room:leave': (payload: RoomLeavePayload, ack: AckCallback<{ room: string }>) => void;
  'room:publish': (payload: RoomPublishPayload, ack: AckCallback<{ id: string; ts: number }>) => void;
  'room:typing': (payload: RoomTypingPayload, ack?: AckCallback<Record<string, never>>) => void;
  'room:members': (payload: RoomMembersPayload, ack: AckCallback<RoomMembersResult>) => void;
  'room:history': (payload: RoomHistoryPayload, ack: AckCallback<RoomHistoryResult>) => void;
  'presence:set': (payload: PresenceSetPayload, ack: AckCallback<{ status: PresenceStatus }>) => void;
  'presence:watch': (payload: PresenceWatchPayload, ack: AckCallback<{ presence: PresenceInfo[] }>) => void;
  'presence:unwatch': (payload: PresenceUnwatchPayload, ack: AckCallback<Record<string, never>>) => void;
  'notification:list': (payload: NotificationListPayload, ack: AckCallback<NotificationListResult>) => void;
  'notification:read': (payload: NotificationReadPayload, ack: AckCallback<{ unread: number }>) => void;
  'auth:refresh': (payload: AuthRefreshPayload, ack: AckCallback<{ exp: number }>) => void;
  'session:ping': (payload: SessionPingPayload, ack: AckCallback<{ ts: number }>) => void;
}

export interface SessionReady {
  userId: string;
  socketId: string;
  pod: string;
  serverTime: number;
  unread: number;
}

export interface ServerToClientEvents {
  'session:ready': (payload: SessionReady) => void;
  'session:expiring': (payload: { exp: number }) => void;
  'session:error': (payload: { code: SessionErrorCode; message: string; event?: string }) => void;
  'room:message': (payload: RoomMessage) => void;
  'room:typing': (payload: { room: string; userId: string; typing: boolean }) => void;
  'room:member_joined': (payload: { room: string; userId: string; name?: string }) => void;
  'room:member_left': (payload: { room: string; userId: string }) => void;
  'presence:changed': (payload: PresenceInfo) => void;
  notification: (payload: Notification) => void;
  /** The user's unread count changed on another device (after `notification:read`). */
  'notification:unread': (payload: { unread: number }) => void;
}

/**
 * Events between gateway pods through the adapter. None yet: pods share state through the
 * registry, and the adapter's own requests (e.g. `disconnectSockets`) cover the rest.
 */
export type InterServerEvents = Record<string, never>;

/** What the gateway keeps on `socket.data` once the handshake is accepted. */
export interface SocketData {
  userId: string;
  name?: string;
  roles: string[];
  /** Room names and `*`-prefixes granted by the access token's `rooms` claim. */
  rooms: string[];
  guest: boolean;
  /** Access token expiry, seconds since the epoch; absent for guests. */
  exp?: number;
  connectedAt: number;
}
