import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * `take(key, size, maxMessages, maxBytes, windowMs)` → { 1, 0 } taken; { 0, ms until the window
 * ends } over budget (nothing counted). A fixed window: the hash appears with the first message of
 * a window and expires with it. A Lua function, so that the publish script can run it too.
 */
export const BUDGET_TAKE_FN = `
local function take(key, size, maxMessages, maxBytes, windowMs)
  local f = redis.call('HMGET', key, 'messages', 'bytes')
  local m, b = tonumber(f[1] or '0'), tonumber(f[2] or '0')
  if m + 1 > tonumber(maxMessages) or b + tonumber(size) > tonumber(maxBytes) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, windowMs)
      ttl = tonumber(windowMs)
    end
    return {0, ttl}
  end
  redis.call('HINCRBY', key, 'messages', 1)
  redis.call('HINCRBY', key, 'bytes', size)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, windowMs) end
  return {1, 0}
end
`;

/** KEYS: the user's budget hash. ARGV: bytes of this message, max messages, max bytes, window ms. */
const TAKE_LUA = `${BUDGET_TAKE_FN}
return take(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
`;

const TAKE = 'sbBudgetTake';
type WithBudget = { [TAKE]: (numKeys: number, key: string, bytes: number, messages: number, maxBytes: number, windowMs: number) => Promise<[number, number]> };

export interface PublishBudgetLimits {
  /** Messages one user may publish per window, across the cluster. @default 100 */
  messages: number;
  /** JSON bytes of `data` one user may publish per window, across the cluster. @default 1048576 */
  bytes: number;
  /** @default 10000 */
  windowMs: number;
}

export type BudgetDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * The per-user publish budget (SPEC §8): messages and bytes per window, counted in Redis so that
 * a user's connections on every pod share one budget. One round trip per publish, in the user's
 * slot.
 */
export class PublishBudget {
  /** The command client the budget is counted on (the publish script runs it there too). */
  readonly redis: RedisClient & WithBudget;

  constructor(
    redis: RedisClient,
    readonly keys: Keys,
    readonly limits: PublishBudgetLimits,
  ) {
    for (const [name, v] of Object.entries(limits)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`PublishBudget: ${name} must be a positive integer`);
    }
    this.redis = redis as RedisClient & WithBudget;
    if (typeof this.redis[TAKE] !== 'function') redis.defineCommand(TAKE, { lua: TAKE_LUA });
  }

  /** Counts one message of `bytes` against the user's budget, unless it would exceed it. */
  async take(userId: string, bytes: number): Promise<BudgetDecision> {
    const { messages, bytes: maxBytes, windowMs } = this.limits;
    const [ok, retryAfterMs] = await this.redis[TAKE](1, this.keys.publishBudget(userId), bytes, messages, maxBytes, windowMs);
    return ok === 1 ? { allowed: true } : { allowed: false, retryAfterMs };
  }
}
