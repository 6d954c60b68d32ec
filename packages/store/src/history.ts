import type { Redis } from 'ioredis';
import type { RoomHistoryResult, RoomMessage } from '@switchboard/protocol';
import { keys, type Keys } from './keys.js';

/**
 * KEYS[1] stream; ARGV: since ('' for the latest), limit.
 * → { recovered, id1, json1, id2, json2, … }
 * With `since`, `recovered` is 0 when entries after `since` were trimmed away (Redis 7's
 * `max-deleted-entry-id`), when the stream expired, or when more than `limit` follow; the
 * messages are then the latest `limit`, so a client never mistakes a partial replay for a whole.
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
local after = redis.call('XRANGE', key, '(' .. since, '+', 'COUNT', limit + 1)
if not le(maxDeleted, since) or #after > limit then return flat(latest(), 0) end
return flat(after, 1)
`;

interface HistoryCommands {
  sbHistoryRange(key: string, since: string, limit: string): Promise<(string | number)[]>;
}

export interface HistoryOptions {
  /** Messages kept per room (approximately; 0 turns history off). @default 200 */
  maxLength: number;
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
  private readonly redis: Redis & HistoryCommands;
  private seq = 0;

  constructor(
    redis: Redis,
    keyPrefix: string,
    private readonly options: HistoryOptions,
  ) {
    this.keys = keys(keyPrefix);
    this.redis = redis as Redis & HistoryCommands;
    if (typeof this.redis.sbHistoryRange !== 'function') {
      redis.defineCommand('sbHistoryRange', { numberOfKeys: 1, lua: RANGE });
    }
  }

  /** Appends a message and returns it with its id and timestamp: one round trip. */
  async append(message: NewMessage): Promise<RoomMessage> {
    const entry = JSON.stringify(message.type === undefined ? { from: message.from, data: message.data } : { type: message.type, from: message.from, data: message.data });
    let id: string;
    if (this.options.maxLength === 0) {
      id = `${Date.now()}-${this.seq++}`;
    } else {
      const key = this.keys.history(message.room);
      const res = await this.redis
        .pipeline()
        .xadd(key, 'MAXLEN', '~', String(this.options.maxLength), '*', 'm', entry)
        .expire(key, this.options.ttlSec)
        .exec();
      const [err, xid] = res?.[0] ?? [new Error('no reply')];
      if (err) throw err;
      id = xid as string;
    }
    return { room: message.room, id, ts: Number(id.slice(0, id.indexOf('-'))), ...pick(message) };
  }

  /** Messages after `since` (or the latest), oldest first, at most `limit`. */
  async range(room: string, since: string | undefined, limit: number): Promise<RoomHistoryResult> {
    if (this.options.maxLength === 0) return { messages: [], recovered: since === undefined };
    const out = await this.redis.sbHistoryRange(this.keys.history(room), since ?? '', String(limit));
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

/** Something that can emit `room:message` to a room: a socket, the server, or the emitter. */
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
  target.emit('room:message', stored);
  return stored;
}
