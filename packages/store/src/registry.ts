import { randomBytes, randomUUID } from 'node:crypto';
import type { PresenceStatus } from '@switchboard/protocol';
import { keys, type Keys } from './keys.js';
import { isCluster, type RedisClient } from './redis.js';
import {
  CONNECT,
  DROP_INSTANCE,
  DROP_SOCKETS,
  HEARTBEAT,
  JOIN,
  KICK,
  LEAVE,
  RELEASE_WATCHES,
  RESTORE,
  SET_STATUS,
  SILENT,
  UNLOCK,
  UNWATCH,
  WATCH,
} from './registry-scripts.js';

type Arg = string | number;
type Reply = unknown;
interface RegistryCommands {
  sbRegConnect(...args: Arg[]): Promise<[number, number, number, string, number, number, number]>;
  sbRegJoin(...args: Arg[]): Promise<[number, number, number]>;
  sbRegLeave(...args: Arg[]): Promise<[number, number, number]>;
  sbRegDrop(...args: Arg[]): Promise<Reply[]>;
  sbRegRestore(...args: Arg[]): Promise<Reply[]>;
  sbRegHeartbeat(...args: Arg[]): Promise<[number, number, number]>;
  sbRegSilent(...args: Arg[]): Promise<[number, string[]]>;
  sbRegDropInstance(...args: Arg[]): Promise<number>;
  sbRegSetStatus(...args: Arg[]): Promise<number>;
  sbRegKick(...args: Arg[]): Promise<number>;
  sbRegUnlock(...args: Arg[]): Promise<number>;
  sbRegWatch(...args: Arg[]): Promise<number>;
  sbRegUnwatch(...args: Arg[]): Promise<number>;
  sbRegReleaseWatches(...args: Arg[]): Promise<number>;
}
type ScriptedRedis = RedisClient & RegistryCommands;

const SCRIPTS: Record<keyof RegistryCommands, string> = {
  sbRegConnect: CONNECT,
  sbRegJoin: JOIN,
  sbRegLeave: LEAVE,
  sbRegDrop: DROP_SOCKETS,
  sbRegRestore: RESTORE,
  sbRegHeartbeat: HEARTBEAT,
  sbRegSilent: SILENT,
  sbRegDropInstance: DROP_INSTANCE,
  sbRegSetStatus: SET_STATUS,
  sbRegKick: KICK,
  sbRegUnlock: UNLOCK,
  sbRegWatch: WATCH,
  sbRegUnwatch: UNWATCH,
  sbRegReleaseWatches: RELEASE_WATCHES,
};

/** Registers the registry's scripts on a client once (ioredis sends EVALSHA, falling back to EVAL). */
function scripted(redis: RedisClient): ScriptedRedis {
  const r = redis as ScriptedRedis;
  if (typeof r.sbRegConnect !== 'function') {
    // Every script takes its keys as a leading count (`numberOfKeys` left to the call).
    for (const [name, lua] of Object.entries(SCRIPTS)) redis.defineCommand(name, { lua });
  }
  return r;
}

/** Sockets per script call when many are removed or put back: bounds how long one call holds Redis. */
export const REGISTRY_BATCH = 200;

/** One gateway process: a new process is a new instance, whatever its `POD_ID`. */
export interface InstanceRef {
  /** Unique per process. */
  id: string;
  /** `POD_ID`: what operators and clients see. */
  pod: string;
}

/** A socket as the registry identifies it. */
export interface SocketRef {
  socketId: string;
  userId: string;
  guest: boolean;
}

/** A socket as the pod holding it knows it, to put it back in the registry. */
export interface HeldSocket extends SocketRef {
  name?: string;
  connectedAt: number;
  /** Rooms the socket is in (not its `user:` room). */
  rooms: readonly string[];
}

