import { Emitter } from '@socket.io/redis-emitter';
import { encode as msgpack } from 'notepack.io';
import type { PubSubMode } from '@switchboard/config';
import type { ServerToClientEvents } from '@switchboard/protocol';
import type { RedisClient } from './redis.js';

type EventName = keyof ServerToClientEvents;

/** One message for the gateways' adapter: PUBLISH (classic) or SPUBLISH (sharded) on `channel`. */
export interface Publication {
  channel: string;
  message: Buffer | string;
  sharded: boolean;
}

/** Who a broadcast reaches: rooms (none: every socket), minus sockets in `except`. */
export interface BroadcastTarget {
  rooms?: readonly string[];
  except?: readonly string[];
}

// socket.io-adapter's ClusterAdapter message types and socket.io-parser's EVENT packet type
const BROADCAST = 3;
const DISCONNECT_SOCKETS = 6;
const EVENT = 2;
/** The uid of messages that come from no gateway: no adapter has it, so none ignores them as its own. */
const SERVER_UID = 'switchboard-server';

/**
 * Encodes what Switchboard's dispatcher and admin send to the gateways, without a Socket.IO
 * server of their own, in the wire format of the gateways' adapter (`KEY_PREFIX:io` is its key):
 *
 * - `classic` (`@socket.io/redis-adapter`'s `createAdapter`): exactly what
 *   `@socket.io/redis-emitter` publishes; the emitter itself does the encoding, captured instead of
 *   sent, so the dispatcher can send it from inside a script.
 * - `sharded` (`createShardedAdapter`, dynamic subscriptions): what the sharded adapter itself
 *   publishes for `io.to(room).emit(…)` — the emitter cannot SPUBLISH (socket.io-redis-emitter
 *   issue #127). A broadcast to several rooms is one message per room, each on its room's channel,
 *   so that a pod only receives what concerns the rooms it holds; a broadcast to everyone and a
 *   disconnect go on the namespace channel every pod subscribes to.
 *
 * The tests compare both byte for byte with what the emitter and the adapter publish.
 */
export class BroadcastEncoder {
  private readonly emitter: Emitter<ServerToClientEvents>;
  private captured: Publication[] = [];

  constructor(
    /** The adapter's key: `ioKey(KEY_PREFIX)`. */
    readonly key: string,
    readonly mode: PubSubMode,
  ) {
    const sink = {
      publish: (channel: string, message: Buffer | string) => {
        this.captured.push({ channel, message, sharded: false });
      },
    };
    this.emitter = new Emitter<ServerToClientEvents>(sink, { key });
  }

  /** The publications of `event` to `target`. */
  emit<E extends EventName>(target: BroadcastTarget, event: E, ...args: Parameters<ServerToClientEvents[E]>): Publication[] {
    const rooms = target.rooms ?? [];
    const except = target.except ?? [];
    if (this.mode === 'classic') {
      return this.capture(() => {
        const e = this.emitter;
        if (rooms.length && except.length) e.to([...rooms]).except([...except]).emit(event, ...args);
        else if (rooms.length) e.to([...rooms]).emit(event, ...args);
        else if (except.length) e.except([...except]).emit(event, ...args);
        else e.emit(event, ...args);
      });
    }
    const packet = { type: EVENT, data: [event, ...args] };
    if (rooms.length === 0) return [this.sharded(BROADCAST, { packet, opts: options([], except) }, [])];
    return [...new Set(rooms)].map((room) => this.sharded(BROADCAST, { packet, opts: options([room], except) }, [room]));
  }

  /** The publications that make every gateway disconnect the sockets in `rooms`. */
  disconnect(rooms: readonly string[], close: boolean): Publication[] {
    if (this.mode === 'classic') return this.capture(() => this.emitter.in([...rooms]).disconnectSockets(close));
    return [this.sharded(DISCONNECT_SOCKETS, { opts: options(rooms, []), close }, null)];
  }

  private capture(send: () => void): Publication[] {
    this.captured = [];
    send();
    const out = this.captured;
    this.captured = [];
    return out;
  }

  /** A ClusterAdapter message, on the channel the sharded adapter would pick (its `computeChannel`). */
  private sharded(type: number, data: object, rooms: readonly string[] | null): Publication {
    const message = { type, data, uid: SERVER_UID, nsp: '/' };
    const base = `${this.key}#/#`;
    const dynamic = type === BROADCAST && rooms?.length === 1 && !looksLikeASocketId(rooms[0]!);
    return {
      channel: dynamic ? `${base}${rooms![0]}#` : base,
      message: hasBinary(data) ? msgpack(message) : JSON.stringify(message),
      sharded: true,
    };
  }
}

function options(rooms: readonly string[], except: readonly string[]) {
  return { rooms: [...rooms], except: [...except], flags: {} };
}

/** The sharded adapter's own test: a 20-character room may be a socket id, which has no channel of its own. */
function looksLikeASocketId(room: string): boolean {
  return room.length === 20;
}

/** Whether a value holds binary data (then the adapters use msgpack rather than JSON). */
function hasBinary(value: unknown): boolean {
  if (!value || typeof value !== 'object') return false;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return true;
  if (Array.isArray(value)) return value.some(hasBinary);
  return Object.values(value).some(hasBinary);
}

/** Sends publications: PUBLISH or SPUBLISH, all at once; resolves when Redis has taken them. */
export async function sendPublications(redis: RedisClient, publications: readonly Publication[]): Promise<void> {
  await Promise.all(publications.map((p) => (p.sharded ? redis.spublish(p.channel, p.message) : redis.publish(p.channel, p.message))));
}

/**
 * `to(room).emit(event, payload)` and `in(room).disconnectSockets()` from outside the gateways,
 * in either pub/sub mode: the admin API's broadcasts.
 */
export class Broadcaster {
  readonly encoder: BroadcastEncoder;

  constructor(
    private readonly redis: RedisClient,
    key: string,
    mode: PubSubMode,
  ) {
    this.encoder = new BroadcastEncoder(key, mode);
  }

  /** Same as `to`: the sockets in `rooms`. */
  in(rooms: string | readonly string[]) {
    return this.to(rooms);
  }

  to(rooms: string | readonly string[]) {
    const target = { rooms: typeof rooms === 'string' ? [rooms] : rooms };
    return {
      emit: <E extends EventName>(event: E, ...args: Parameters<ServerToClientEvents[E]>): Promise<void> =>
        sendPublications(this.redis, this.encoder.emit(target, event, ...args)),
      disconnectSockets: (close = false): Promise<void> => sendPublications(this.redis, this.encoder.disconnect(target.rooms, close)),
    };
  }
}
