import { io, type SocketOptions } from 'socket.io-client';
import type {
  Ack,
  AckCallback,
  ClientToServerEvents,
  HandshakeErrorData,
  Notification,
  NotificationListResult,
  PresenceInfo,
  PresenceStatus,
  RoomHistoryResult,
  RoomJoinResult,
  RoomMembersResult,
  RoomMessage,
  ServerToClientEvents,
  SessionReady,
} from '@switchboard/protocol';
import {
  describe,
  isDisconnected,
  isHandshakeCode,
  sessionErrorCode,
  SwitchboardClientError,
  transportError,
} from './errors.js';
import { Listeners } from './listeners.js';
import { laterId } from './message-ids.js';
import { RecentIds } from './recent-ids.js';
import type {
  ClientOptions,
  ClientSocket,
  GapListener,
  HistoryOptions,
  JoinOptions,
  MembersOptions,
  NotificationListOptions,
  PublishOptions,
  ResumeErrorListener,
  SwitchboardClient,
  TokenSource,
} from './types.js';

const DEFAULT_TIMEOUT_MS = 10_000;
/** Message ids remembered per room to drop duplicates where a replay meets the live stream. */
const RECENT_MESSAGE_IDS = 1000;
/** Notification ids remembered: delivery upstream is at-least-once. */
const RECENT_NOTIFICATION_IDS = 1000;
/** `presence:watch` takes at most this many ids (SPEC §3). */
const WATCH_BATCH = 100;
/** `since` for a room that was empty when joined: everything in its history is new. */
const BEFORE_ANY_MESSAGE = '0-0';

type RequestEvent = Exclude<keyof ClientToServerEvents, 'room:typing'>;
type RequestPayload<E extends RequestEvent> = Parameters<ClientToServerEvents[E]>[0];
type RequestResult<E extends RequestEvent> = Parameters<ClientToServerEvents[E]>[1] extends AckCallback<infer T> ? T : never;
/** What `socket.timeout(ms)` offers, seen through one event at a time. */
interface AckEmitter {
  emitWithAck(event: string, payload: unknown): Promise<Ack<unknown>>;
}

/** Events the client handles itself before (or instead of) handing them to listeners. */
type HandledEvent = 'session:ready' | 'session:expiring' | 'room:message' | 'notification';
/** Every other server event goes straight to listeners; the compiler insists the list is complete. */
const FORWARDED = {
  'session:error': true,
  'room:typing': true,
  'room:member_joined': true,
  'room:member_left': true,
  'presence:changed': true,
  'notification:unread': true,
} satisfies Record<Exclude<keyof ServerToClientEvents, HandledEvent>, true>;
type ForwardedEvent = keyof typeof FORWARDED;

interface LocalEvents {
  gap: GapListener;
  resumeError: ResumeErrorListener;
}

interface RoomState {
  room: string;
  token: TokenSource | undefined;
  /** Latest message id this client has seen; `since` of the next resume. */
  lastId: string | undefined;
  seen: RecentIds;
  /** Live messages held back while a re-join's replay is on its way. */
  buffer: RoomMessage[] | undefined;
}

interface Waiter {
  resolve(session: SessionReady): void;
  reject(err: SwitchboardClientError): void;
}

/** Creates a client and starts connecting (unless `socket.autoConnect` is false). */
export function createClient(options: ClientOptions): SwitchboardClient {
  return new Client(options);
}

function resolveToken(source: TokenSource | undefined): Promise<string | undefined> {
  return typeof source === 'function' ? Promise.resolve().then(source) : Promise.resolve(source);
}

class Client implements SwitchboardClient {
  readonly socket: ClientSocket;
  private current: SessionReady | undefined;
  /** A `session:ready` came on the current connection. */
  private live = false;
  private everReady = false;
  private closed = false;
  /** Why the last connection attempt failed; cleared on connect. */
  private lastError: SwitchboardClientError | undefined;
  private waiters: Waiter[] = [];
  /** Rejects the calls in flight: Socket.IO keeps a request buffered while disconnected until it times out. */
  private readonly pending = new Set<(err: SwitchboardClientError) => void>();
  private readonly rooms = new Map<string, RoomState>();
  private readonly watched = new Set<string>();
  private readonly notificationIds = new RecentIds(RECENT_NOTIFICATION_IDS);
  private readonly listeners = new Listeners<ServerToClientEvents>();
  private readonly local = new Listeners<LocalEvents>();
  /** Bumped on every connect and disconnect, so late answers from an older connection are ignored. */
  private epoch = 0;
  private refreshing = false;
  private readonly timeoutMs: number;
  private readonly resumeEnabled: boolean;
  private readonly token: TokenSource | undefined;

