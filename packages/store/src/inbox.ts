import type { ChainableCommander, Redis } from 'ioredis';
import { isUserId, SwitchboardError, type InboxItem, type Notification, type NotificationListResult } from '@switchboard/protocol';
import type { Keys } from './keys.js';

export interface InboxLimits {
  /** Notifications kept per user; the oldest go first. @default 200 */
  maxItems: number;
  /** Seconds an inbox lives after its last new notification. @default 2592000 (30 days) */
  ttlSec: number;
}

export const DEFAULT_INBOX_LIMITS: InboxLimits = { maxItems: 200, ttlSec: 30 * 86_400 };

/** `limit` of `list` when none is given. */
export const INBOX_PAGE_DEFAULT = 20;
/** Largest `limit` of `list`. */
export const INBOX_PAGE_MAX = 100;

export interface InboxListQuery {
  /** `nextBefore` of the previous page. Opaque. */
  before?: string;
  /** @default 20, at most 100 */
  limit?: number;
  /** Only notifications not yet read. @default false */
  unreadOnly?: boolean;
}

/**
 * Stores notifications in user inboxes and publishes them, many in one call.
 * ARGV: maxItems, ttlSec, then the three inbox keys of a user as (before, after) the user id:
 * before, after of the zset, after of the items hash, after of the unread set (as `keys()` spells
 * them); then per entry: user ids joined by '\n' ('' for none), id, ts, json, channel, message
 * (channel '' when the entry publishes nothing).
 * The keys are built here rather than passed: one argument per entry instead of three per user
 * keeps a 1,000-user call small to encode, send and parse. Like the registry scripts, this needs
 * Redis standalone or Sentinel.
 * A known id changes nothing for that user. An entry publishes only once its users' inboxes are
 * written, so a notification is never published before it is stored. Each entry runs on its own:
 * one that fails (a key of another type, say) leaves the others alone.
 * Returns per entry 1, or a string 'ERR <reason>'.
 *
 * The three keys of a user always get their TTL together, so when the unread set's TTL is still
 * the full `ttlSec` (refreshed less than a second ago) the refresh is skipped. The unread set is
 * the one checked because it is the key that can disappear on its own (all read) and come back
 * without a TTL.
 */
const ADD_LUA = `
local maxItems, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local pre, post, itemsPost, unreadPost = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local call = redis.call
local function store(user, id, ts, json)
  local inbox, items, unread = pre .. user .. post, pre .. user .. itemsPost, pre .. user .. unreadPost
  if call('ZADD', inbox, 'NX', ts, id) == 1 then
    call('HSET', items, id, json)
    call('SADD', unread, id)
    local excess = call('ZCARD', inbox) - maxItems
    while excess > 0 do
      local popped = call('ZPOPMIN', inbox, math.min(excess, 500))
      local old = {}
      for j = 1, #popped, 2 do old[#old + 1] = popped[j] end
      if #old == 0 then break end
      call('HDEL', items, unpack(old))
      call('SREM', unread, unpack(old))
      excess = excess - #old
    end
    if call('TTL', unread) ~= ttl then
      call('EXPIRE', inbox, ttl)
      call('EXPIRE', items, ttl)
      call('EXPIRE', unread, ttl)
    end
  end
end
local function deliver(users, id, ts, json, channel, message)
  for user in string.gmatch(users, '[^\\n]+') do store(user, id, ts, json) end
  if channel ~= '' then call('PUBLISH', channel, message) end
end
local out = {}
for a = 7, #ARGV, 6 do
  local ok, err = pcall(deliver, ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
  if ok then
    out[#out + 1] = 1
  else
    out[#out + 1] = 'ERR ' .. tostring(type(err) == 'table' and err.err or err)
  end
end
return out
`;

/**
 * Users per call of the add script: bounds how long one call holds Redis (about 3 ms for a full
 * batch). A job reaches at most 1,000 users (SPEC §6), so each job is one call.
 */
export const ADD_BATCH = 1000;

/**
 * KEYS: inbox zset, items hash, unread set. ARGV: max score ('+inf' or the cursor's), number of
 * items at that score already returned, limit, '1' for unread only.
 * Newest first; ties on the score keep the zset's order. A cursor is (score, items of that score
 * seen so far), so it stays valid when older items are trimmed and when items are read.
 * Returns { unread, cursorScore | '', cursorRun, id1, json1, read1, id2, ... }.
 */