export type ConnectResult =
  | {
      accepted: true;
      userSockets: number;
      cameOnline: boolean;
      status: PresenceStatus;
      now: number;
      /** The user's unread notifications, when asked for with `countUnread` and read in the same call. */
      unread?: number;
      /** The user came online and someone watches it (`presence:watch`): the arrival is worth announcing. */
      watched: boolean;
    }
  | { accepted: false; reason: 'limit'; userSockets: number }
  | { accepted: false; reason: 'unknown-instance' };

export interface DisconnectResult {
  userId: string;
  /** This was the user's last socket anywhere. */
  wentOffline: boolean;
  status: PresenceStatus;
  /** Rooms this user no longer has any socket in. */
  roomsLeft: string[];
  /** Redis time of the departure. */
  at: number;
  /** The user went offline and someone watches it: the departure's presence is worth announcing. */
  watched: boolean;
}

export interface ReapedSocket extends DisconnectResult {
  socketId: string;
  pod: string;
}

export interface MembershipChange {
  /** False when nothing changed (already in / not in the room). */
  changed: boolean;
  /** The user's first socket in (join) or last socket out (leave). */
  userChanged: boolean;
  /** Distinct users in the room afterwards. */
  members: number;
}

/** What putting sockets back changed, for the pod to announce. */
export interface RestoreResult {
  /** Sockets that were missing and are registered again. */
  registered: number;
  /** Users that are online again, with their status. */
  cameOnline: { userId: string; status: PresenceStatus }[];
  /** (room, user) memberships that exist again. */
  joined: { room: string; userId: string; name?: string }[];
  /** (room, user) memberships that the registry had and the pod did not. */
  left: { room: string; userId: string }[];
  /** Sockets the registry held for this instance but the pod does not: removed. */
  dropped: (DisconnectResult & { socketId: string })[];
}

export interface HeartbeatResult {
  /** False when the instance was unknown: new, or reaped while it was silent. */
  known: boolean;
  /** Redis time of the beat. */
  now: number;
  /** Redis time of the instance's first beat. */
  startedAt: number;
}

export interface RegistryOptions {
  /** How long a user's status and `lastSeen` are kept after they go offline. @default 30 days */
  userTtlSec?: number;
  /**
   * Lifecycle events (SPEC §7a): when set, every presence and membership change writes its events
   * to the outbox in the same script call, the outbox kept to about `outboxMax` entries.
   */
  events?: { outboxMax: number };
}

/** Users per watch, unwatch or release call: each call is short, so Redis never stalls on one. */
const WATCH_BATCH = 500;

/** How long an admin disconnect's mark on a socket lasts: its departure within that is `cause: admin`. */
const KICK_TTL_MS = 30_000;

/** The registry answered something no version of its scripts sends. */
export class RegistryReplyError extends Error {
  override name = 'RegistryReplyError';
}

/**
 * The cluster-wide connection registry (SPEC §5): gateway instances and their heartbeats,
 * sockets, users online across devices, and room membership by user. Writes are atomic Lua
 * scripts in one hash slot; the counts the admin API shows are maintained incrementally, so
 * reading them never scans.
 */
export class Registry {
  readonly keys: Keys;
  private readonly redis: ScriptedRedis;
  private readonly userTtlSec: string;
  private readonly eventsOn: boolean;
  private readonly outboxMax: string;
  /** Event ids: a random base per registry object and a counter per call, then one per event in the script. */
  private readonly idBase = randomBytes(9).toString('base64url');
  private idCounter = 0;

  constructor(redis: RedisClient, keyPrefix: string, options: RegistryOptions = {}) {
    this.redis = scripted(redis);
    this.keys = keys(keyPrefix);
    this.userTtlSec = String(options.userTtlSec ?? 30 * 86_400);
    this.eventsOn = options.events !== undefined;
    this.outboxMax = String(options.events?.outboxMax ?? 0);
  }

  /** The events' ARGV of a script call: on, the id base of this call, the outbox bound. */
  private ev(): [string, string, string] {
    if (!this.eventsOn) return ['0', '', '0'];
    this.idCounter = (this.idCounter + 1) % Number.MAX_SAFE_INTEGER;
    return ['1', `${this.idBase}${this.idCounter.toString(36)}`, this.outboxMax];
  }

