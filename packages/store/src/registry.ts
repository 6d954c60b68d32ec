import { randomUUID } from 'node:crypto';
import type { ChainableCommander, Redis } from 'ioredis';
import type { PresenceStatus } from '@switchboard/protocol';
import { keys, type Keys } from './keys.js';
import { CONNECT, DISCONNECT, DROP_POD, HEARTBEAT, JOIN, LEAVE, SET_STATUS, UNLOCK } from './registry-scripts.js';

interface RegistryCommands {
  sbConnect(...args: string[]): Promise<[number, number, number, string]>;
  sbJoin(...args: string[]): Promise<[number, number, number]>;
  sbLeave(...args: string[]): Promise<[number, number, number]>;
  sbDisconnect(...args: string[]): Promise<string[]>;
  sbHeartbeat(...args: string[]): Promise<number>;
  sbDropPod(...args: string[]): Promise<number>;
  sbSetStatus(...args: string[]): Promise<number>;
  sbUnlock(key: string, token: string): Promise<number>;
}
type ScriptedRedis = Redis & RegistryCommands;

const SCRIPTS = {
  sbConnect: CONNECT,
  sbJoin: JOIN,
  sbLeave: LEAVE,
  sbDisconnect: DISCONNECT,
  sbHeartbeat: HEARTBEAT,
  sbDropPod: DROP_POD,
  sbSetStatus: SET_STATUS,
} as const;

/** Registers the registry's scripts on a client once (ioredis sends EVALSHA, falling back to EVAL). */
function scripted(redis: Redis): ScriptedRedis {
  const r = redis as ScriptedRedis;
  if (typeof r.sbConnect !== 'function') {
    for (const [name, lua] of Object.entries(SCRIPTS)) redis.defineCommand(name, { numberOfKeys: 0, lua });
    redis.defineCommand('sbUnlock', { numberOfKeys: 1, lua: UNLOCK });
  }
  return r;
}

export interface ConnectResult {
  accepted: boolean;
  /** The user's sockets across the cluster, this one included when accepted. */
  userSockets: number;
  /** This socket made the user go online. */
  cameOnline: boolean;
  status: PresenceStatus;
}

export interface DisconnectResult {
  userId: string;
  /** This was the user's last socket anywhere. */
  wentOffline: boolean;
  status: PresenceStatus;
  /** Rooms this user no longer has any socket in. */
  roomsLeft: string[];
}

export interface MembershipChange {
  /** False when nothing changed (already in / not in the room). */
  changed: boolean;
  /** The user's first socket in (join) or last socket out (leave). */
  userChanged: boolean;
  /** Distinct users in the room afterwards. */
  members: number;
}

export interface ReapedSocket extends DisconnectResult {
  socketId: string;
  pod: string;
}

export interface RegistryOptions {
  /** How long a user's status and `lastSeen` are kept after they go offline. @default 30 days */
  userTtlSec?: number;
}

/**
 * The cluster-wide connection registry (SPEC §5): pods and their heartbeats, sockets, users
 * online across devices, and room membership by user. Writes are atomic Lua scripts; the
 * counts the admin API shows are maintained incrementally, so reading them never scans.
 */
export class Registry {
  readonly keys: Keys;
  private readonly base: string;
  private readonly redis: ScriptedRedis;
  private readonly userTtlSec: string;

  constructor(redis: Redis, keyPrefix: string, options: RegistryOptions = {}) {
    this.redis = scripted(redis);
    this.keys = keys(keyPrefix);
    this.base = `${keyPrefix}:reg`;
    this.userTtlSec = String(options.userTtlSec ?? 30 * 86_400);
  }

  async connect(s: {
    socketId: string;
    userId: string;
    pod: string;
    name?: string;
    maxConnections: number;
    now?: number;
  }): Promise<ConnectResult> {
    const [accepted, userSockets, came, status] = await this.redis.sbConnect(
      this.base,
      s.socketId,
      s.userId,
      s.pod,
      String(s.now ?? Date.now()),
      s.name ?? '',
      String(s.maxConnections),
      this.userTtlSec,
    );
    return { accepted: accepted === 1, userSockets, cameOnline: came === 1, status: asStatus(status) };
  }

