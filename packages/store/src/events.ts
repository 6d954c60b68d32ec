import { LIFECYCLE_CAUSES, LIFECYCLE_EVENT_TYPES, type LifecycleCause, type LifecycleEvent, type LifecycleEventType } from '@switchboard/protocol';
import { keys, type Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * The lifecycle-event outbox (SPEC §7a): a stream in the registry's slot that the registry scripts
 * append to in the same step as the change that causes each event, and that one relay at a time
 * reads in order, hands on (queue, webhooks) and then deletes.
 */

/** One outbox entry: its stream id (the read cursor) and the event. */
export interface OutboxEntry {
  streamId: string;
  event: LifecycleEvent;
}

/** An outbox entry no version of the registry scripts writes. */
export class OutboxEntryError extends Error {
  override name = 'OutboxEntryError';
}

const TYPES = new Set<string>(LIFECYCLE_EVENT_TYPES);
const CAUSES = new Set<string>(LIFECYCLE_CAUSES);

/** The envelope of an outbox entry's fields (`i`, `t`, `c`, `ts`, `s`, `r`, `u`, `l`: see the registry scripts). */
export function outboxEvent(fields: readonly string[]): LifecycleEvent {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  const type = f.t ?? '';
  const cause = f.c ?? '';
  if (!TYPES.has(type) || !CAUSES.has(cause) || !f.i || !f.ts || !f.s) throw new OutboxEntryError(`outbox entry of type "${type}" is incomplete`);
  const base = { id: f.i, ts: Number(f.ts), seq: Number(f.s), cause: cause as LifecycleCause };
  const t = type as LifecycleEventType;
  const need = (name: 'r' | 'u' | 'l'): string => {
    const v = f[name];
    if (v === undefined) throw new OutboxEntryError(`outbox entry ${f.i} of type ${t} lacks "${name}"`);
    return v;
  };
  switch (t) {
    case 'user.online':
      return { ...base, type: t, data: { userId: need('u') } };
    case 'user.offline':
      return { ...base, type: t, data: { userId: need('u'), lastSeen: Number(need('l')) } };
    case 'room.occupied':
    case 'room.vacated':
      return { ...base, type: t, data: { room: need('r') } };
    case 'member.added':
    case 'member.removed':
      return { ...base, type: t, data: { room: need('r'), userId: need('u') } };
  }
}

type StreamReply = [string, [string, string[]][]][] | null;

export class EventOutbox {
  readonly keys: Keys;
  private readonly redis: RedisClient;

  constructor(redis: RedisClient, keyPrefix: string) {
    this.keys = keys(keyPrefix);
    this.redis = redis;
  }

  /**
   * Up to `count` entries after `afterId` (`'0-0'`: from the start), waiting up to `blockMs` for
   * one when there is none. A blocking read needs a connection of its own: pass `blocking`.
   */
  async read(afterId: string, count: number, options: { blockMs?: number; blocking?: RedisClient } = {}): Promise<OutboxEntry[]> {
    const client = options.blocking ?? this.redis;
    const reply = (
      options.blockMs
        ? await client.xread('COUNT', count, 'BLOCK', options.blockMs, 'STREAMS', this.keys.eventOutbox, afterId)
        : await client.xread('COUNT', count, 'STREAMS', this.keys.eventOutbox, afterId)
    ) as StreamReply;
    const entries = reply?.[0]?.[1] ?? [];
    return entries.map(([streamId, fields]) => ({ streamId, event: outboxEvent(fields) }));
  }

  /** Deletes relayed entries. */
  async remove(streamIds: readonly string[]): Promise<void> {
    if (streamIds.length) await this.redis.xdel(this.keys.eventOutbox, ...streamIds);
  }

  /** How many events were trimmed away unread since the outbox began (the registry scripts count them). */
  async lost(): Promise<number> {
    return Number((await this.redis.hget(this.keys.eventState, 'lost')) ?? 0);
  }

  length(): Promise<number> {
    return this.redis.xlen(this.keys.eventOutbox);
  }
}

/** Compares two stream ids (`<ms>-<seq>`). */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}
