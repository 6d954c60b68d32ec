
import type { RoomHistoryResult, RoomMessage } from '@switchboard/protocol';
import { keys, type Keys } from './keys.js';
import type { RedisClient } from './redis.js';

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
 * KEYS[1] stream, KEYS[2] its meta hash (`bytes`: what the stream holds). ARGV: entry, maxLength,
 * maxBytes, ttlSec → the new entry's id.
 * Appends, then drops the oldest entries until the stream holds at most `maxLength` entries and
 * `maxBytes` bytes (the newest entry always stays). The meta hash keeps `trimmed`, the id of the
 * last entry dropped, so a reader knows exactly what is gone (XTRIM does not move the stream's
 * own `max-deleted-entry-id`, which only XDEL does).
 */
const APPEND = `
local call = redis.call
local entry, maxLength, maxBytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local id = call('XADD', KEYS[1], '*', 'm', entry)
local bytes = call('HINCRBY', KEYS[2], 'bytes', #entry)
local length = call('XLEN', KEYS[1])
if length > maxLength or bytes > maxBytes then
  local last = nil
  local from = '-'
  while (length > maxLength or bytes > maxBytes) and length > 1 do
    local page = call('XRANGE', KEYS[1], from, '+', 'COUNT', 64)
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
    local first = call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)
    call('XTRIM', KEYS[1], 'MINID', first[1][1])
    call('HSET', KEYS[2], 'bytes', bytes, 'trimmed', last)
  end
end
call('EXPIRE', KEYS[1], ARGV[4])
call('EXPIRE', KEYS[2], ARGV[4])
return id
`;

interface HistoryCommands {
  sbHistoryRange(key: string, metaKey: string, since: string, limit: string): Promise<(string | number)[]>;
  sbHistoryAppend(streamKey: string, metaKey: string, entry: string, maxLength: number, maxBytes: number, ttlSec: number): Promise<string>;
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
    }
  }

  /** Appends a message and returns it with its id and timestamp: one round trip. */
  async append(message: NewMessage): Promise<RoomMessage> {
    const entry = JSON.stringify(message.type === undefined ? { from: message.from, data: message.data } : { type: message.type, from: message.from, data: message.data });
    let id: string;
    if (this.options.maxLength === 0) {
      id = `${Date.now()}-${this.seq++}`;
    } else {
      const { maxLength, maxBytes, ttlSec } = this.options;
      const room = message.room;
      id = await this.redis.sbHistoryAppend(this.keys.history(room), this.keys.historyMeta(room), entry, maxLength, maxBytes, ttlSec);
    }
    return { room: message.room, id, ts: Number(id.slice(0, id.indexOf('-'))), ...pick(message) };
  }

  /** Messages after `since` (or the latest), oldest first, at most `limit`. */
  async range(room: string, since: string | undefined, limit: number): Promise<RoomHistoryResult> {
    if (this.options.maxLength === 0) return { messages: [], recovered: since === undefined };
    const out = await this.redis.sbHistoryRange(this.keys.history(room), this.keys.historyMeta(room), since ?? '', String(limit));
    const messages: RoomMessage[] = [];
    for (let i = 1; i < out.length; i += 2) {
      const id = String(out[i]);
      const body = JSON.parse(String(out[i + 1])) as Pick<RoomMessage, 'type' | 'from' | 'data'>;
      messages.push({ room, id, ts: Number(id.slice(0, id.indexOf('-'))), ...pick(body) });
    }
    return { messages, recovered: Number(out[0]) === 1 };
  }
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
  const stored = await history.append(message);
  await target.emit('room:message', stored);
  return stored;
}
