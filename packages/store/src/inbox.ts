import type { ChainableCommander } from 'ioredis';
import { isUserId, SwitchboardError, type InboxItem, type Notification, type NotificationListResult } from '@switchboard/protocol';
import type { Keys } from './keys.js';
import { isCluster, type RedisClient } from './redis.js';

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
 * `inbox_add(inbox, items, unread, id, ts, json, maxItems, ttl)`: stores one notification in one
 * user's inbox (the ADD script below, and the dispatcher's one-step delivery).
 * KEYS: inbox zset, items hash, unread set. ARGV: id, ts, json, maxItems, ttlSec → 1 added, 0 known
 * A known id changes nothing. Trims the inbox to `maxItems` (oldest out, with their unread state)
 * and refreshes the three keys' TTL together; when the unread set's TTL is still the full
 * `ttlSec` (refreshed less than a second ago) the refresh is skipped. The unread set is the one
 * checked because it is the key that can disappear on its own (all read) and come back without
 * a TTL.
 */
export const INBOX_ADD_FN = `
local function inbox_add(inbox, items, unread, id, ts, json, maxItems, ttl)
  local call = redis.call
  if call('ZADD', inbox, 'NX', ts, id) == 0 then return 0 end
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
  return 1
end
`;

const ADD_LUA = `${INBOX_ADD_FN}
return inbox_add(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
`;

/**
 * `inbox_add_all(keys, from, id, ts, json, maxItems, ttl)` → writes refused, the first one's reason:
 * `inbox_add` for every user whose three keys follow in `keys` from index `from`, each on its own
 * (a refused write does not stop the others).
 */
export const INBOX_ADD_ALL_FN = `${INBOX_ADD_FN}
local function inbox_add_all(keys, from, id, ts, json, maxItems, ttl)
  local failed, first = 0, nil
  for i = from, #keys, 3 do
    local ok, err = pcall(inbox_add, keys[i], keys[i + 1], keys[i + 2], id, ts, json, maxItems, ttl)
    if not ok then
      failed = failed + 1
      if not first then
        if type(err) == 'table' then first = err.err or err.message else first = err end
      end
    end
  end
  return failed, tostring(first or '')
end
`;

/** KEYS: each user's inbox, items, unread. ARGV: id, ts, json, maxItems, ttlSec → { writes refused, the first reason } */
const ADD_ALL_LUA = `${INBOX_ADD_ALL_FN}
local failed, first = inbox_add_all(KEYS, 1, ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
return {failed, first}
`;

/** Users per script where every inbox is on one server: about a millisecond of Redis per call. */
const ADD_ALL_CHUNK = 64;

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
const ADD_ALL = 'switchboardInboxAddAll';
const LIST = 'switchboardInboxList';

type AddCommand = (inbox: string, items: string, unread: string, id: string, ts: number, json: string, maxItems: number, ttlSec: number) => Promise<number>;
type ListCommand = (
  inbox: string,
  items: string,
  unread: string,
  maxScore: string,
  skip: number,
  limit: number,
  unreadOnly: '0' | '1',
) => Promise<Array<string | number>>;
type AddAllCommand = (numKeys: number, ...keysAndArgs: (string | number)[]) => Promise<[number, string]>;
type WithInboxCommands = { [ADD]: AddCommand; [ADD_ALL]: AddAllCommand; [LIST]: ListCommand };

/** An inbox write that Redis refused (a key holding another type, out of memory…). */
export class InboxWriteError extends Error {
  override name = 'InboxWriteError';
}

/** `failed` of `of` inbox writes refused, the first for `reason`. */
export function inboxWriteFailed(failed: number, of: number, reason: string): InboxWriteError {
  return new InboxWriteError(`${failed} of ${of} inbox writes failed: ${reason}`);
}

/** One notification as `inbox_add` stores it: per user its inbox, items and unread keys; then id, ts, json, maxItems, ttlSec. */
export interface InboxEntry {
  users: (readonly [inbox: string, items: string, unread: string])[];
  args: [id: string, ts: number, json: string, maxItems: number, ttlSec: number];
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
  private readonly redis: RedisClient;
  private readonly keys: Keys;

