export { createClient } from './client.js';
export { SwitchboardClientError, type ClientErrorCode } from './errors.js';
export { compareMessageIds } from './message-ids.js';
export type {
  ClientOptions,
  ClientSocket,
  GapListener,
  HistoryOptions,
  JoinOptions,
  MembersOptions,
  NotificationListOptions,
  PublishOptions,
  ResumeErrorListener,
  ResumeTarget,
  SwitchboardClient,
  TokenSource,
} from './types.js';
export type {
  ClientToServerEvents,
  ErrorCode,
  HandshakeErrorCode,
  InboxItem,
  Member,
  Notification,
  NotificationListResult,
  PresenceInfo,
  PresenceStatus,
  RoomHistoryResult,
  RoomJoinResult,
  RoomMembersResult,
  RoomMessage,
  ServerToClientEvents,
  SessionErrorCode,
  SessionReady,
} from '@switchboard/protocol';
