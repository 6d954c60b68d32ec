import { createHash } from 'node:crypto';
import stringify from 'safe-stable-stringify';
import type { NotificationJob } from '@switchboard/protocol';
import type { Keys } from './keys.js';
import { sendPublications, type Publication } from './broadcast.js';
import { INBOX_ADD_ALL_FN, inboxWriteFailed, type InboxEntry } from './inbox.js';
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
 * `claim(record, digest, owner, leaseMs, windowSec)`
 * → { 'claimed' } | { 'done' } | { 'conflict' } | { 'busy', ms left on the other owner's lease }
 */
const CLAIM_FN = `
local function claim(key, digest, owner, lease, windowSec)
  local now = now_ms()
  local v = call('GET', key)
  if not v then
    call('SET', key, 'p' .. digest .. '|' .. (now + lease) .. '|' .. owner, 'EX', windowSec)
    return {'claimed'}
  end
  if string.sub(v, 2, ${DIGEST_LENGTH + 1}) ~= digest then return {'conflict'} end
  if string.sub(v, 1, 1) == 'd' then return {'done'} end
  local rest = string.sub(v, ${DIGEST_LENGTH + 3})
  local bar = string.find(rest, '|', 1, true)
  local until_ms, holder = tonumber(string.sub(rest, 1, bar - 1)), string.sub(rest, bar + 1)
  if holder == owner or until_ms <= now then
    call('SET', key, 'p' .. digest .. '|' .. (now + lease) .. '|' .. owner, 'KEEPTTL')
    return {'claimed'}
  end
  return {'busy', until_ms - now}
end
`;

/**
 * `complete(record, digest, windowSec, pubs, from)`: marks the id delivered and PUBLISHes the
 * channel, message pairs of `pubs` from index `from` on
 * → 1 marked delivered (and published); 0 delivered already: nothing published again.
 * Marking and publishing are one step: a notification id is published at most once. (SPUBLISH
 * cannot be in here: its channel must be in the script's slot. A sharded publication is sent by
 * the caller that got 1.)
 */
const COMPLETE_FN = `
local function complete(key, digest, windowSec, pubs, from)
  local v = call('GET', key)
  if v and string.sub(v, 1, 1) == 'd' then return 0 end
  if v then
    call('SET', key, 'd' .. digest, 'KEEPTTL')
  else
    call('SET', key, 'd' .. digest, 'EX', windowSec)
  end
  for i = from, #pubs, 2 do call('PUBLISH', pubs[i], pubs[i + 1]) end
  return 1
end
`;

/** KEYS: record. ARGV: digest, owner, leaseMs, windowSec → what `claim` answers. */
const CLAIM = `${helpers}${CLAIM_FN}
return claim(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4])
`;

/** KEYS: record. ARGV: digest, windowSec, then channel, message pairs to PUBLISH → what `complete` answers. */
const COMPLETE = `${helpers}${COMPLETE_FN}
return complete(KEYS[1], ARGV[1], ARGV[2], ARGV, 3)
`;

/**
 * Claim, store and publish in one step, where the record and the inboxes share a server.
 * KEYS: record, then each user's inbox, items and unread keys. ARGV: digest, owner, leaseMs,
 * windowSec, then the inbox entry (id, ts, json, maxItems, ttlSec), then channel, message pairs.
 * → what `claim` answers when it is not 'claimed'; else { 'failed', writes refused, the first
 * reason } when an inbox write was refused (the others are written, the id stays claimed and
 * nothing is published: a retry completes it), or { 'delivered' }.
 */
const DELIVER = `${helpers}${CLAIM_FN}${COMPLETE_FN}${INBOX_ADD_ALL_FN}
local c = claim(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4])
if c[1] ~= 'claimed' then return c end
local failed, first = inbox_add_all(KEYS, 2, ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]))
if failed > 0 then return {'failed', failed, first} end
complete(KEYS[1], ARGV[1], ARGV[4], ARGV, 10)
return {'delivered'}
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
  sbNotifDeliver(numKeys: number, ...keysAndArgs: (Buffer | string | number)[]): Promise<[string, (number | string)?, string?]>;
};

/** What a one-step delivery found: the claim's answer when it was not this owner's, or delivered. */
export type OneStepDelivery = Exclude<Claim, { state: 'claimed' }> | { state: 'delivered' };

/** Classic publications as the scripts' channel, message pairs; sharded ones to send after the script (another slot). */
function splitPublications(publications: readonly Publication[]): { inScript: (string | Buffer)[]; after: Publication[] } {
  return {
    inScript: publications.filter((p) => !p.sharded).flatMap((p) => [p.channel, p.message]),
    after: publications.filter((p) => p.sharded),
  };
}

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
      redis.defineCommand('sbNotifDeliver', { lua: DELIVER });
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
    const { inScript, after } = splitPublications(publications);
    const marked = (await this.redis.sbNotifComplete(1, this.keys.notification(id), digest, this.windowSec, ...inScript)) === 1;
    if (marked) await sendPublications(this.redis, after);
    return marked;
  }

  /**
   * `claim`, the inbox writes of `entry` and `complete` in one script: one round trip for a whole
   * delivery. Only where the record and every inbox key are on one server (standalone, Sentinel;
   * not Cluster) and nothing has to happen between storing and publishing (no wait for replicas).
   * Rejects with `InboxWriteError` when Redis refused an inbox write: nothing is published then,
   * and the id stays this owner's to retry.
   */
  async deliver(
    id: string,
    digest: string,
    owner: string,
    leaseMs: number,
    entry: InboxEntry | undefined,
    publications: readonly Publication[] = [],
  ): Promise<OneStepDelivery> {
    const users = entry?.users ?? [];
    const { inScript, after } = splitPublications(publications);
    const reply = await this.redis.sbNotifDeliver(
      1 + users.length * 3,
      this.keys.notification(id),
      ...users.flat(),
      digest,
      owner,
      leaseMs,
      this.windowSec,
      // no inbox to write (a room, a broadcast, persist: false): placeholders the script does not read
      ...(entry?.args ?? ['', 0, '', 1, 1]),
      ...inScript,
    );
    const [state, n, reason] = reply;
    switch (state) {
      case 'delivered':
        await sendPublications(this.redis, after);
        return { state };
      case 'failed':
        throw inboxWriteFailed(Number(n), users.length, String(reason));
      case 'busy':
        return { state, retryAfterMs: Math.max(1, Number(n)) };
      case 'done':
      case 'conflict':
        return { state };
      default:
        throw new Error(`NotificationLedger: unexpected reply ${String(state)}`);
    }
  }

  /** What the ledger holds for `id`, if anything. */
  async record(id: string): Promise<LedgerRecord | undefined> {
    const v = await this.redis.get(this.keys.notification(id));
    if (!v) return undefined;
    return { digest: v.slice(1, DIGEST_LENGTH + 1), delivered: v.startsWith('d') };
  }
}
