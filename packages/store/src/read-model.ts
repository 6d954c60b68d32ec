import type { ChainableCommander } from 'ioredis';
import type { Member, PresenceInfo } from '@switchboard/protocol';
import { keys, type Keys } from './keys.js';
import type { RedisClient } from './redis.js';
import { asStatus } from './registry.js';

export interface PodInfo {
  /** `POD_ID`. */
  id: string;
  /** The process: a pod restarted under the same id is a new instance (the old one is reaped). */
  instance: string;
  connections: number;
  startedAt: number;
  lastHeartbeatAt: number;
}

export interface ClusterCounts {
  pods: PodInfo[];
  connections: number;
  usersOnline: number;
  rooms: number;
}

export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

export interface UserDetail {
  userId: string;
  name?: string;
  online: boolean;
  status: PresenceInfo['status'];
  text?: string;
  lastSeen?: number;
  sockets: { id: string; pod: string; connectedAt: number }[];
  rooms: string[];
}

export interface RoomSummary {
  room: string;
  members: number;
}

const MAX_PAGE = 1000;

/**
 * Reads of the registry for the gateway and the admin API. Every read costs O(1) or O(page)
 * Redis work: counts are kept incrementally by the registry scripts, lists page by cursor.
 */
export class ReadModel {
  readonly keys: Keys;

  constructor(
    private readonly redis: RedisClient,
    keyPrefix: string,
  ) {
    this.keys = keys(keyPrefix);
  }

  /** Cluster counts in one round trip for the counters, one for the instances. */
  async counts(): Promise<ClusterCounts> {
    const k = this.keys;
    const [instances, connections, usersOnline, rooms] = (await values(
      this.redis.pipeline().zrange(k.instances, 0, -1).hget(k.counters, 'connections').zcard(k.online).zcard(k.rooms),
    )) as [string[], string | null, number, number];
    const pipe = this.redis.pipeline();
    for (const id of instances) pipe.hmget(k.instance(id), 'pod', 'connections', 'startedAt', 'lastHeartbeatAt');
    const res = instances.length ? await values(pipe) : [];
    return {
      pods: instances.map((instance, i) => {
        const [pod, c, s, h] = (res[i] as (string | null)[] | undefined) ?? [];
        return {
          id: pod ?? instance,
          instance,
          connections: Number(c ?? 0),
          startedAt: Number(s ?? 0),
          lastHeartbeatAt: Number(h ?? 0),
        };
      }),
      connections: Math.max(0, Number(connections ?? 0)),
      usersOnline,
      rooms,
    };
  }

  /** Online users in id order; `cursor` is the last id of the previous page. */
  async onlineUsers(cursor: string | undefined, limit: number): Promise<Page<string>> {
    const n = clamp(limit);
    const min = cursor ? `(${cursor}` : '-';
    const ids = await this.redis.zrangebylex(this.keys.online, min, '+', 'LIMIT', 0, n + 1);
    return page(ids.slice(0, n), ids.length > n);
  }

  /** Rooms with at least one member, in name order, optionally under a prefix. */
  async rooms(cursor: string | undefined, limit: number, prefix = ''): Promise<Page<RoomSummary>> {
    const n = clamp(limit);
    const min = cursor && cursor >= prefix ? `(${cursor}` : prefix ? `[${prefix}` : '-';
    const max = prefix ? `[${prefix}\xff` : '+';
    const names = await this.redis.zrangebylex(this.keys.rooms, min, max, 'LIMIT', 0, n + 1);
    const shown = names.slice(0, n);
    const pipe = this.redis.pipeline();
    for (const r of shown) pipe.hlen(this.keys.roomUsers(r));
    const res = shown.length ? await values(pipe) : [];
    const items = shown.map((room, i) => ({ room, members: Number(res[i] ?? 0) }));
    return { items, ...(names.length > n ? { nextCursor: shown[shown.length - 1] } : {}) };
  }

  /** A user's sockets across the cluster. */
  async userSocketCount(userId: string): Promise<number> {
    return this.redis.scard(this.keys.userSockets(userId));
  }

  /** Distinct users in a room. */
  async roomMemberCount(room: string): Promise<number> {
    return this.redis.hlen(this.keys.roomUsers(room));
  }