const LIST_LUA = `
local maxScore = ARGV[1]
local skip = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local unreadOnly = ARGV[4] == '1'
local chunk = limit + 1
if unreadOnly then chunk = 100 end
local out = {}
local found = 0
local curScore = nil
if maxScore ~= '+inf' then curScore = tonumber(maxScore) end
local run = skip
local cursorScore = ''
local cursorRun = 0
local more = false
local offset = skip
while not more do
  local page = redis.call('ZREVRANGEBYSCORE', KEYS[1], maxScore, '-inf', 'WITHSCORES', 'LIMIT', offset, chunk)
  local n = #page / 2
  if n == 0 then break end
  for i = 1, #page, 2 do
    local id = page[i]
    local score = tonumber(page[i + 1])
    if score == curScore then run = run + 1 else curScore = score; run = 1 end
    local unread = redis.call('SISMEMBER', KEYS[3], id) == 1
    if unread or not unreadOnly then
      if found == limit then
        more = true
        break
      end
      local json = redis.call('HGET', KEYS[2], id)
      if json then
        found = found + 1
        out[#out + 1] = id
        out[#out + 1] = json
        out[#out + 1] = unread and '0' or '1'
      end
      cursorScore = page[i + 1]
      cursorRun = run
    end
  end
  if n < chunk then break end
  offset = offset + n
end
if not more then cursorScore = '' end
local result = { redis.call('SCARD', KEYS[3]), cursorScore, cursorRun }
for i = 1, #out do result[#result + 1] = out[i] end
return result
`;

const ADD = 'switchboardInboxAdd';
const LIST = 'switchboardInboxList';

/** numKeys (0), maxItems, ttlSec, the key parts, then (users, id, ts, json, channel, message) per entry. */
type AddCommand = (numKeys: number, ...args: (string | number | Buffer)[]) => Promise<Array<number | string>>;
type ListCommand = (
  inbox: string,
  items: string,
  unread: string,
  maxScore: string,
  skip: number,
  limit: number,
  unreadOnly: '0' | '1',
) => Promise<Array<string | number>>;
type WithInboxCommands = { [ADD]: AddCommand; [LIST]: ListCommand };

/** A Redis PUBLISH: what the Socket.IO Redis emitter sends for one broadcast. */
export interface Publication {
  channel: string;
  message: Buffer;
}

/** One notification to store for some users (none: publish only) and to publish once stored. */
export interface InboxDelivery {
  userIds: readonly string[];
  notification: Notification;
  publish?: Publication;
}

/** An inbox write that Redis refused (a key holding another type, out of memory…): nothing was published. */
export class InboxWriteError extends Error {
  override name = 'InboxWriteError';
}

const CURSOR_RE = /^([0-9]{1,16})\.([0-9]{1,9})$/;

function parseCursor(before: string): { score: string; run: number } {
  const m = CURSOR_RE.exec(before);
  if (!m) throw new SwitchboardError('INVALID_PAYLOAD', '/before: not a cursor returned by notification:list');
  return { score: m[1]!, run: Number(m[2]) };
}

function pageSize(limit: number | undefined): number {
  if (limit === undefined) return INBOX_PAGE_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new SwitchboardError('INVALID_PAYLOAD', '/limit: expected a positive integer');
  }
  return Math.min(limit, INBOX_PAGE_MAX);
}

/** What is kept of a notification: its fields, absent ones omitted. */
function stored(n: Notification): Notification {
  return {
    id: n.id,
    type: n.type,
    ...(n.title !== undefined ? { title: n.title } : {}),
    ...(n.body !== undefined ? { body: n.body } : {}),
    ...(n.data !== undefined ? { data: n.data } : {}),
    ts: n.ts,
  };
}

/**
 * A bounded, expiring inbox per user in Redis (SPEC §6): a zset of ids by time, a hash of the
 * notifications and a set of the unread ids, trimmed and expired together.
 */
export class InboxStore {
  readonly limits: InboxLimits;
  private readonly redis: Redis;
  private readonly keys: Keys;
  /** The user's inbox keys around the user id, for the add script: before, after (zset, items, unread). */
  private readonly keyParts: readonly string[];

  constructor(redis: Redis, keys: Keys, limits: Partial<InboxLimits> = {}) {
    this.redis = redis;
    this.keys = keys;
    this.keyParts = inboxKeyParts(keys);
    this.limits = { ...DEFAULT_INBOX_LIMITS, ...limits };
    const { maxItems, ttlSec } = this.limits;
    if (!Number.isInteger(maxItems) || maxItems < 1) throw new RangeError('InboxStore: maxItems must be a positive integer');
    if (!Number.isInteger(ttlSec) || ttlSec < 1) throw new RangeError('InboxStore: ttlSec must be a positive integer');
    const commands = redis as unknown as Partial<WithInboxCommands>;
    if (typeof commands[ADD] !== 'function') redis.defineCommand(ADD, { lua: ADD_LUA });
    if (typeof commands[LIST] !== 'function') redis.defineCommand(LIST, { numberOfKeys: 3, lua: LIST_LUA });
  }

  /**
   * Stores one notification for many users. Idempotent by notification id: storing an id a user
   * already has changes nothing. Trims each inbox to `maxItems` (oldest out) and refreshes its TTL.
   *
   * With `publish`, the publication goes out in the call that writes the last batch of users, once
   * every batch before it succeeded: a failed write publishes nothing.
   * Up to 250 users this is one script call and one round trip.
   */
  async add(userIds: readonly string[], n: Notification, publish?: Publication): Promise<void> {
    const batches: InboxDelivery[] = [];
    for (let i = 0; i < userIds.length; i += ADD_BATCH) batches.push({ userIds: userIds.slice(i, i + ADD_BATCH), notification: n });
    const last = batches.pop() ?? { userIds: [], notification: n };
    if (last.userIds.length === 0 && !publish) return;
    const one = async (entry: InboxDelivery) => {
      const [result] = await this.addMany([entry]);
      if (result) throw result;
    };
    // sent together on one connection: one round trip however many batches
    const head = batches.map(one);
    if (publish) await Promise.all(head);
    await Promise.all([...head, one(publish ? { ...last, publish } : last)]);
  }