  constructor(redis: RedisClient, keys: Keys, limits: Partial<InboxLimits> = {}) {
    this.redis = redis;
    this.keys = keys;
    this.limits = { ...DEFAULT_INBOX_LIMITS, ...limits };
    const { maxItems, ttlSec } = this.limits;
    if (!Number.isInteger(maxItems) || maxItems < 1) throw new RangeError('InboxStore: maxItems must be a positive integer');
    if (!Number.isInteger(ttlSec) || ttlSec < 1) throw new RangeError('InboxStore: ttlSec must be a positive integer');
    const commands = redis as unknown as Partial<WithInboxCommands>;
    if (typeof commands[ADD] !== 'function') redis.defineCommand(ADD, { numberOfKeys: 3, lua: ADD_LUA });
    if (typeof commands[ADD_ALL] !== 'function') redis.defineCommand(ADD_ALL, { lua: ADD_ALL_LUA });
    if (typeof commands[LIST] !== 'function') redis.defineCommand(LIST, { numberOfKeys: 3, lua: LIST_LUA });
  }

  /**
   * Stores one notification for many users: on Redis Cluster one script call per user (each in
   * its user's slot), sent together; elsewhere one call per 64 users, each still written on its
   * own. Idempotent by notification id: storing an id a user already has changes nothing. Rejects with `SwitchboardError` (`INVALID_PAYLOAD`) for a user id that is not one or
   * a bad `ts`, before writing anything, and with `InboxWriteError` when Redis refused a write
   * (the others are written: calling again completes it).
   */
  async add(userIds: readonly string[], n: Notification): Promise<void> {
    if (userIds.length === 0) return;
    const { users, args } = this.entry(userIds, n);
    const commands = this.redis as unknown as WithInboxCommands;
    let failed = 0;
    let reason: string | undefined;
    const refused = (count: number, why: unknown) => {
      failed += count;
      reason ??= why instanceof Error ? why.message : String(why);
    };
    if (isCluster(this.redis)) {
      // each user's keys in the user's own slot: one call per user
      const results = await Promise.allSettled(users.map(([inbox, items, unread]) => commands[ADD].call(this.redis, inbox, items, unread, ...args)));
      for (const r of results) if (r.status === 'rejected') refused(1, r.reason);
    } else {
      // every inbox on one server: one call per chunk of users, far fewer commands for a large audience
      const chunks: InboxEntry['users'][] = [];
      for (let i = 0; i < users.length; i += ADD_ALL_CHUNK) chunks.push(users.slice(i, i + ADD_ALL_CHUNK));
      const results = await Promise.allSettled(chunks.map((c) => commands[ADD_ALL].call(this.redis, c.length * 3, ...c.flat(), ...args)));
      results.forEach((r, i) => {
        if (r.status === 'rejected') refused(chunks[i]!.length, r.reason);
        else if (Number(r.value[0]) > 0) refused(Number(r.value[0]), r.value[1]);
      });
    }
    if (failed) throw inboxWriteFailed(failed, userIds.length, reason ?? '');
  }

  /**
   * What `inbox_add` takes to store `n` for these users: each user's three keys, and the
   * arguments shared by all. Rejects as `add` does, before anything is written.
   */
  entry(userIds: readonly string[], n: Notification): InboxEntry {
    const invalid = invalidEntry(userIds, n);
    if (invalid) throw invalid;
    const { maxItems, ttlSec } = this.limits;
    return {
      users: userIds.map((u) => {
        const k = this.userKeys(u);
        return [k.inbox, k.items, k.unread] as const;
      }),
      args: [n.id, n.ts, JSON.stringify(stored(n)), maxItems, ttlSec],
    };
  }

  /**
   * Whether this store reads `client` under `keyPrefix`: then the registry's `connect` on that
   * client can count a user's unread notifications in the same call.
   */
  readsFrom(client: RedisClient, keyPrefix: string): boolean {
    return this.redis === client && this.keys.prefix === keyPrefix;
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

/** Why a notification cannot be written for these users, if it cannot. */
function invalidEntry(userIds: readonly string[], n: Notification): SwitchboardError | undefined {
  if (!Number.isSafeInteger(n.ts) || n.ts < 0) return new SwitchboardError('INVALID_PAYLOAD', '/ts: expected ms since the epoch');
  const bad = userIds.find((u) => !isUserId(u));
  return bad === undefined ? undefined : new SwitchboardError('INVALID_PAYLOAD', `/userIds: not a user id: ${JSON.stringify(String(bad).slice(0, 64))}`);
}

function results(replies: Awaited<ReturnType<ChainableCommander['exec']>>): unknown[] {
  if (!replies) throw new SwitchboardError('UNAVAILABLE', 'redis transaction aborted');
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