  /** Records a heartbeat in Redis time. */
  async heartbeat(instance: InstanceRef, startedAt?: number): Promise<HeartbeatResult> {
    const k = this.keys;
    const [known, now, started] = await this.redis.sbRegHeartbeat(
      2,
      k.instances,
      k.instance(instance.id),
      instance.id,
      instance.pod,
      startedAt === undefined ? '' : String(startedAt),
    );
    return { known: known === 1, now, startedAt: started };
  }

  /**
   * Whether `connect` can read a user's unread count in the same call: the inbox is on the
   * registry's server, which is not so on Redis Cluster (the inbox is in the user's slot).
   */
  get countsUnread(): boolean {
    return !isCluster(this.redis);
  }

  /**
   * Registers a socket, unless the user holds `maxConnections` sockets already (checked in the
   * same step, so concurrent handshakes cannot pass the limit) or the instance has no heartbeat.
   * With `countUnread` (and `countsUnread`), the result also holds the user's unread count.
   */
  async connect(s: SocketRef & { instance: InstanceRef; name?: string; maxConnections: number; countUnread?: boolean }): Promise<ConnectResult> {
    const k = this.keys;
    const withUnread = s.countUnread === true && this.countsUnread;
    const [accepted, userSockets, came, status, now, unread, watched] = await this.redis.sbRegConnect(
      withUnread ? 12 : 11,
      k.instances,
      k.instance(s.instance.id),
      k.instanceSockets(s.instance.id),
      k.counters,
      k.online,
      k.socket(s.socketId),
      k.userSockets(s.userId),
      k.user(s.userId),
      k.eventOutbox,
      k.eventState,
      k.watched,
      ...(withUnread ? [k.inboxUnread(s.userId)] : []),
      s.socketId,
      s.userId,
      s.instance.pod,
      s.instance.id,
      s.name ?? '',
      s.maxConnections,
      s.guest ? '1' : '0',
      ...this.ev(),
    );
    if (accepted === -1) return { accepted: false, reason: 'unknown-instance' };
    if (accepted === 0) return { accepted: false, reason: 'limit', userSockets };
    return {
      accepted: true,
      userSockets,
      cameOnline: came === 1,
      status: asStatus(status),
      now,
      watched: watched === 1,
      ...(withUnread && unread >= 0 ? { unread } : {}),
    };
  }

  /** Adds a socket to a room. Rejects with `RegistryReplyError` for a socket the registry does not hold. */
  async join(s: SocketRef, room: string): Promise<MembershipChange> {
    return this.membership(this.redis.sbRegJoin(7, ...this.roomKeys(s, room), s.userId, room, ...this.ev()), 'join');
  }

  async leave(s: SocketRef, room: string): Promise<MembershipChange> {
    return this.membership(this.redis.sbRegLeave(7, ...this.roomKeys(s, room), s.userId, room, ...this.ev()), 'leave');
  }

  /**
   * Removes a socket held by `instance` and everything derived from it; undefined if it was not
   * registered. `rooms` are the rooms the pod knows it in; rooms the registry holds besides are
   * found and left too.
   */
  async disconnect(instance: InstanceRef, s: SocketRef, rooms: readonly string[]): Promise<DisconnectResult | undefined> {
    const [result] = await this.drop(instance.id, '', 'disconnect', [{ ...s, rooms }]);
    return result;
  }

  /**
   * Marks the user's sockets as closed by an admin, before the admin API disconnects them: their
   * departures then carry `cause: admin`. Returns how many sockets the user has.
   */
  async markKicked(userId: string): Promise<number> {
    return this.redis.sbRegKick(2, this.keys.userSockets(userId), this.keys.kicked, KICK_TTL_MS);
  }