  constructor(options: ClientOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.resumeEnabled = options.resume ?? true;
    this.token = options.token;
    this.socket = io(options.url, { forceNew: true, ...options.socket, ...this.authOption(options) });

    const s = this.socket;
    s.on('connect', () => {
      this.lastError = undefined;
    });
    s.on('connect_error', (err: Error & { data?: Partial<HandshakeErrorData> }) => {
      const code = err.data?.code;
      this.connectFailed(
        isHandshakeCode(code)
          ? new SwitchboardClientError(code, err.data?.message ?? err.message, err.data, { cause: err })
          : new SwitchboardClientError('DISCONNECTED', `Cannot connect: ${err.message}`, err.data, { cause: err }),
      );
    });
    s.on('disconnect', (reason) => {
      this.live = false;
      this.epoch++;
      for (const state of this.rooms.values()) state.buffer = undefined;
      // Socket.IO does not reconnect after these two; the app calls `socket.connect()` to come back
      if (reason === 'io server disconnect' || reason === 'io client disconnect') {
        this.lastError ??= new SwitchboardClientError('DISCONNECTED', `Disconnected (${reason})`);
      }
    });
    s.on('session:ready', (session) => this.onSessionReady(session));
    s.on('session:expiring', (payload) => {
      this.listeners.emit('session:expiring', payload);
      void this.refresh();
    });
    s.on('room:message', (message) => this.onRoomMessage(message));
    s.on('notification', (notification) => this.onNotification(notification));
    for (const event of Object.keys(FORWARDED) as ForwardedEvent[]) {
      const forward = (...args: Parameters<ServerToClientEvents[ForwardedEvent]>) => this.listeners.emit(event, ...args);
      s.on(event, forward as ServerToClientEvents[ForwardedEvent]);
    }
  }

  get session(): SessionReady | undefined {
    return this.current;
  }

  // ---- connection ----

  private authOption(options: ClientOptions): Partial<SocketOptions> {
    const { token } = options;
    if (token === undefined) return {};
    const given = options.socket?.auth;
    const extra = typeof given === 'object' ? given : {};
    if (typeof token === 'string') return { auth: { ...extra, token } };
    // called by Socket.IO before every connect and reconnect
    return {
      auth: (cb: (data: object) => void) => {
        const epoch = this.epoch;
        resolveToken(token).then(
          (fresh) => {
            if (this.closed || epoch !== this.epoch) return;
            if (fresh) cb({ ...extra, token: fresh });
            else this.tokenUnavailable(new Error('the token function returned no token'));
          },
          (err: unknown) => {
            if (!this.closed && epoch === this.epoch) this.tokenUnavailable(err);
          },
        );
      },
    };
  }

  /** The token function failed: never connect without a token (that would be a guest), retry later. */
  private tokenUnavailable(err: unknown): void {
    this.connectFailed(
      new SwitchboardClientError('AUTH_REQUIRED', `Could not get a token: ${describe(err)}`, undefined, { cause: err }),
    );
    // closing the transport lets the manager retry with its reconnection policy
    if (this.socket.io.reconnection()) this.socket.io.engine.close();
    else this.socket.disconnect();
  }

