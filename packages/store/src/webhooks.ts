import type { LifecycleEvent } from '@switchboard/protocol';
import { keys, type Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * Each webhook endpoint's events not yet delivered, in `seq` order (a ZSET by seq in the
 * endpoint's own slot), and the one batch job at a time that delivers them: the chain that keeps
 * the order per endpoint. The relay appends; the batch job peeks, posts, acknowledges, and names the
 * next job when more is pending.
 */

const helpers = `
local call = redis.call
local function fmt(n)
  return string.format('%.0f', n)
end
-- names the batch job that delivers next, unless one is on its way
local function kick(pending, state, endpoint)
  if call('ZCARD', pending) == 0 or call('HGET', state, 'inflight') then return '' end
  local id = endpoint .. '-' .. call('HINCRBY', state, 'jobs', 1)
  call('HSET', state, 'inflight', id)
  return id
end
`;

/**
 * KEYS: pending, state. ARGV: endpoint id, maxPending, then per event its place in the outbox
 * (`<stream id>-<index in the entry>`) and JSON, in outbox order → { added, the job to add ('' if one is on its way or nothing is pending),
 * the dropped events' JSON }.
 * Events at or before the last place taken are skipped (a relay handing the same events on
 * again). Each event's score is the endpoint's own counter: the pending set keeps outbox order,
 * which is `seq` order per room and per user. Beyond `maxPending`, the oldest go: returned, for
 * the caller to keep as a failed batch.
 */
const APPEND = `${helpers}
local function place(s)
  local ms, n, k = string.match(s, '^(%d+)-(%d+)-(%d+)$')
  return tonumber(ms), tonumber(n), tonumber(k)
end
local last = call('HGET', KEYS[2], 'lastPlace') or '0-0-0'
local lm, ln, lk = place(last)
local added = 0
for i = 3, #ARGV, 2 do
  local m, n, k = place(ARGV[i])
  if m > lm or (m == lm and (n > ln or (n == ln and k > lk))) then
    call('ZADD', KEYS[1], call('HINCRBY', KEYS[2], 'n', 1), ARGV[i + 1])
    lm, ln, lk, last = m, n, k, ARGV[i]
    added = added + 1
  end
end
if added > 0 then call('HSET', KEYS[2], 'lastPlace', last) end
local dropped = {}
local over = call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if over > 0 then
  dropped = call('ZRANGE', KEYS[1], 0, over - 1)
  call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
return {added, kick(KEYS[1], KEYS[2], ARGV[1]), dropped}
`;

/**
 * After a batch job's attempt: the events up to score `last` are delivered (none when '').
 * KEYS: pending, state. ARGV: endpoint id, last score or '', the job's id, now (ms)
 * → the next job to add, or '' (nothing pending, or this job is not the chain's head)
 */
const ACK = `${helpers}
if ARGV[2] ~= '' then
  call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
  call('HSET', KEYS[2], 'lastDeliveredAt', ARGV[4])
  call('HDEL', KEYS[2], 'lastError', 'failingSince')
end
if call('HGET', KEYS[2], 'inflight') ~= ARGV[3] then return '' end
call('HDEL', KEYS[2], 'inflight')
return kick(KEYS[1], KEYS[2], ARGV[1])
`;

/** KEYS: state. ARGV: error text, now (ms): an attempt failed. */
const FAILED = `
redis.call('HSET', KEYS[1], 'lastError', ARGV[1])
redis.call('HSETNX', KEYS[1], 'failingSince', ARGV[2])
return 1
`;

/** KEYS: pending, state. ARGV: endpoint id → the job to add, if none is on its way. */
const KICK = `${helpers}
return kick(KEYS[1], KEYS[2], ARGV[1])
`;

interface WebhookCommands {
  sbWhAppend(...args: (string | number)[]): Promise<[number, string, string[]]>;
  sbWhAck(...args: (string | number)[]): Promise<string>;
  sbWhFailed(...args: (string | number)[]): Promise<number>;
  sbWhKick(...args: (string | number)[]): Promise<string>;
}

export interface AppendResult {
  added: number;
  /** The batch job to add now (its id), when none was on its way. */
  kick?: string;
  /** Events dropped beyond the bound, oldest first. */
  dropped: LifecycleEvent[];
}

/** The oldest pending events of an endpoint; `last` is the score to acknowledge them with. */
export interface PendingBatch {
  events: LifecycleEvent[];
  last?: number;
}

export interface EndpointState {
  pending: number;
  /** The batch job on its way, if any. */
  inflight?: string;
  lastDeliveredAt?: number;
  lastError?: string;
  failingSince?: number;
}

export class WebhookBacklog {
  readonly keys: Keys;
  private readonly redis: RedisClient & WebhookCommands;

  constructor(redis: RedisClient, keyPrefix: string) {
    this.keys = keys(keyPrefix);
    this.redis = redis as RedisClient & WebhookCommands;
    if (typeof this.redis.sbWhAppend !== 'function') {
      redis.defineCommand('sbWhAppend', { numberOfKeys: 2, lua: APPEND });
      redis.defineCommand('sbWhAck', { numberOfKeys: 2, lua: ACK });
      redis.defineCommand('sbWhFailed', { numberOfKeys: 1, lua: FAILED });
      redis.defineCommand('sbWhKick', { numberOfKeys: 2, lua: KICK });
    }
  }

  /** Appends outbox entries (in outbox order) for an endpoint, keeping at most `maxPending`. */
  async append(endpointId: string, entries: readonly { streamId: string; event: LifecycleEvent }[], maxPending: number): Promise<AppendResult> {
    const args: (string | number)[] = [endpointId, maxPending];
    // an entry's events are told apart by their place in it: their order, as their seq says
    let k = 0;
    let prev = '';
    for (const e of entries) {
      k = e.streamId === prev ? k + 1 : 0;
      prev = e.streamId;
      args.push(`${e.streamId}-${k}`, JSON.stringify(e.event));
    }
    const [added, kick, dropped] = await this.redis.sbWhAppend(this.keys.webhookPending(endpointId), this.keys.webhookState(endpointId), ...args);
    return { added, ...(kick ? { kick } : {}), dropped: dropped.map((json) => JSON.parse(json) as LifecycleEvent) };
  }

  /** The oldest `count` pending events of an endpoint, and the score of the last (to acknowledge them). */
  async peek(endpointId: string, count: number): Promise<PendingBatch> {
    const items = await this.redis.zrange(this.keys.webhookPending(endpointId), 0, count - 1, 'WITHSCORES');
    const events: LifecycleEvent[] = [];
    for (let i = 0; i < items.length; i += 2) events.push(JSON.parse(items[i]!) as LifecycleEvent);
    return { events, ...(items.length ? { last: Number(items[items.length - 1]) } : {}) };
  }

  /** Events waiting for an endpoint. */
  pending(endpointId: string): Promise<number> {
    return this.redis.zcard(this.keys.webhookPending(endpointId));
  }

  /** The batch job the endpoint's chain is at, if any. */
  async inflight(endpointId: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.webhookState(endpointId), 'inflight')) ?? undefined;
  }

  /** Marks the pending events up to score `last` delivered (none: `undefined`); returns the next job to add, if any. */
  async ack(endpointId: string, last: number | undefined, jobId: string, now = Date.now()): Promise<string | undefined> {
    const next = await this.redis.sbWhAck(
      this.keys.webhookPending(endpointId),
      this.keys.webhookState(endpointId),
      endpointId,
      last === undefined ? '' : last,
      jobId,
      now,
    );
    return next || undefined;
  }

  async recordFailure(endpointId: string, error: string, now = Date.now()): Promise<void> {
    await this.redis.sbWhFailed(this.keys.webhookState(endpointId), error.slice(0, 500), now);
  }

  /** Names a batch job when events are pending and none is on its way. */
  async kick(endpointId: string): Promise<string | undefined> {
    return (await this.redis.sbWhKick(this.keys.webhookPending(endpointId), this.keys.webhookState(endpointId), endpointId)) || undefined;
  }

  async state(endpointId: string): Promise<EndpointState> {
    const [pending, h] = await Promise.all([
      this.pending(endpointId),
      this.redis.hgetall(this.keys.webhookState(endpointId)),
    ]);
    const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
    const out: EndpointState = { pending };
    if (h.inflight) out.inflight = h.inflight;
    const lastDeliveredAt = num(h.lastDeliveredAt);
    if (lastDeliveredAt !== undefined) out.lastDeliveredAt = lastDeliveredAt;
    if (h.lastError) out.lastError = h.lastError;
    const failingSince = num(h.failingSince);
    if (failingSince !== undefined) out.failingSince = failingSince;
    return out;
  }

  /** Records the endpoints the dispatchers deliver to, for the admin API (no credentials, no query). */
  async announce(endpoints: readonly { id: string; url: string }[], now = Date.now()): Promise<void> {
    if (!endpoints.length) return;
    const args: string[] = [];
    for (const e of endpoints) args.push(e.id, JSON.stringify({ url: e.url, since: now }));
    await this.redis.hset(this.keys.webhookEndpoints, ...args);
  }

  async endpoints(): Promise<{ id: string; url: string; since: number }[]> {
    const h = await this.redis.hgetall(this.keys.webhookEndpoints);
    return Object.entries(h).map(([id, json]) => ({ id, ...(JSON.parse(json) as { url: string; since: number }) }));
  }
}