  async setStatus(userId: string, status: PresenceStatus, text?: string): Promise<boolean> {
    return (await this.redis.sbRegSetStatus(2, this.keys.user(userId), this.keys.userSockets(userId), status, text ?? '')) === 1;
  }

  /**
   * Counts `instance` among the watchers of `userIds` in the watched index (what `connect` and
   * `disconnect` read to say whether an arrival or departure has anyone to tell). False when the
   * instance is not registered (reaped while alive): its restore must watch again.
   */
  async watch(instance: InstanceRef, userIds: readonly string[]): Promise<boolean> {
    const k = this.keys;
    for (let i = 0; i < userIds.length; i += WATCH_BATCH) {
      const batch = userIds.slice(i, i + WATCH_BATCH);
      const r = await this.redis.sbRegWatch(3, k.instances, k.instanceWatched(instance.id), k.watched, instance.id, ...batch);
      if (r === -1) return false;
    }
    return true;
  }

  /** Takes `instance` out of the watchers of `userIds` (none of its sockets watches them now). */
  async unwatch(instance: InstanceRef, userIds: readonly string[]): Promise<void> {
    const k = this.keys;
    for (let i = 0; i < userIds.length; i += WATCH_BATCH) {
      await this.redis.sbRegUnwatch(2, k.instanceWatched(instance.id), k.watched, ...userIds.slice(i, i + WATCH_BATCH));
    }
  }

  /** Takes back every watch of an instance, in batches; false when the instance beat meanwhile (`maxAge` set). */
  private async releaseWatches(instanceId: string, maxAge: string): Promise<boolean> {
    const k = this.keys;
    for (let round = 0; round < 100_000; round++) {
      const left = await this.redis.sbRegReleaseWatches(3, k.instances, k.instanceWatched(instanceId), k.watched, instanceId, maxAge, WATCH_BATCH);
      if (left === -1) return false;
      if (left === 0) return true;
    }
    return true;
  }

  /**
   * Makes the registry hold what this instance holds, in batches: registers missing sockets,
   * fixes their rooms, and drops sockets registered in the instance's name that it no longer has.
   * Call after the instance was found reaped while alive, or after Redis may have lost writes.
   * The caller must not change these sockets in the registry meanwhile.
   */
  async restore(instance: InstanceRef, held: readonly HeldSocket[]): Promise<RestoreResult> {
    const k = this.keys;
    const result: RestoreResult = { registered: 0, cameOnline: [], joined: [], left: [], dropped: [] };
    const heldIds = new Set(held.map((s) => s.socketId));
    const registered = await this.redis.smembers(k.instanceSockets(instance.id));
    const strays = registered.filter((sid) => !heldIds.has(sid));
    if (strays.length) result.dropped = await this.dropUnknown(instance.id, '', 'disconnect', strays);

    for (let i = 0; i < held.length; i += REGISTRY_BATCH) {
      const batch = held.slice(i, i + REGISTRY_BATCH);
      const inRegistry = (await Promise.all(batch.map((s) => this.redis.smembers(k.socketRooms(s.socketId))))) as string[][];
      const keyList: string[] = [k.instances, k.instance(instance.id), k.instanceSockets(instance.id), k.counters, k.online, k.rooms, k.eventOutbox, k.eventState];
      const args: Arg[] = [instance.id, instance.pod, ...this.ev()];
      batch.forEach((s, j) => {
        const local = new Set(s.rooms);
        const extra = inRegistry[j]!.filter((room) => !local.has(room));
        keyList.push(k.socket(s.socketId), k.socketRooms(s.socketId), k.userSockets(s.userId), k.user(s.userId));
        for (const room of [...s.rooms, ...extra]) keyList.push(k.roomUsers(room), k.roomMembers(room));
        args.push(s.socketId, s.userId, s.name ?? '', s.guest ? '1' : '0', s.connectedAt, s.rooms.length, extra.length, ...s.rooms, ...extra);
      });
      const reply = await this.redis.sbRegRestore(keyList.length, ...keyList, ...args);
      if (reply[0] === 'unknown') throw new RegistryReplyError('restore: the instance has no heartbeat');
      batch.forEach((s, j) => {
        const [state, came, status, joined, left] = reply[j + 1] as [number, number, string, string[], string[]];
        if (state === 1) result.registered++;
        if (came === 1) result.cameOnline.push({ userId: s.userId, status: asStatus(status) });
        for (const room of joined) result.joined.push({ room, userId: s.userId, ...(s.name ? { name: s.name } : {}) });
        for (const room of left) result.left.push({ room, userId: s.userId });
      });
    }
    return result;
  }

