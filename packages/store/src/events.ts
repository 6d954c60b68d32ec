import { LIFECYCLE_CAUSES, LIFECYCLE_EVENT_TYPES, type LifecycleCause, type LifecycleEvent, type LifecycleEventType } from '@switchboard/protocol';
import { keys, type Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * The lifecycle-event outbox (SPEC §7a): a stream in the registry's slot that the registry scripts
 * append to in the same step as the change that causes each event, and that one relay at a time
 * reads in order, hands on (queue, webhooks) and then deletes.
 */

/** One event read from the outbox: its entry's stream id (the read cursor) and the event. */
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

/**
 * Where the relay stands: the last `seq` it gave and the count of events written (`w`) up to the
 * last entry it took. Kept in Redis with each commit, so that a relay reading the same entries
 * again (its predecessor died before deleting them) numbers them the same.
 */
export interface OutboxPosition {
  seq: number;
  written: number;
}

interface RawEvent {
  t: string;
  c: string;
  r?: string;
  u?: string;
  l?: string;
}

/** The events of one entry's fields (see the registry scripts: `w`, `i`, and `e`, a line per event). */
export function entryEvents(fields: readonly string[]): { written: number; idBase: string; events: RawEvent[] } {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  const written = Number(f.w);
  if (!Number.isSafeInteger(written) || !f.i || !f.e) throw new OutboxEntryError('outbox entry lacks its count, id or events');
  const events = f.e.split('\n').map((line): RawEvent => {
    const [t = '', c = '', r = '', u = '', l = ''] = line.split(' ');
    return { t, c, ...(r ? { r } : {}), ...(u ? { u } : {}), ...(l ? { l } : {}) };
  });
  return { written, idBase: f.i, events };
}

/** One event of an entry as its envelope. */
export function outboxEvent(raw: RawEvent, base: { id: string; ts: number; seq: number }): LifecycleEvent {
  const { t: type, c: cause } = raw;
  if (!TYPES.has(type) || !CAUSES.has(cause)) throw new OutboxEntryError(`outbox event ${base.id} has type "${type.slice(0, 40)}" and cause "${cause.slice(0, 40)}"`);
  const envelope = { ...base, cause: cause as LifecycleCause };
  const t = type as LifecycleEventType;
  const need = (name: 'r' | 'u' | 'l'): string => {
    const v = raw[name];
    if (v === undefined) throw new OutboxEntryError(`outbox event ${base.id} of type ${t} lacks "${name}"`);
    return v;
  };
  switch (t) {
    case 'user.online':
      return { ...envelope, type: t, data: { userId: need('u') } };
    case 'user.offline':
      return { ...envelope, type: t, data: { userId: need('u'), lastSeen: Number(need('l')) } };
    case 'room.occupied':
    case 'room.vacated':
      return { ...envelope, type: t, data: { room: need('r') } };
    case 'member.added':
    case 'member.removed':
      return { ...envelope, type: t, data: { room: need('r'), userId: need('u') } };
  }
}

type StreamReply = [string, [string, string[]][]][] | null;

export interface ReadOptions {
  blockMs?: number;
  blocking?: RedisClient;
}

export interface OutboxBatch {
  entries: OutboxEntry[];
  /** Entries no registry script writes: to delete, never to hand on. */
  invalid: { streamId: string; reason: string }[];
  /** Every stream id read, the invalid ones included: what `commit` deletes. */
  streamIds: string[];
  /** The last id read (`afterId` when none): where the next read starts. */
  lastId: string;
  /** Where the relay stands after these entries: what `commit` records. */
  position: OutboxPosition;
  /** Events written before these entries and gone unread (trimmed from a full outbox). */
  lost: number;
}

/**
 * Numbers the events of the entries read after `position`: `seq` one past the last, or the
 * entry's time in µs when that is more, so that a Redis that lost its last writes (a failover)
 * still never goes back; `id` the entry's id base and the event's place in it; `ts` the entry's
 * time. Counts the events written between the entries and never read.
 */
export function numberEntries(raw: readonly [string, string[]][], position: OutboxPosition): Omit<OutboxBatch, 'lastId'> {
  const batch: Omit<OutboxBatch, 'lastId'> = { entries: [], invalid: [], streamIds: [], position: { ...position }, lost: 0 };
  const pos = batch.position;
  for (const [streamId, fields] of raw) {
    batch.streamIds.push(streamId);
    try {
      const { written, idBase, events } = entryEvents(fields);
      const ms = Number(streamId.slice(0, streamId.indexOf('-')));
      const out: OutboxEntry[] = [];
      let seq = pos.seq;
      for (const [k, e] of events.entries()) {
        seq = Math.max(seq + 1, ms * 1000);
        out.push({ streamId, event: outboxEvent(e, { id: `${idBase}.${k + 1}`, ts: ms, seq }) });
      }
      const before = written - events.length;
      // a counter behind the relay's: Redis lost it (a failover); nothing to count
      if (before > pos.written) batch.lost += before - pos.written;
      pos.written = written;
      pos.seq = seq;
      batch.entries.push(...out);
    } catch (err) {
      if (!(err instanceof OutboxEntryError)) throw err;
      batch.invalid.push({ streamId, reason: err.message });
    }
  }
  return batch;
}

export class EventOutbox {
  readonly keys: Keys;
  private readonly redis: RedisClient;

  constructor(redis: RedisClient, keyPrefix: string) {
    this.keys = keys(keyPrefix);
    this.redis = redis;
  }

  /** Where the last relay left off (nothing relayed yet: zeros). */
  async position(): Promise<OutboxPosition> {
    const [seq, written] = await this.redis.hmget(this.keys.eventState, 'rseq', 'rw');
    return { seq: Number(seq ?? 0), written: Number(written ?? 0) };
  }

  /**
   * The entries after `afterId` (`'0-0'`: from the start), at most `count`, numbered from
   * `position`, waiting up to `blockMs` for one when there is none. A blocking read needs a
   * connection of its own: pass `blocking`.
   */
  async readBatch(afterId: string, count: number, position: OutboxPosition, options: ReadOptions = {}): Promise<OutboxBatch> {
    const client = options.blocking ?? this.redis;
    const reply = (
      options.blockMs
        ? await client.xread('COUNT', count, 'BLOCK', options.blockMs, 'STREAMS', this.keys.eventOutbox, afterId)
        : await client.xread('COUNT', count, 'STREAMS', this.keys.eventOutbox, afterId)
    ) as StreamReply;
    const raw = reply?.[0]?.[1] ?? [];
    return { ...numberEntries(raw, position), lastId: raw.at(-1)?.[0] ?? afterId };
  }

  /** Every event in the outbox now, numbered from where the last relay left off (for tests and tools). */
  async read(): Promise<OutboxEntry[]> {
    const raw = (await this.redis.xrange(this.keys.eventOutbox, '-', '+')) as [string, string[]][];
    return numberEntries(raw, await this.position()).entries;
  }

  /** Deletes what a relay handed on and records where it stands, in one step; adds the lost to the total. */
  async commit(batch: Pick<OutboxBatch, 'streamIds' | 'position' | 'lost'>): Promise<void> {
    const m = this.redis.multi();
    if (batch.streamIds.length) m.xdel(this.keys.eventOutbox, ...batch.streamIds);
    m.hset(this.keys.eventState, 'rseq', batch.position.seq, 'rw', batch.position.written);
    if (batch.lost) m.hincrby(this.keys.eventState, 'lost', batch.lost);
    const results = await m.exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('outbox commit was discarded');
  }

  /** Events found trimmed away unread, in total since the outbox began. */
  async lost(): Promise<number> {
    return Number((await this.redis.hget(this.keys.eventState, 'lost')) ?? 0);
  }

  /** Entries in the outbox (each the events of one registry change). */
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
