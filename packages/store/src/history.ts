
import type { RoomHistoryResult, RoomMessage } from '@switchboard/protocol';
import { BUDGET_TAKE_FN, type BudgetDecision, type PublishBudget } from './budget.js';
import { keys, type Keys } from './keys.js';
import { isCluster, type RedisClient } from './redis.js';

/**
 * KEYS[1] stream, KEYS[2] its meta hash; ARGV: since ('' for the latest), limit.
 * → { recovered, id1, json1, id2, json2, … }
 * With `since`, `recovered` is 0 when entries after `since` were trimmed away (the meta hash's
 * `trimmed`, or Redis 7's `max-deleted-entry-id` for deleted ones), when the stream expired, or
 * when more than `limit` follow; the messages are then the latest `limit`, so a client never
 * mistakes a partial replay for a whole.
 */
const RANGE = `
local key, since, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function le(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as <= bs)
end
local function flat(entries, recovered)
  local out = {recovered}
  for _, e in ipairs(entries) do
    table.insert(out, e[1])
    table.insert(out, e[2][2])
  end
  return out
end
local function latest()
  local rev = redis.call('XREVRANGE', key, '+', '-', 'COUNT', limit)
  local asc = {}
  for i = #rev, 1, -1 do table.insert(asc, rev[i]) end
  return asc
end
if since == '' then return flat(latest(), 1) end
if redis.call('EXISTS', key) == 0 then return {0} end
local info = redis.call('XINFO', 'STREAM', key)
local maxDeleted = '0-0'
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then maxDeleted = info[i + 1] end
end
local trimmed = redis.call('HGET', KEYS[2], 'trimmed') or '0-0'
local after = redis.call('XRANGE', key, '(' .. since, '+', 'COUNT', limit + 1)
if not le(maxDeleted, since) or not le(trimmed, since) or #after > limit then return flat(latest(), 0) end
return flat(after, 1)
`;

/**
 * `append(stream, meta, entry, maxLength, maxBytes, ttlSec)` → the new entry's id.
 * Appends, then drops the oldest entries until the stream holds at most `maxLength` entries and
 * `maxBytes` bytes (the newest entry always stays). The meta hash (`bytes`: what the stream holds)
 * keeps `trimmed`, the id of the last entry dropped, so a reader knows exactly what is gone (XTRIM
 * does not move the stream's own `max-deleted-entry-id`, which only XDEL does).
 * A full history drops one entry per append: only the count is over, so exactly the entries over
 * it are read (their sizes), and XTRIM MINID takes everything up to the last of them (the id just
 * after it: the same milliseconds, the next sequence number).
 */
const APPEND_FN = `
local function append(stream, meta, entry, maxLength, maxBytes, ttlSec)
  local call = redis.call
  maxLength, maxBytes = tonumber(maxLength), tonumber(maxBytes)
  local id = call('XADD', stream, '*', 'm', entry)
  local bytes = call('HINCRBY', meta, 'bytes', #entry)
  local length = call('XLEN', stream)
  if length > maxLength or bytes > maxBytes then
    local last = nil
    local from = '-'
    while (length > maxLength or bytes > maxBytes) and length > 1 do
      local count = 64
      if bytes <= maxBytes and length - maxLength < count then count = length - maxLength end
      local page = call('XRANGE', stream, from, '+', 'COUNT', count)
      if #page == 0 then break end
      for _, e in ipairs(page) do
        if not ((length > maxLength or bytes > maxBytes) and length > 1) then break end
        bytes = bytes - #e[2][2]
        length = length - 1
        last = e[1]
      end
      from = '(' .. last
    end
    if last then
      local dash = string.find(last, '-', 1, true)
      local seq = tonumber(string.sub(last, dash + 1))
      local minid
      if seq < 9007199254740991 then
        minid = string.sub(last, 1, dash) .. string.format('%.0f', seq + 1)
      else
        minid = call('XRANGE', stream, '(' .. last, '+', 'COUNT', 1)[1][1]
      end
      call('XTRIM', stream, 'MINID', minid)
      call('HSET', meta, 'bytes', bytes, 'trimmed', last)
    end
  end
  call('EXPIRE', stream, ttlSec)
  call('EXPIRE', meta, ttlSec)
  return id
end
`;