  private connectFailed(error: SwitchboardClientError): void {
    this.lastError = error;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  ready(): Promise<SessionReady> {
    if (this.closed) return Promise.reject(new SwitchboardClientError('DISCONNECTED', 'The client is closed'));
    if (this.live && this.current) return Promise.resolve(this.current);
    if (!this.socket.active && this.lastError) return Promise.reject(this.lastError);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private onSessionReady(session: SessionReady): void {
    const reconnected = this.everReady;
    this.everReady = true;
    this.current = session;
    this.live = true;
    this.lastError = undefined;
    this.epoch++;
    if (reconnected) {
      if (this.resumeEnabled) this.resume();
      else {
        this.rooms.clear();
        this.watched.clear();
      }
    }
    for (const waiter of this.waiters.splice(0)) waiter.resolve(session);
    this.listeners.emit('session:ready', session);
  }

  /** `session:expiring`: get a fresh token and send it before the old one runs out. */
  private async refresh(): Promise<void> {
    const source = this.token;
    if (typeof source !== 'function' || this.refreshing) return;
    this.refreshing = true;
    try {
      const token = await resolveToken(source);
      if (!token) throw new Error('the token function returned no token');
      await this.request('auth:refresh', { token });
    } catch (err) {
      if (!this.closed) {
        this.listeners.emit('session:error', {
          code: sessionErrorCode(err),
          message: `Token refresh failed: ${describe(err)}`,
          event: 'auth:refresh',
        });
      }
    } finally {
      this.refreshing = false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.live = false;
    this.epoch++;
    this.rooms.clear();
    this.watched.clear();
    this.socket.disconnect();
    const error = new SwitchboardClientError('DISCONNECTED', 'The client is closed');
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    for (const abort of this.pending) abort(error);
    this.pending.clear();
  }

  // ---- requests ----

  private async request<E extends RequestEvent>(event: E, payload: RequestPayload<E>): Promise<RequestResult<E>> {
    if (this.closed) throw new SwitchboardClientError('DISCONNECTED', `${event}: the client is closed`);
    if (!this.socket.connected && !this.socket.active) {
      throw new SwitchboardClientError('DISCONNECTED', `${event}: not connected`);
    }
    let response: Ack<unknown>;
    let abort!: (err: SwitchboardClientError) => void;
    const aborted = new Promise<never>((_, reject) => (abort = reject));
    this.pending.add(abort);
    try {
      // while reconnecting, Socket.IO buffers the request and sends it once connected
      const emitter = this.socket.timeout(this.timeoutMs) as unknown as AckEmitter;
      response = await Promise.race([emitter.emitWithAck(event, payload), aborted]);
    } catch (err) {
      throw err instanceof SwitchboardClientError ? err : transportError(event, err, this.timeoutMs);
    } finally {
      this.pending.delete(abort);
    }
    if (response.ok) return response.data as RequestResult<E>;
    const { code, message, details } = response.error;
    throw new SwitchboardClientError(code, message, details);
  }

  async join(room: string, options: JoinOptions = {}): Promise<RoomJoinResult> {
    const token = await resolveToken(options.token);
    const result = await this.request('room:join', {
      room,
      ...(token === undefined ? {} : { token }),
      ...(options.since === undefined ? {} : { since: options.since }),
    });
    if (this.closed) return result;
    let state = this.rooms.get(room);
    if (!state) {
      state = { room, token: undefined, lastId: undefined, seen: new RecentIds(RECENT_MESSAGE_IDS), buffer: undefined };
      this.rooms.set(room, state);
    }
    if (options.token !== undefined) state.token = options.token;
    if (options.since !== undefined && result.history) {
      state.lastId = laterId(state.lastId, options.since);
      this.remember(state, result.history.messages);
    }
    // so that a reconnect right after this join already knows where to resume from
    if (state.lastId === undefined && this.resumeEnabled) await this.seed(state);
    return result;
  }

  async leave(room: string): Promise<void> {
    this.rooms.delete(room);
    await this.request('room:leave', { room });
  }

  async publish(room: string, data: unknown, options: PublishOptions = {}): Promise<{ id: string; ts: number }> {
    const ack = await this.request('room:publish', { room, data, ...(options.type === undefined ? {} : { type: options.type }) });
    // the server does not echo a message to its sender; a replay after a reconnect would
    this.rooms.get(room)?.seen.add(ack.id);
    return ack;
  }

  typing(room: string, typing: boolean): void {
    if (this.closed) return;
    this.socket.volatile.emit('room:typing', { room, typing });
  }

  members(room: string, options: MembersOptions = {}): Promise<RoomMembersResult> {
    return this.request('room:members', {
      room,
      ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
      ...(options.limit === undefined ? {} : { limit: options.limit }),
    });
  }

  async history(room: string, options: HistoryOptions = {}): Promise<RoomHistoryResult> {
    const result = await this.request('room:history', {
      room,
      ...(options.since === undefined ? {} : { since: options.since }),
      ...(options.limit === undefined ? {} : { limit: options.limit }),
    });
    const state = this.rooms.get(room);
    if (state) this.remember(state, result.messages);
    return result;
  }

  async setPresence(status: PresenceStatus, text?: string): Promise<void> {
    await this.request('presence:set', { status, ...(text === undefined ? {} : { text }) });
  }

  async watch(userIds: readonly string[]): Promise<PresenceInfo[]> {
    const { presence } = await this.request('presence:watch', { userIds: [...userIds] });
    for (const id of userIds) this.watched.add(id);
    return presence;
  }

  async unwatch(userIds: readonly string[]): Promise<void> {
    for (const id of userIds) this.watched.delete(id);
    await this.request('presence:unwatch', { userIds: [...userIds] });
  }

  notifications(options: NotificationListOptions = {}): Promise<NotificationListResult> {
    return this.request('notification:list', {
      ...(options.before === undefined ? {} : { before: options.before }),
      ...(options.limit === undefined ? {} : { limit: options.limit }),
      ...(options.unreadOnly === undefined ? {} : { unreadOnly: options.unreadOnly }),
    });
  }

  async markRead(ids: readonly string[] | 'all'): Promise<number> {
    const { unread } = await this.request('notification:read', ids === 'all' ? { all: true } : { ids: [...ids] });
    return unread;
  }

  async ping(): Promise<number> {
    const start = performance.now();
    await this.request('session:ping', {});
    return performance.now() - start;
  }

  // ---- events ----

  on<E extends keyof ServerToClientEvents>(event: E, listener: ServerToClientEvents[E]): () => void {
    return this.listeners.add(event, listener);
  }

  onGap(listener: GapListener): () => void {
    return this.local.add('gap', listener);
  }

  onResumeError(listener: ResumeErrorListener): () => void {
    return this.local.add('resumeError', listener);
  }

  private onRoomMessage(message: RoomMessage): void {
    const state = this.rooms.get(message.room);
    if (!state) this.listeners.emit('room:message', message);
    else if (state.buffer) state.buffer.push(message);
    else this.deliver(state, message);
  }

  private deliver(state: RoomState, message: RoomMessage): void {
    if (!state.seen.add(message.id)) return;
    state.lastId = laterId(state.lastId, message.id);
    this.listeners.emit('room:message', message);
  }

  /** Messages the app got some other way (a call's result): not to be delivered again. */
  private remember(state: RoomState, messages: readonly RoomMessage[]): void {
    for (const m of messages) {
      state.seen.add(m.id);
      state.lastId = laterId(state.lastId, m.id);
    }
  }

  private onNotification(notification: Notification): void {
    if (this.notificationIds.add(notification.id)) this.listeners.emit('notification', notification);
  }

  // ---- resume ----

  /**
   * A room joined without `since` has no last id until a message arrives. Learn the room's
   * latest id now, so that a reconnect before the first message still replays what it missed.
   * Never throws: without a seed, the next resume re-joins without `since` and seeds again.
   */
  private async seed(state: RoomState): Promise<void> {
    let messages: RoomMessage[];
    try {
      ({ messages } = await this.request('room:history', { room: state.room, limit: 1 }));
    } catch {
      return;
    }
    if (this.rooms.get(state.room) !== state) return;
    const last = messages.at(-1);
    state.lastId = last ? laterId(state.lastId, last.id) : (state.lastId ?? BEFORE_ANY_MESSAGE);
  }

  private resume(): void {
    const epoch = this.epoch;
    for (const state of this.rooms.values()) void this.rejoin(state, epoch);
    if (this.watched.size > 0) void this.rewatch(epoch);
  }

  private async rejoin(state: RoomState, epoch: number): Promise<void> {
    const { room } = state;
    const since = state.lastId;
    state.buffer = [];
    const current = () => epoch === this.epoch && this.rooms.get(room) === state;
    let result: RoomJoinResult;
    try {
      const token = await resolveToken(state.token);
      if (!current()) return;
      result = await this.request('room:join', {
        room,
        ...(token === undefined ? {} : { token }),
        ...(since === undefined ? {} : { since }),
      });
    } catch (err) {
      if (!current()) return;
      state.buffer = undefined;
      if (isDisconnected(err)) return; // the next connection tries again
      this.rooms.delete(room);
      this.local.emit('resumeError', toClientError(err, 'room:join'), { room });
      return;
    }
    if (!current()) return;
    const buffered = state.buffer ?? [];
    state.buffer = undefined;
    const history = result.history;
    if (history) {
      const nothingMissed = since === BEFORE_ANY_MESSAGE && history.messages.length === 0;
      if (history.recovered || nothingMissed) {
        for (const m of history.messages) this.deliver(state, m);
      } else {
        this.remember(state, history.messages);
        this.local.emit('gap', room, history);
      }
    }
    for (const m of buffered) this.deliver(state, m);
    if (state.lastId === undefined) void this.seed(state);
  }

  private async rewatch(epoch: number): Promise<void> {
    const ids = [...this.watched];
    for (let i = 0; i < ids.length; i += WATCH_BATCH) {
      const userIds = ids.slice(i, i + WATCH_BATCH);
      try {
        const { presence } = await this.request('presence:watch', { userIds });
        if (epoch !== this.epoch) return;
        // what changed while disconnected, as if it had been seen live
        for (const p of presence) if (this.watched.has(p.userId)) this.listeners.emit('presence:changed', p);
      } catch (err) {
        if (epoch !== this.epoch || isDisconnected(err)) return;
        for (const id of userIds) this.watched.delete(id);
        this.local.emit('resumeError', toClientError(err, 'presence:watch'), { userIds });
      }
    }
  }
}

function toClientError(err: unknown, event: string): SwitchboardClientError {
  return err instanceof SwitchboardClientError
    ? err
    : new SwitchboardClientError('UNAVAILABLE', `${event}: ${describe(err)}`, undefined, { cause: err });
}
