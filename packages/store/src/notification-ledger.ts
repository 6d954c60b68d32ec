import { createHash } from 'node:crypto';
import stringify from 'safe-stable-stringify';
import type { NotificationJob } from '@switchboard/protocol';
import type { Keys } from './keys.js';
import { sendPublications, type Publication } from './broadcast.js';
import type { RedisClient } from './redis.js';

/**
 * The record of one notification id, a short string under `notification(id)` that lives for the
 * idempotency window from its first delivery attempt:
 *   `p<digest>|<lease until, ms>|<owner>` while a job delivers it, `d<digest>` once delivered.
 * The digest (22 characters) identifies the content, so an id reused for other content is told
 * apart from a retry.
 */
const DIGEST_LENGTH = 22;

const helpers = `
local call = redis.call
local function now_ms()
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * KEYS: record. ARGV: digest, owner, leaseMs, windowSec
 * → { 'claimed' } | { 'done' } | { 'conflict' } | { 'busy', ms left on the other owner's lease }
 */
const CLAIM = `${helpers}
local digest, owner, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local v = call('GET', KEYS[1])
if not v then
  call('SET', KEYS[1], 'p' .. digest .. '|' .. (now + lease) .. '|' .. owner, 'EX', ARGV[4])
  return {'claimed'}
end
if string.sub(v, 2, ${DIGEST_LENGTH + 1}) ~= digest then return {'conflict'} end
if string.sub(v, 1, 1) == 'd' then return {'done'} end
local rest = string.sub(v, ${DIGEST_LENGTH + 3})
local bar = string.find(rest, '|', 1, true)
local until_ms, holder = tonumber(string.sub(rest, 1, bar - 1)), string.sub(rest, bar + 1)
if holder == owner or until_ms <= now then
  call('SET', KEYS[1], 'p' .. digest .. '|' .. (now + lease) .. '|' .. owner, 'KEEPTTL')
  return {'claimed'}
end
return {'busy', until_ms - now}
`;

/**
 * KEYS: record. ARGV: digest, windowSec, then channel, message pairs to PUBLISH
 * → 1 marked delivered (and published); 0 delivered already: nothing published again.
 * Marking and publishing are one step: a notification id is published at most once. (SPUBLISH
 * cannot be in here: its channel must be in the script's slot. A sharded publication is sent by
 * the caller that got 1.)
 */
const COMPLETE = `
local call = redis.call
local v = call('GET', KEYS[1])
if v and string.sub(v, 1, 1) == 'd' then return 0 end
if v then
  call('SET', KEYS[1], 'd' .. ARGV[1], 'KEEPTTL')
else
  call('SET', KEYS[1], 'd' .. ARGV[1], 'EX', ARGV[2])
end
for i = 3, #ARGV, 2 do call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return 1
`;

export type Claim =
  | { state: 'claimed' }
  | { state: 'done' }
  | { state: 'conflict' }
  | { state: 'busy'; retryAfterMs: number };

export interface LedgerRecord {
  digest: string;
  delivered: boolean;
}

type Commands = {
  sbNotifClaim(numKeys: number, key: string, digest: string, owner: string, leaseMs: number, windowSec: number): Promise<[string, number?]>;
  sbNotifComplete(numKeys: number, key: string, digest: string, windowSec: number, ...published: (Buffer | string)[]): Promise<number>;
};

/** The content of a notification job, apart from its id, as a short stable digest. */
export function notificationDigest(job: NotificationJob): string {
  const { id: _id, ...content } = job;
  const canonical = stringify({ ...content, persist: content.persist ?? defaultPersist(job) });
  return createHash('sha256').update(canonical ?? '').digest('base64url').slice(0, DIGEST_LENGTH);
}

function defaultPersist(job: NotificationJob): boolean {
  return 'userId' in job.to || 'userIds' in job.to;
}

const SAFE_JOB_ID = /^[A-Za-z0-9._:-]{1,190}$/;

/**
 * The notification id of a job that has none: `job:<BullMQ job id>`, stable across retries, in a
 * form every event and route that takes a notification id accepts (`job:` cannot start an id a
 * producer chooses). A job id outside that form (a plain BullMQ producer may pick any) is
 * replaced by its hash.
 */
export function assignedNotificationId(jobId: string): string {
  return SAFE_JOB_ID.test(jobId) ? `job:${jobId}` : `job:h.${createHash('sha256').update(jobId).digest('base64url').slice(0, 32)}`;
}

/**
 * Delivery records of notification ids (SPEC §6 idempotency): a notification id is delivered
 * (stored and published) at most once within `windowSec`, for every target kind; a job reusing
 * an id with other content is told apart. Each record is one key in the id's own hash slot.
 */
export class NotificationLedger {
  private readonly redis: RedisClient & Commands;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    /** @default 86400 */
    readonly windowSec = 86_400,
  ) {
    if (!Number.isSafeInteger(windowSec) || windowSec < 1) throw new RangeError('NotificationLedger: windowSec must be a positive integer');
    this.redis = redis as RedisClient & Commands;
    if (typeof this.redis.sbNotifClaim !== 'function') {
      redis.defineCommand('sbNotifClaim', { lua: CLAIM });
      redis.defineCommand('sbNotifComplete', { lua: COMPLETE });
    }
  }

  /**
   * Claims the delivery of `id` for `owner` (a job) for `leaseMs`: `claimed` when it is this
   * owner's to deliver (first time, its own retry, or another owner's lease ran out), `done` when
   * delivered already, `conflict` when the id was used for other content, `busy` while another
   * job delivers it.
   */
  async claim(id: string, digest: string, owner: string, leaseMs: number): Promise<Claim> {
    const [state, left] = await this.redis.sbNotifClaim(1, this.keys.notification(id), digest, owner, leaseMs, this.windowSec);
    if (state === 'busy') return { state, retryAfterMs: Math.max(1, Number(left)) };
    if (state === 'claimed' || state === 'done' || state === 'conflict') return { state };
    throw new Error(`NotificationLedger: unexpected reply ${String(state)}`);
  }

  /**
   * Marks `id` delivered and publishes it: a classic publication in the same step, a sharded one
   * right after, by the only caller that marked it. False when it was delivered already (nothing
   * published).
   */
  async complete(id: string, digest: string, publications: readonly Publication[] = []): Promise<boolean> {
    const inScript = publications.filter((p) => !p.sharded).flatMap((p) => [p.channel, p.message]);
    const marked = (await this.redis.sbNotifComplete(1, this.keys.notification(id), digest, this.windowSec, ...inScript)) === 1;
    if (marked) await sendPublications(this.redis, publications.filter((p) => p.sharded));
    return marked;
  }

  /** What the ledger holds for `id`, if anything. */
  async record(id: string): Promise<LedgerRecord | undefined> {
    const v = await this.redis.get(this.keys.notification(id));
    if (!v) return undefined;
    return { digest: v.slice(1, DIGEST_LENGTH + 1), delivered: v.startsWith('d') };
  }
}