/** KEYS[1] stream, KEYS[2] its meta hash. ARGV: entry, maxLength, maxBytes, ttlSec → the new entry's id. */
const APPEND = `${APPEND_FN}
return append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
`;

/**
 * The publish path where the publisher's budget and the room's history are on one server
 * (standalone, Sentinel: one round trip before the broadcast instead of two).
 * KEYS[1] the user's budget hash, KEYS[2] stream, KEYS[3] its meta hash. ARGV: bytes of `data`,
 * max messages, max bytes, window ms, then entry, maxLength, maxBytes, ttlSec.
 * → { 1, id } stored; { 0, ms until the budget's window ends } refused, nothing written.
 */
const PUBLISH = `${BUDGET_TAKE_FN}${APPEND_FN}
local taken = take(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if taken[1] == 0 then return taken end
return {1, append(KEYS[2], KEYS[3], ARGV[5], ARGV[6], ARGV[7], ARGV[8])}
`;

interface HistoryCommands {
  sbHistoryRange(key: string, metaKey: string, since: string, limit: string): Promise<(string | number)[]>;
  sbHistoryAppend(streamKey: string, metaKey: string, entry: string, maxLength: number, maxBytes: number, ttlSec: number): Promise<string>;
  sbHistoryPublish(
    budgetKey: string,
    streamKey: string,
    metaKey: string,
    ...args: [bytes: number, messages: number, maxBytes: number, windowMs: number, entry: string, maxLength: number, maxHistoryBytes: number, ttlSec: number]
  ): Promise<[0 | 1, number | string]>;
}

export interface HistoryOptions {
  /** Messages kept per room (0 turns history off). @default 200 */
  maxLength: number;
  /** Bytes of messages kept per room (the oldest go first). @default 1048576 */
  maxBytes: number;
  /** A room's history expires this long after its last message. @default 86400 */
  ttlSec: number;
}

export type NewMessage = Omit<RoomMessage, 'id' | 'ts'>;

/** A publish counted against a budget: stored, or refused with when to retry. */
export type PublishDecision = { allowed: true; message: RoomMessage } | Extract<BudgetDecision, { allowed: false }>;

/**
 * Room history in Redis Streams. The stream id is the message id, so ids are ordered and
 * the timestamp is Redis's clock, shared by every pod.
 */
export class RoomHistory {
  readonly keys: Keys;
  private readonly redis: RedisClient & HistoryCommands;
  private seq = 0;

  constructor(
    redis: RedisClient,
    keyPrefix: string,
    private readonly options: HistoryOptions,
  ) {
    this.keys = keys(keyPrefix);
    this.redis = redis as RedisClient & HistoryCommands;
    if (typeof this.redis.sbHistoryRange !== 'function') {
      redis.defineCommand('sbHistoryRange', { numberOfKeys: 2, lua: RANGE });
      redis.defineCommand('sbHistoryAppend', { numberOfKeys: 2, lua: APPEND });
      redis.defineCommand('sbHistoryPublish', { numberOfKeys: 3, lua: PUBLISH });
    }
  }

  /** Appends a message and returns it with its id and timestamp: one round trip. */
  async append(message: NewMessage): Promise<RoomMessage> {
    const entry = encode(message);
    let id: string;
    if (this.options.maxLength === 0) {
      id = this.localId();
    } else {
      const { maxLength, maxBytes, ttlSec } = this.options;
      const room = message.room;
      id = await this.redis.sbHistoryAppend(this.keys.history(room), this.keys.historyMeta(room), entry, maxLength, maxBytes, ttlSec);
    }
    return stored(message.room, id, message);
  }