  /** A page of a room's members, in user id order, with name and status; `cursor` is the last id of the previous page. */
  async roomMembers(room: string, cursor: string | undefined, limit: number): Promise<{ members: Member[]; nextCursor?: string }> {
    const n = clamp(limit);
    const min = cursor ? `(${cursor}` : '-';
    const ids = await this.redis.zrangebylex(this.keys.roomMembers(room), min, '+', 'LIMIT', 0, n + 1);
    const shown = ids.slice(0, n);
    const members = await this.userSummaries(shown);
    return { members, ...(ids.length > n ? { nextCursor: shown[shown.length - 1] } : {}) };
  }

  private async userSummaries(ids: string[]): Promise<Member[]> {
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hmget(this.keys.user(id), 'name', 'status');
    const res = await values(pipe);
    return ids.map((userId, i) => {
      const [name, status] = (res[i] as (string | null)[] | undefined) ?? [];
      return { userId, ...(name ? { name } : {}), status: asStatus(status) };
    });
  }

  /** Presence of many users in one round trip. */
  async presence(userIds: readonly string[]): Promise<PresenceInfo[]> {
    if (userIds.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of userIds) {
      pipe.hmget(this.keys.user(id), 'status', 'lastSeen');
      pipe.scard(this.keys.userSockets(id));
    }
    const res = await values(pipe);
    return userIds.map((userId, i) => {
      const [status, lastSeen] = (res[i * 2] as (string | null)[] | undefined) ?? [];
      const online = Number(res[i * 2 + 1] ?? 0) > 0;
      return {
        userId,
        online,
        status: asStatus(status),
        ...(lastSeen ? { lastSeen: Number(lastSeen) } : {}),
      };
    });
  }

  /** One user's detail, or undefined when the user is neither online nor remembered. */
  async user(userId: string): Promise<UserDetail | undefined> {
    const k = this.keys;
    const [info, socketIds] = (await values(this.redis.pipeline().hgetall(k.user(userId)).smembers(k.userSockets(userId)))) as [
      Record<string, string>,
      string[],
    ];
    if (Object.keys(info).length === 0 && socketIds.length === 0) return undefined;
    const pipe = this.redis.pipeline();
    for (const sid of socketIds) {
      pipe.hmget(k.socket(sid), 'pod', 'connectedAt');
      pipe.smembers(k.socketRooms(sid));
    }
    const res = socketIds.length ? await values(pipe) : [];
    const rooms = new Set<string>();
    const sockets: UserDetail['sockets'] = [];
    socketIds.forEach((id, i) => {
      const [pod, connectedAt] = (res[i * 2] as (string | null)[] | undefined) ?? [];
      if (!pod) return;
      sockets.push({ id, pod, connectedAt: Number(connectedAt ?? 0) });
      for (const r of (res[i * 2 + 1] as string[] | undefined) ?? []) rooms.add(r);
    });
    sockets.sort((a, b) => a.connectedAt - b.connectedAt);
    return {
      userId,
      ...(info.name ? { name: info.name } : {}),
      online: sockets.length > 0,
      status: asStatus(info.status),
      ...(info.text ? { text: info.text } : {}),
      ...(info.lastSeen ? { lastSeen: Number(info.lastSeen) } : {}),
      sockets,
      rooms: [...rooms].sort(),
    };
  }

  /** Age in ms of the stalest instance heartbeat, in Redis time (0 without instances). */
  async oldestHeartbeatAgeMs(): Promise<number> {
    const [oldest, [sec, usec]] = (await values(this.redis.pipeline().zrange(this.keys.instances, 0, 0, 'WITHSCORES').time())) as [
      string[],
      [string, string],
    ];
    if (oldest.length !== 2) return 0;
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    return Math.max(0, now - Number(oldest[1]));
  }
}

/** Runs a pipeline and returns its replies, throwing the first command error (or a lost connection). */
async function values(pipe: ChainableCommander): Promise<unknown[]> {
  const replies = await pipe.exec();
  if (!replies) throw new Error('Redis pipeline was discarded');
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

function clamp(limit: number): number {
  return Math.max(1, Math.min(MAX_PAGE, Math.floor(limit) || 1));
}

function page(items: string[], more: boolean): Page<string> {
  return { items, ...(more ? { nextCursor: items[items.length - 1] } : {}) };
}