  /**
   * Removes this instance from the registry on a clean shutdown, once its sockets are gone. If some
   * are still registered (a disconnect that could not reach Redis), the instance is marked silent
   * instead, so the next reaper removes them with the events a disconnect sends.
   */
  async leaveCluster(instance: InstanceRef): Promise<'removed' | 'left-to-reaper'> {
    const k = this.keys;
    await this.releaseWatches(instance.id, '');
    const r = await this.redis.sbRegDropInstance(4, k.instances, k.instance(instance.id), k.instanceSockets(instance.id), k.instanceWatched(instance.id), instance.id, '');
    return r === 1 ? 'removed' : 'left-to-reaper';
  }

  /**
   * Reaps instances silent for longer than `maxAgeMs` (Redis time): one reaper at a time cluster-wide
   * (a lock), sockets removed in batches through the same script as a clean disconnect, each batch
   * checking in the same step that the instance is still silent, so counts stay exact and a pod that
   * beats again keeps what it has. Returns what was removed, for the caller to announce;
   * `onBatch` hears of each batch as it is removed.
   */
  async reapSilentInstances(
    maxAgeMs: number,
    lockMs: number,
    options: { onBatch?: (instanceId: string, removed: number) => void | Promise<void> } = {},
  ): Promise<ReapedSocket[]> {
    const k = this.keys;
    const token = randomUUID();
    const locked = await this.redis.set(k.reaperLock, token, 'PX', lockMs, 'NX');
    if (locked !== 'OK') return [];
    const reaped: ReapedSocket[] = [];
    try {
      const [, silent] = await this.redis.sbRegSilent(1, k.instances, maxAgeMs);
      for (const id of silent) {
        const pod = (await this.redis.hget(k.instance(id), 'pod')) ?? id;
        let alive = false;
        for (let round = 0; !alive && round < 10_000; round++) {
          const batch = await this.redis.srandmember(k.instanceSockets(id), REGISTRY_BATCH);
          if (batch.length === 0) break;
          const removed = await this.dropUnknown(id, String(maxAgeMs), 'reaped', batch).catch((err: unknown) => {
            if (err instanceof InstanceAliveError) return undefined;
            throw err;
          });
          if (!removed) alive = true;
          else {
            for (const r of removed) reaped.push({ ...r, pod });
            await options.onBatch?.(id, removed.length);
          }
        }
        if (!alive) alive = !(await this.releaseWatches(id, String(maxAgeMs)));
        if (!alive) {
          await this.redis.sbRegDropInstance(4, k.instances, k.instance(id), k.instanceSockets(id), k.instanceWatched(id), id, maxAgeMs);
        }
      }
    } finally {
      await this.redis.sbRegUnlock(1, k.reaperLock, token).catch(() => undefined);
    }
    return reaped;
  }