  /**
   * Counts `bytes` against the publisher's budget and, if it was not spent, appends the message:
   * one script where the budget and the history share a server (standalone, Sentinel), the budget
   * first and then the append on Redis Cluster, where the user's slot and the room's differ.
   */
  async appendWithin(budget: PublishBudget, userId: string, bytes: number, message: NewMessage): Promise<PublishDecision> {
    if (this.options.maxLength === 0 || isCluster(this.redis) || (budget.redis as RedisClient) !== this.redis) {
      const decision = await budget.take(userId, bytes);
      return decision.allowed ? { allowed: true, message: await this.append(message) } : decision;
    }
    const { messages, bytes: maxBytes, windowMs } = budget.limits;
    const { maxLength, maxBytes: maxHistoryBytes, ttlSec } = this.options;
    const room = message.room;
    const [ok, value] = await this.redis.sbHistoryPublish(
      budget.keys.publishBudget(userId),
      this.keys.history(room),
      this.keys.historyMeta(room),
      bytes,
      messages,
      maxBytes,
      windowMs,
      encode(message),
      maxLength,
      maxHistoryBytes,
      ttlSec,
    );
    return ok === 1 ? { allowed: true, message: stored(room, String(value), message) } : { allowed: false, retryAfterMs: Number(value) };
  }

  private localId(): string {
    return `${Date.now()}-${this.seq++}`;
  }

  /** Messages after `since` (or the latest), oldest first, at most `limit`. */
  async range(room: string, since: string | undefined, limit: number): Promise<RoomHistoryResult> {
    if (this.options.maxLength === 0) return { messages: [], recovered: since === undefined };
    const out = await this.redis.sbHistoryRange(this.keys.history(room), this.keys.historyMeta(room), since ?? '', String(limit));
    const messages: RoomMessage[] = [];
    for (let i = 1; i < out.length; i += 2) {
      const id = String(out[i]);
      const body = JSON.parse(String(out[i + 1])) as Pick<RoomMessage, 'type' | 'from' | 'data'>;
      messages.push(stored(room, id, body));
    }
    return { messages, recovered: Number(out[0]) === 1 };
  }
}

/** What a history entry holds of a message: the room and the id are the stream's. */
function encode(message: NewMessage): string {
  return JSON.stringify(pick(message));
}

/** A message as stored under `id`: its time is the id's (Redis's clock). */
function stored(room: string, id: string, body: Pick<RoomMessage, 'type' | 'from' | 'data'>): RoomMessage {
  return { room, id, ts: Number(id.slice(0, id.indexOf('-'))), ...pick(body) };
}

function pick(m: Pick<RoomMessage, 'type' | 'from' | 'data'>): Pick<RoomMessage, 'type' | 'from' | 'data'> {
  return m.type === undefined ? { from: m.from, data: m.data } : { type: m.type, from: m.from, data: m.data };
}

/** Something that can emit `room:message` to a room: a socket, the server, or a broadcaster (which may answer a promise). */
export interface RoomMessageTarget {
  emit(event: 'room:message', message: RoomMessage): unknown;
}

/**
 * The one publish path for the gateway and the admin API: store in history (id, timestamp),
 * then broadcast.
 */
export async function publishRoomMessage(
  history: RoomHistory,
  target: RoomMessageTarget,
  message: NewMessage,
): Promise<RoomMessage> {
  const sent = await history.append(message);
  await target.emit('room:message', sent);
  return sent;
}

/**
 * The same for a user's `room:publish`: the message is stored and broadcast only if the user's
 * publish budget (SPEC §8) takes it; otherwise nothing is written and the answer says when to retry.
 */
export async function publishRoomMessageWithin(
  history: RoomHistory,
  budget: PublishBudget,
  bytes: number,
  target: RoomMessageTarget,
  message: NewMessage & { from: { userId: string } },
): Promise<PublishDecision> {
  const result = await history.appendWithin(budget, message.from.userId, bytes, message);
  if (result.allowed) await target.emit('room:message', result.message);
  return result;
}