  async join(socketId: string, room: string): Promise<MembershipChange> {
    const [changed, first, members] = await this.redis.sbJoin(this.base, socketId, room);
    return { changed: changed === 1, userChanged: first === 1, members };
  }

  async leave(socketId: string, room: string): Promise<MembershipChange> {
    const [changed, last, members] = await this.redis.sbLeave(this.base, socketId, room);
    return { changed: changed === 1, userChanged: last === 1, members };
  }

  /** Removes a socket and everything derived from it; undefined if it was not registered. */
  async disconnect(socketId: string, now = Date.now()): Promise<DisconnectResult | undefined> {
    const out = await this.redis.sbDisconnect(this.base, socketId, String(now), this.userTtlSec);
    return parseDisconnect(out);
  }

  /** Records a heartbeat; false when the pod was unknown (new, or reaped while it was stalled). */
  async heartbeat(pod: string, startedAt: number, now = Date.now()): Promise<boolean> {
    return (await this.redis.sbHeartbeat(this.base, pod, String(now), String(startedAt))) === 1;
  }

  async setStatus(userId: string, status: PresenceStatus, text?: string): Promise<boolean> {
    return (await this.redis.sbSetStatus(this.base, userId, status, text ?? '')) === 1;
  }

  /** Removes a pod that shut down cleanly (its sockets are already gone). */
  async dropPod(pod: string): Promise<void> {
    await this.redis.sbDropPod(this.base, pod);
  }

  /**
   * Reaps pods whose heartbeat is older than `maxAgeMs`: one reaper at a time cluster-wide
   * (a lock), every socket removed through the same script as a clean disconnect, so counts
   * stay exact. Returns what was removed, for the caller to announce.
   */
  async reapDeadPods(maxAgeMs: number, lockMs: number, now = Date.now()): Promise<ReapedSocket[]> {
    const token = randomUUID();
    const locked = await this.redis.set(this.keys.reaperLock, token, 'PX', lockMs, 'NX');
    if (locked !== 'OK') return [];
    const reaped: ReapedSocket[] = [];
    try {
      const dead = await this.redis.zrangebyscore(this.keys.pods, '-inf', now - maxAgeMs);
      for (const pod of dead) {
        for (;;) {
          const batch = await this.redis.srandmember(this.keys.podSockets(pod), 500);
          if (batch.length === 0) break;
          const pipe = this.redis.pipeline() as ChainableCommander & {
            sbDisconnect(...args: string[]): ChainableCommander;
          };
          for (const sid of batch) {
            pipe.sbDisconnect(this.base, sid, String(now), this.userTtlSec);
            // a socket hash may already be gone (crash between writes): make sure it leaves the set
            pipe.srem(this.keys.podSockets(pod), sid);
          }
          const results = (await pipe.exec()) ?? [];
          batch.forEach((sid, i) => {
            const [err, out] = results[i * 2] ?? [];
            if (err) throw err;
            const r = parseDisconnect(out as string[]);
            if (r) reaped.push({ ...r, socketId: sid, pod });
          });
        }
        await this.redis.sbDropPod(this.base, pod);
      }
    } finally {
      await this.redis.sbUnlock(this.keys.reaperLock, token).catch(() => undefined);
    }
    return reaped;
  }
}

function parseDisconnect(out: string[] | undefined | null): DisconnectResult | undefined {
  if (!out || out.length === 0) return undefined;
  const [userId, wentOffline, status, ...roomsLeft] = out;
  return { userId: userId!, wentOffline: Number(wentOffline) === 1, status: asStatus(status), roomsLeft };
}

export function asStatus(value: unknown): PresenceStatus {
  return value === 'away' || value === 'busy' ? value : 'online';
}
