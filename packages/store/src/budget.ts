import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * KEYS: the user's budget hash. ARGV: bytes of this message, max messages, max bytes, window ms.
 * → { 1, 0 } taken; { 0, ms until the window ends } over budget (nothing counted).
 * A fixed window: the hash appears with the first message of a window and expires with it.
 */
const TAKE_LUA = `
local call = redis.call
local f = call('HMGET', KEYS[1], 'messages', 'bytes')
local m, b, size = tonumber(f[1] or '0'), tonumber(f[2] or '0'), tonumber(ARGV[1])
if m + 1 > tonumber(ARGV[2]) or b + size > tonumber(ARGV[3]) then
  local ttl = call('PTTL', KEYS[1])
  if ttl < 0 then
    call('PEXPIRE', KEYS[1], ARGV[4])
    ttl = tonumber(ARGV[4])
  end
  return {0, ttl}
end
call('HINCRBY', KEYS[1], 'messages', 1)
call('HINCRBY', KEYS[1], 'bytes', size)
if call('PTTL', KEYS[1]) < 0 then call('PEXPIRE', KEYS[1], ARGV[4]) end
return {1, 0}
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
  private readonly redis: RedisClient & WithBudget;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
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
