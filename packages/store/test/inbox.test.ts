import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomKeyPrefix } from '@switchboard/testkit';
import { SwitchboardError, type Notification } from '@switchboard/protocol';
import { InboxStore, InboxWriteError } from '../src/inbox.js';
import { keys } from '../src/keys.js';

declare module 'vitest' {
  interface ProvidedContext {
    redisUrl: string;
  }
}

const prefix = randomKeyPrefix();
const k = keys(prefix);
let redis: Redis;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  redis.on('error', () => {});
});

afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

let seq = 0;
/** A fresh user id per test, so tests never share an inbox. */
function user(): string {
  seq += 1;
  return `u${seq}-${randomUUID().slice(0, 6)}`;
}

function note(id: string, ts: number, extra: Partial<Notification> = {}): Notification {
  return { id, type: 'test.note', ts, ...extra };
}

async function addSeries(store: InboxStore, userId: string, count: number, start = 1_700_000_000_000): Promise<void> {
  for (let i = 0; i < count; i++) await store.add([userId], note(`n${i}`, start + i));
}

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('InboxStore', () => {
  it('stores one notification for many users', async () => {
    const store = new InboxStore(redis, k);
    const [a, b] = [user(), user()];
    await store.add([a], note('first', 1000));
    await store.add([a, b], note('second', 2000, { title: 'Hi', body: 'there', data: { x: 1 } }));
    expect([await store.unread(a), await store.unread(b)]).toEqual([2, 1]);

    const page = await store.list(a, {});
    expect(page).toEqual({
      items: [
        { id: 'second', type: 'test.note', title: 'Hi', body: 'there', data: { x: 1 }, ts: 2000, read: false },
        { id: 'first', type: 'test.note', ts: 1000, read: false },
      ],
      unread: 2,
    });
    expect(await store.unread(b)).toBe(1);
    await store.add([], note('none', 1));
    expect(await store.unread(a)).toBe(2);
  });

  it('is idempotent by id: the same id again adds no entry and no unread', async () => {
    const store = new InboxStore(redis, k);
    const u = user();
    await store.add([u], note('same', 1000));
    expect(await store.unread(u)).toBe(1);
    await store.add([u], note('same', 5000, { title: 'changed' }));
    expect(await store.unread(u)).toBe(1);
    await store.markRead(u, ['same']);
    await store.add([u], note('same', 1000));
    expect(await store.unread(u)).toBe(0);
    const page = await store.list(u, {});
    expect(page.items).toEqual([{ id: 'same', type: 'test.note', ts: 1000, read: true }]);
    expect(await redis.zcard(k.inbox(u))).toBe(1);
    expect(await redis.hlen(k.inboxItems(u))).toBe(1);
  });

  it('lists newest first and pages with nextBefore until the end', async () => {
    const store = new InboxStore(redis, k);
    const u = user();
    await addSeries(store, u, 25);
    const seen: string[] = [];
    let before: string | undefined;
    let pages = 0;
    for (; pages < 10; pages++) {
      const page = await store.list(u, { limit: 10, ...(before ? { before } : {}) });
      seen.push(...page.items.map((i) => i.id));
      expect(page.unread).toBe(25);
      if (!page.nextBefore) break;
      before = page.nextBefore;
    }
    expect(pages).toBe(2);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `n${24 - i}`));
  });

  it('pages correctly through notifications sharing one timestamp', async () => {
    const store = new InboxStore(redis, k);
    const u = user();
    for (let i = 0; i < 7; i++) await store.add([u], note(`same-ts-${i}`, 5000));
    await store.add([u], note('older', 4000));
    const seen: string[] = [];
    let before: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await store.list(u, { limit: 3, ...(before ? { before } : {}) });
      seen.push(...page.items.map((i) => i.id));
      if (!page.nextBefore) break;
      before = page.nextBefore;
    }
    expect(seen).toHaveLength(8);
    expect(new Set(seen).size).toBe(8);
    expect(seen.at(-1)).toBe('older');
  });

  it('has no nextBefore when the page holds the last item exactly', async () => {
    const store = new InboxStore(redis, k);
    const u = user();
    await addSeries(store, u, 4);
    const page = await store.list(u, { limit: 4 });
    expect(page.items).toHaveLength(4);
    expect(page.nextBefore).toBeUndefined();
    expect(await store.list(user(), {})).toEqual({ items: [], unread: 0 });
  });

  it('defaults to 20 items and caps the limit at 100', async () => {
    const store = new InboxStore(redis, k, { maxItems: 500 });
    const u = user();
    const pipeline = redis.pipeline();
    for (let i = 0; i < 130; i++) {
      pipeline.zadd(k.inbox(u), 1000 + i, `b${i}`);
      pipeline.hset(k.inboxItems(u), `b${i}`, JSON.stringify(note(`b${i}`, 1000 + i)));
    }
    await pipeline.exec();
    expect((await store.list(u, {})).items).toHaveLength(20);
    const capped = await store.list(u, { limit: 1000 });
    expect(capped.items).toHaveLength(100);
    expect(capped.nextBefore).toBeDefined();
  });

  it('lists only unread items with unreadOnly, paging over read ones', async () => {
    const store = new InboxStore(redis, k);
    const u = user();
    await addSeries(store, u, 12);
    // n0..n11; read the even ones
    await store.markRead(u, ['n0', 'n2', 'n4', 'n6', 'n8', 'n10']);
    const first = await store.list(u, { unreadOnly: true, limit: 4 });
    expect(first.items.map((i) => i.id)).toEqual(['n11', 'n9', 'n7', 'n5']);
    expect(first.items.every((i) => !i.read)).toBe(true);
    expect(first.unread).toBe(6);
    expect(first.nextBefore).toBeDefined();
    const second = await store.list(u, { unreadOnly: true, limit: 4, before: first.nextBefore! });
    expect(second.items.map((i) => i.id)).toEqual(['n3', 'n1']);
    expect(second.nextBefore).toBeUndefined();

    const all = await store.list(u, { limit: 3 });
    expect(all.items.map((i) => [i.id, i.read])).toEqual([
      ['n11', false],
      ['n10', true],
      ['n9', false],
    ]);
  });

  it('marks ids or everything as read and returns the unread count', async () => {
    const store = new InboxStore(redis, k);
    const u = user();
    await addSeries(store, u, 5);
    expect(await store.markRead(u, ['n1', 'n3', 'unknown'])).toBe(3);
    expect(await store.unread(u)).toBe(3);
    expect(await store.markRead(u, [])).toBe(3);
    expect(await store.markRead(u, 'all')).toBe(0);
    const page = await store.list(u, {});
    expect(page.unread).toBe(0);
    expect(page.items).toHaveLength(5);
    expect(page.items.every((i) => i.read)).toBe(true);
    await store.add([u], note('later', 1_800_000_000_000));
    expect(await store.unread(u)).toBe(1);
  });

  it('trims to maxItems, oldest out, dropping their unread state', async () => {
    const store = new InboxStore(redis, k, { maxItems: 3 });
    const u = user();
    await addSeries(store, u, 3);
    await store.add([u], note('n3', 1_700_000_000_003));
    expect(await store.unread(u)).toBe(3);
    await store.markRead(u, ['n3']);
    await store.add([u], note('n4', 1_700_000_000_004));
    expect(await store.unread(u)).toBe(2);
    const page = await store.list(u, {});
    expect(page.items.map((i) => i.id)).toEqual(['n4', 'n3', 'n2']);
    expect(page.unread).toBe(2);
    expect(await redis.zcard(k.inbox(u))).toBe(3);
    expect(await redis.hlen(k.inboxItems(u))).toBe(3);
    expect((await redis.smembers(k.inboxUnread(u))).sort()).toEqual(['n2', 'n4']);
    // older than everything kept: stored and trimmed at once
    await store.add([u], note('ancient', 1));
    expect(await store.unread(u)).toBe(2);
    expect(await redis.zscore(k.inbox(u), 'ancient')).toBeNull();
  });

  it('trims many at once when the limit was lowered', async () => {
    const u = user();
    await new InboxStore(redis, k, { maxItems: 1000 }).add([u], note('x', 1));
    const big = new InboxStore(redis, k, { maxItems: 1000 });
    const pipeline = redis.pipeline();
    for (let i = 0; i < 900; i++) {
      pipeline.zadd(k.inbox(u), 10 + i, `m${i}`);
      pipeline.hset(k.inboxItems(u), `m${i}`, JSON.stringify(note(`m${i}`, 10 + i)));
      pipeline.sadd(k.inboxUnread(u), `m${i}`);
    }
    await pipeline.exec();
    expect(await big.unread(u)).toBe(901);
    const small = new InboxStore(redis, k, { maxItems: 5 });
    await small.add([u], note('newest', 10_000));
    expect(await small.unread(u)).toBe(5);
    expect(await redis.zcard(k.inbox(u))).toBe(5);
    expect(await redis.hlen(k.inboxItems(u))).toBe(5);
  });

  it('sets and refreshes the TTL of every inbox key', async () => {
    const store = new InboxStore(redis, k, { ttlSec: 1000 });
    const u = user();
    const userKeys = [k.inbox(u), k.inboxItems(u), k.inboxUnread(u)];
    const ttls = () => Promise.all(userKeys.map((key) => redis.ttl(key)));
    await store.add([u], note('a', 1));
    for (const ttl of await ttls()) {
      expect(ttl).toBeGreaterThan(990);
      expect(ttl).toBeLessThanOrEqual(1000);
    }
    // time passes: the next notification refreshes all three
    for (const key of userKeys) await redis.expire(key, 10);
    await store.add([u], note('b', 2));
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(990);
    // everything read: the unread set is gone and comes back with the next notification, with a TTL
    await store.markRead(u, 'all');
    for (const key of userKeys.slice(0, 2)) await redis.expire(key, 10);
    await store.add([u], note('c', 3));
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(990);
    // a longer TTL configured later applies from the next notification
    await new InboxStore(redis, k, { ttlSec: 5000 }).add([u], note('d', 4));
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(4990);
  });

  it('writes each user on its own: a refused write fails the call, the others are written, and again completes it', async () => {
    const store = new InboxStore(redis, k);
    const users = Array.from({ length: 1000 }, () => user());
    // two users' inboxes (written in different calls where users are written in chunks) are keys of
    // another type: those writes fail, the 998 others go through, the neighbours included
    await redis.set(k.inbox(users[10]!), 'not a zset');
    await redis.set(k.inbox(users[500]!), 'not a zset');
    const err = await errorOf(store.add(users, note('big', 1)));
    expect(err).toBeInstanceOf(InboxWriteError);
    expect((err as Error).message).toMatch(/^2 of 1000 inbox writes failed: WRONGTYPE/);
    expect(await Promise.all([0, 9, 11, 499, 501, 999].map((i) => store.unread(users[i]!)))).toEqual([1, 1, 1, 1, 1, 1]);
    await redis.del(k.inbox(users[10]!), k.inbox(users[500]!));
    await store.add(users, note('big', 1));
    expect(await Promise.all([0, 10, 500, 999].map((i) => store.unread(users[i]!)))).toEqual([1, 1, 1, 1]);
  });

  it('keeps apart users whose ids would spell each other\'s keys', async () => {
    const store = new InboxStore(redis, k);
    const ann = user();
    const other = `${ann}:items`;
    await store.add([ann], note('for-ann', 1));
    await store.add([other], note('for-other', 2));
    expect((await store.list(ann, {})).items.map((i) => i.id)).toEqual(['for-ann']);
    expect((await store.list(other, {})).items.map((i) => i.id)).toEqual(['for-other']);
  });

  it('refuses a user id that is not one or a bad ts, writing nothing', async () => {
    const store = new InboxStore(redis, k);
    const u = user();
    for (const bad of [`${u}\nx`, 'has space', '', 'a}b']) {
      const err = await errorOf(store.add([u, bad], note(`n-${bad}`, 1)));
      expect(err).toBeInstanceOf(SwitchboardError);
      expect((err as SwitchboardError).code).toBe('INVALID_PAYLOAD');
    }
    expect(((await errorOf(store.add([u], note('t', -1)))) as SwitchboardError).code).toBe('INVALID_PAYLOAD');
    expect(await store.unread(u)).toBe(0);
  });

  it('rejects a malformed cursor or limit as INVALID_PAYLOAD', async () => {
    const store = new InboxStore(redis, k);
    const u = user();
    await addSeries(store, u, 2);
    for (const before of ['', 'abc', '12', '1.2.3', '-1.0', `${'9'.repeat(30)}.1`, "1.1'--"]) {
      const err = await errorOf(store.list(u, { before }));
      expect(err).toBeInstanceOf(SwitchboardError);
      expect((err as SwitchboardError).code).toBe('INVALID_PAYLOAD');
    }
    for (const limit of [0, -1, 1.5, Number.NaN]) {
      const err = await errorOf(store.list(u, { limit }));
      expect((err as SwitchboardError).code).toBe('INVALID_PAYLOAD');
    }
    // a well-formed cursor past the end is simply an empty page
    expect(await store.list(u, { before: '0.0' })).toEqual({ items: [], unread: 2 });
  });

  it('refuses invalid limits at construction', () => {
    expect(() => new InboxStore(redis, k, { maxItems: 0 })).toThrow(RangeError);
    expect(() => new InboxStore(redis, k, { ttlSec: 1.5 })).toThrow(RangeError);
  });
});