  /**
   * Several deliveries in one script call: each entry stores its notification for its users, then
   * publishes it. Entries succeed or fail on their own: the result holds, per entry, nothing or its
   * error, an `InboxWriteError` when Redis refused the write, a `SwitchboardError`
   * (`INVALID_PAYLOAD`) when the entry was not sent (a user id that is not one, a bad `ts`).
   * An entry's users should be few (at most 1,000 in all per call keeps one call short): larger
   * audiences go through `add`.
   */
  async addMany(entries: readonly InboxDelivery[]): Promise<Array<InboxWriteError | SwitchboardError | undefined>> {
    const results: Array<InboxWriteError | SwitchboardError | undefined> = entries.map(invalidEntry);
    const sent: number[] = [];
    const args: (string | number | Buffer)[] = [this.limits.maxItems, this.limits.ttlSec, ...this.keyParts];
    entries.forEach(({ userIds, notification: n, publish }, i) => {
      if (results[i]) return;
      sent.push(i);
      args.push(userIds.join('\n'), n.id, n.ts, userIds.length > 0 ? JSON.stringify(stored(n)) : '', publish?.channel ?? '', publish?.message ?? '');
    });
    if (sent.length === 0) return results;
    const replies = await (this.redis as unknown as WithInboxCommands)[ADD](0, ...args);
    replies.forEach((r, j) => {
      if (typeof r === 'string') results[sent[j]!] = new InboxWriteError(r.replace(/^ERR /, ''));
    });
    return results;
  }

  /** A page of a user's inbox, newest first, with the unread count. */
  async list(userId: string, q: InboxListQuery = {}): Promise<NotificationListResult> {
    const limit = pageSize(q.limit);
    const cursor = q.before === undefined ? { score: '+inf', run: 0 } : parseCursor(q.before);
    const k = this.userKeys(userId);
    const reply = await (this.redis as unknown as WithInboxCommands)[LIST](
      k.inbox,
      k.items,
      k.unread,
      cursor.score,
      cursor.run,
      limit,
      q.unreadOnly ? '1' : '0',
    );
    const items: InboxItem[] = [];
    for (let i = 3; i + 2 < reply.length; i += 3) {
      items.push({ ...(JSON.parse(String(reply[i + 1])) as Notification), read: String(reply[i + 2]) === '1' });
    }
    const nextScore = String(reply[1] ?? '');
    return {
      items,
      unread: Number(reply[0]),
      ...(nextScore !== '' ? { nextBefore: `${nextScore}.${Number(reply[2])}` } : {}),
    };
  }

  /** Marks some notifications, or all, as read. Returns the unread count after. */
  async markRead(userId: string, which: readonly string[] | 'all'): Promise<number> {
    const k = this.userKeys(userId);
    if (which === 'all') {
      await this.redis.del(k.unread);
      return 0;
    }
    if (which.length === 0) return this.unread(userId);
    const replies = results(await this.redis.multi().srem(k.unread, ...which).scard(k.unread).exec());
    return Number(replies[1]);
  }

  /** Number of unread notifications of a user. */
  async unread(userId: string): Promise<number> {
    return this.redis.scard(this.userKeys(userId).unread);
  }

  private userKeys(userId: string) {
    return { inbox: this.keys.inbox(userId), items: this.keys.inboxItems(userId), unread: this.keys.inboxUnread(userId) };
  }
}

/** Why an entry cannot be written, if it cannot. */
function invalidEntry({ userIds, notification: n }: InboxDelivery): SwitchboardError | undefined {
  if (userIds.length === 0) return undefined;
  if (!Number.isSafeInteger(n.ts) || n.ts < 0) return new SwitchboardError('INVALID_PAYLOAD', '/ts: expected ms since the epoch');
  const bad = userIds.find((u) => !isUserId(u));
  return bad === undefined ? undefined : new SwitchboardError('INVALID_PAYLOAD', `/userIds: not a user id: ${JSON.stringify(String(bad).slice(0, 64))}`);
}

/** Splits the three inbox keys of `keys()` around the user id: [before, after zset, after items, after unread]. */
function inboxKeyParts(keys: Keys): string[] {
  const mark = '\u0000';
  const [before, zset] = keys.inbox(mark).split(mark) as [string, string];
  const parts = [keys.inboxItems(mark), keys.inboxUnread(mark)].map((key) => key.split(mark) as [string, string]);
  if (parts.some(([b]) => b !== before)) throw new Error('InboxStore: the inbox keys must share the part before the user id');
  return [before, zset, ...parts.map(([, after]) => after)];
}

function results(replies: Awaited<ReturnType<ChainableCommander['exec']>>): unknown[] {
  if (!replies) throw new SwitchboardError('UNAVAILABLE', 'redis transaction aborted');
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