  /** Drops sockets known by id only: reads who they are and their rooms first. */
  private async dropUnknown(
    instanceId: string,
    maxAge: string,
    cause: DropCause,
    socketIds: readonly string[],
  ): Promise<(DisconnectResult & { socketId: string })[]> {
    const k = this.keys;
    const out: (DisconnectResult & { socketId: string })[] = [];
    for (let i = 0; i < socketIds.length; i += REGISTRY_BATCH) {
      const ids = socketIds.slice(i, i + REGISTRY_BATCH);
      const facts = await Promise.all(
        ids.map((sid) =>
          Promise.all([this.redis.hmget(k.socket(sid), 'userId', 'guest'), this.redis.smembers(k.socketRooms(sid))]),
        ),
      );
      const sockets = ids.map((sid, j) => {
        const [[userId, guest], rooms] = facts[j]!;
        // a socket id without its hash is only in the instance's set: removed from it by the script
        return { socketId: sid, userId: userId ?? '', guest: guest === '1', rooms };
      });
      const dropped = await this.drop(instanceId, maxAge, cause, sockets);
      dropped.forEach((r, j) => {
        if (r) out.push({ ...r, socketId: ids[j]! });
      });
    }
    return out;
  }

  /**
   * One call of the drop script for `sockets`, then again for the ones the registry held in rooms
   * the caller did not know of. Throws `InstanceAliveError` when `maxAge` is set and the instance beat.
   */
  private async drop(
    instanceId: string,
    maxAge: string,
    cause: DropCause,
    sockets: readonly (SocketRef & { rooms: readonly string[] })[],
  ): Promise<(DisconnectResult | undefined)[]> {
    const k = this.keys;
    const results: (DisconnectResult | undefined)[] = [];
    let pending = sockets.map((s, index) => ({ ...s, index }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 5) throw new RegistryReplyError('disconnect: the socket\'s rooms keep changing');
      const keyList: string[] = [
        k.instances,
        k.instance(instanceId),
        k.instanceSockets(instanceId),
        k.counters,
        k.online,
        k.rooms,
        k.eventOutbox,
        k.eventState,
        k.kicked,
        k.watched,
      ];
      const args: Arg[] = [instanceId, maxAge, this.userTtlSec, cause, ...this.ev()];
      for (const s of pending) {
        keyList.push(k.socket(s.socketId), k.socketRooms(s.socketId), k.userSockets(s.userId), k.user(s.userId));
        for (const room of s.rooms) keyList.push(k.roomUsers(room), k.roomMembers(room));
        args.push(s.socketId, s.userId, s.guest ? '1' : '0', s.rooms.length, ...s.rooms);
      }
      const reply = await this.redis.sbRegDrop(keyList.length, ...keyList, ...args);
      if (reply[0] === 'alive') throw new InstanceAliveError();
      const at = Number(reply[0]);
      const again: typeof pending = [];
      pending.forEach((s, j) => {
        const [code, offline, status, rooms, watched] = reply[j + 1] as [number, number, string, string[], number];
        if (code === 1) {
          results[s.index] = { userId: s.userId, wentOffline: offline === 1, status: asStatus(status), roomsLeft: rooms, at, watched: watched === 1 };
        } else if (code === -2) {
          again.push({ ...s, rooms: [...s.rooms, ...rooms] });
        }
      });
      pending = again;
    }
    return results;
  }

  private roomKeys(s: SocketRef, room: string): string[] {
    const k = this.keys;
    return [k.socket(s.socketId), k.socketRooms(s.socketId), k.roomUsers(room), k.roomMembers(room), k.rooms, k.eventOutbox, k.eventState];
  }

  private async membership(call: Promise<[number, number, number]>, op: string): Promise<MembershipChange> {
    const [changed, userChanged, members] = await call;
    if (changed === -1) throw new UnknownSocketError(`${op}: the registry does not hold this socket`);
    return { changed: changed === 1, userChanged: userChanged === 1, members };
  }
}

/** The socket is not in the registry (its instance was reaped, or it is gone). */
export class UnknownSocketError extends RegistryReplyError {
  override name = 'UnknownSocketError';
}

class InstanceAliveError extends Error {}

/** The cause of a departure's events; a `disconnect` of a socket an admin closes becomes `admin`. */
type DropCause = 'disconnect' | 'reaped';

export function asStatus(value: unknown): PresenceStatus {
  return value === 'away' || value === 'busy' ? value : 'online';
}
