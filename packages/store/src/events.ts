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
 * Where the relay stands: the last `seq` it gave. Kept in Redis with each commit, so that a relay
 * reading the same entries again (its predecessor died before deleting them) numbers them the same.
 */
export interface OutboxPosition {
  seq: number;
}

interface RawEvent {
  t: string;
  c: string;
  r?: string;
  u?: string;
  l?: string;
}

/** The events of one entry's fields (see the registry scripts: `i`, and `e`, a line per event). */
export function entryEvents(fields: readonly string[]): { idBase: string; events: RawEvent[] } {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  if (!f.i || !f.e) throw new OutboxEntryError('outbox entry lacks its id or events');
  const events = f.e.split('\n').map((line): RawEvent => {
    const [t = '', c = '', r = '', u = '', l = ''] = line.split(' ');
    return { t, c, ...(r ? { r } : {}), ...(u ? { u } : {}), ...(l ? { l } : {}) };
  });
  return { idBase: f.i, events };
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
}

/**
 * Numbers the events of the entries read after `position`: `seq` one past the last, or the
 * entry's time in µs when that is more, so that a Redis that lost its last writes (a failover)
 * still never goes back; `id` the entry's id base and the event's place in it; `ts` the entry's
 * time.
 */
export function numberEntries(raw: readonly [string, string[]][], position: OutboxPosition): Omit<OutboxBatch, 'lastId'> {
  const batch: Omit<OutboxBatch, 'lastId'> = { entries: [], invalid: [], streamIds: [], position: { ...position } };
  const pos = batch.position;
  for (const [streamId, fields] of raw) {
    batch.streamIds.push(streamId);
    try {
      const { idBase, events } = entryEvents(fields);
      const ms = Number(streamId.slice(0, streamId.indexOf('-')));
      const out: OutboxEntry[] = [];
      let seq = pos.seq;
      for (const [k, e] of events.entries()) {
        seq = Math.max(seq + 1, ms * 1000);
        out.push({ streamId, event: outboxEvent(e, { id: `${idBase}.${k + 1}`, ts: ms, seq }) });
      }
      pos.seq = seq;
      batch.entries.push(...out);
    } catch (err) {
      if (!(err instanceof OutboxEntryError)) throw err;
      batch.invalid.push({ streamId, reason: err.message });
    }
  }
  return batch;
}

/**
 * KEYS: outbox, state. ARGV: the relay's last seq, then the stream ids it handed on.
 * → entries newly found lost. `entries-added` (Redis 7) counts every entry ever added; what is
 * neither in the stream nor relayed was trimmed. When the count is behind (the stream was lost and
 * made again: a failover), the relayed count is set back so that it adds up again.
 */
const COMMIT = `
local call = redis.call
local deleted = 0
for i = 2, #ARGV do deleted = deleted + call('XDEL', KEYS[1], ARGV[i]) end
call('HSET', KEYS[2], 'rseq', ARGV[1])
local relayed = call('HINCRBY', KEYS[2], 'relayed', deleted)
local info = call('XINFO', 'STREAM', KEYS[1])
local added, length = 0, 0
for i = 1, #info, 2 do
  if info[i] == 'entries-added' then added = info[i + 1] elseif info[i] == 'length' then length = info[i + 1] end
end
local lost = tonumber(call('HGET', KEYS[2], 'lost') or '0')
local now = added - length - relayed
if now > lost then
  call('HSET', KEYS[2], 'lost', now)
  return now - lost
end
if now < lost then call('HSET', KEYS[2], 'relayed', added - length - lost) end
return 0
`;

interface OutboxCommands {
  sbOutboxCommit(outbox: string, state: string, seq: number, ...streamIds: string[]): Promise<number>;
}

export class EventOutbox {
  readonly keys: Keys;
  private readonly redis: RedisClient & OutboxCommands;

  constructor(redis: RedisClient, keyPrefix: string) {
    this.keys = keys(keyPrefix);
    this.redis = redis as RedisClient & OutboxCommands;
    if (typeof this.redis.sbOutboxCommit !== 'function') redis.defineCommand('sbOutboxCommit', { numberOfKeys: 2, lua: COMMIT });
  }

  /** Where the last relay left off (nothing relayed yet: zeros). */
  async position(): Promise<OutboxPosition> {
    return { seq: Number((await this.redis.hget(this.keys.eventState, 'rseq')) ?? 0) };
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

  /**
   * Deletes what a relay handed on and records where it stands, in one step. Returns how many
   * entries (registry changes, each with its events) were found trimmed unread since the last
   * commit: the stream's count of entries ever added, less those it holds and those relayed.
   */
  async commit(batch: Pick<OutboxBatch, 'streamIds' | 'position'>): Promise<number> {
    return this.redis.sbOutboxCommit(this.keys.eventOutbox, this.keys.eventState, batch.position.seq, ...batch.streamIds);
  }

  /** Entries found trimmed away unread, in total since the outbox began. */
  async lost(): Promise<number> {
    return Number((await this.redis.hget(this.keys.eventState, 'lost')) ?? 0);
  }

  /** Entries in the outbox (each the events of one registry change). */
  length(): Promise<number> {
    return this.redis.xlen(this.keys.eventOutbox);
  }
}
