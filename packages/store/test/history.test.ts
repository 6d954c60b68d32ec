import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { deleteKeys, randomKeyPrefix } from '@switchboard/testkit';
import type { RoomMessage } from '@switchboard/protocol';
import { PublishBudget } from '../src/budget.js';
import { publishRoomMessageWithin, RoomHistory, type PublishDecision } from '../src/history.js';
import { keys } from '../src/keys.js';

let redis: Redis;
let prefix: string;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  redis.on('error', () => {});
});
afterAll(() => redis.quit());
beforeEach((context) => {
  prefix = randomKeyPrefix();
  context.onTestFinished(() => deleteKeys(redis, prefix));
});

const from = { userId: 'h' };

/** Bytes the stream's entries hold, as Redis has them. */
async function streamBytes(room: string): Promise<{ entries: number; bytes: number }> {
  const all = await redis.xrange(keys(prefix).history(room), '-', '+');
  return { entries: all.length, bytes: all.reduce((n, [, fields]) => n + Buffer.byteLength(fields[1]!), 0) };
}

describe('room history bounds', () => {
  it('keeps at most maxBytes of messages per room, oldest out, and says so to a reader from before', async () => {
    const room = 'public:big';
    const history = new RoomHistory(redis, prefix, { maxLength: 1000, maxBytes: 256 * 1024, ttlSec: 60 });
    const first = await history.append({ room, from, data: 'x'.repeat(60_000) });
    for (let i = 0; i < 20; i++) await history.append({ room, from, data: 'x'.repeat(60_000) });
    const held = await streamBytes(room);
    expect(held.bytes).toBeLessThanOrEqual(256 * 1024);
    expect(held.entries).toBe(4); // 4 × ~60 KB fit, a fifth does not
    expect(Number(await redis.hget(keys(prefix).historyMeta(room), 'bytes'))).toBe(held.bytes);
    const since = await history.range(room, first.id, 50);
    expect(since.recovered).toBe(false);
    expect(since.messages).toHaveLength(4);
    // a reader that saw the latest but one misses nothing
    const latest = await history.range(room, undefined, 2);
    const caught = await history.range(room, latest.messages[0]!.id, 50);
    expect(caught).toMatchObject({ recovered: true });
    expect(caught.messages.map((m) => m.id)).toEqual([latest.messages[1]!.id]);
  });

  it('trims by count exactly, and always keeps the newest message even when it alone is too big', async () => {
    const room = 'public:count';
    const history = new RoomHistory(redis, prefix, { maxLength: 5, maxBytes: 1024, ttlSec: 60 });
    for (let i = 0; i < 12; i++) await history.append({ room, from, data: i });
    expect((await streamBytes(room)).entries).toBe(5);
    expect((await history.range(room, undefined, 50)).messages.map((m) => m.data)).toEqual([7, 8, 9, 10, 11]);
    const big = await history.append({ room, from, data: 'y'.repeat(5000) });
    const held = await history.range(room, undefined, 50);
    expect(held.messages.map((m) => m.id)).toEqual([big.id]);
    expect(Number(await redis.hget(keys(prefix).historyMeta(room), 'bytes'))).toBe((await streamBytes(room)).bytes);
  });

  it('trims a full history one entry per append, exactly, also among ids of the same millisecond', async () => {
    const room = 'public:same-ms';
    const history = new RoomHistory(redis, prefix, { maxLength: 5, maxBytes: 1_000_000, ttlSec: 60 });
    // sent together: one pipeline, so most share a millisecond and differ by sequence number
    const sent = await Promise.all(Array.from({ length: 40 }, (_, i) => history.append({ room, from, data: i })));
    const ids = sent.map((m) => m.id);
    expect(new Set(ids.map((id) => id.split('-')[0])).size).toBeLessThan(ids.length);
    const held = await redis.xrange(keys(prefix).history(room), '-', '+');
    expect(held.map(([id]) => id)).toEqual(ids.slice(-5));
    const meta = await redis.hgetall(keys(prefix).historyMeta(room));
    expect(meta.trimmed).toBe(ids[34]);
    expect(Number(meta.bytes)).toBe((await streamBytes(room)).bytes);
    // a reader who saw the last dropped message misses nothing; one who saw the one before does
    expect(await history.range(room, ids[34], 50)).toMatchObject({ recovered: true, messages: sent.slice(-5) });
    expect((await history.range(room, ids[33], 50)).recovered).toBe(false);
  });

  it('trims past an entry whose sequence number is beyond what a Lua number holds exactly', async () => {
    const room = 'public:huge-seq';
    const history = new RoomHistory(redis, prefix, { maxLength: 2, maxBytes: 1_000_000, ttlSec: 60 });
    const stream = keys(prefix).history(room);
    const entry = JSON.stringify({ from, data: 'old' });
    await redis.xadd(stream, '5-18446744073709551614', 'm', entry);
    await redis.xadd(stream, '5-18446744073709551615', 'm', entry);
    await redis.hset(keys(prefix).historyMeta(room), 'bytes', 2 * Buffer.byteLength(entry));
    const a = await history.append({ room, from, data: 'a' });
    const b = await history.append({ room, from, data: 'b' });
    expect((await redis.xrange(stream, '-', '+')).map(([id]) => id)).toEqual([a.id, b.id]);
    const meta = await redis.hgetall(keys(prefix).historyMeta(room));
    expect(meta.trimmed).toBe('5-18446744073709551615');
    expect(Number(meta.bytes)).toBe((await streamBytes(room)).bytes);
  });

  it('expires the stream and its size together', async () => {
    const room = 'public:ttl';
    const history = new RoomHistory(redis, prefix, { maxLength: 10, maxBytes: 10_000, ttlSec: 30 });
    await history.append({ room, from, data: 1 });
    const [a, b] = await Promise.all([redis.ttl(keys(prefix).history(room)), redis.ttl(keys(prefix).historyMeta(room))]);
    expect(a).toBeGreaterThan(25);
    expect(b).toBeGreaterThan(25);
  });
});

describe('publishing within a budget', () => {
  const limits = { messages: 3, bytes: 100, windowMs: 10_000 };
  let other: Redis;
  beforeAll(() => {
    other = new Redis(inject('redisUrl'));
    other.on('error', () => {});
  });
  afterAll(() => other.quit());

  // one script where budget and history share a client; the budget, then the append, where they
  // do not (as on Redis Cluster): the two must answer alike
  for (const path of ['one script', 'two steps'] as const) {
    it(`stores and broadcasts while the budget lasts, then refuses and writes nothing (${path})`, async () => {
      const room = 'public:budget';
      const history = new RoomHistory(redis, prefix, { maxLength: 10, maxBytes: 10_000, ttlSec: 60 });
      const budget = new PublishBudget(path === 'one script' ? redis : other, keys(prefix), limits);
      const sent: RoomMessage[] = [];
      const target = { emit: (_: 'room:message', m: RoomMessage) => sent.push(m) };
      const answers: PublishDecision[] = [];
      for (let i = 0; i < 5; i++) answers.push(await publishRoomMessageWithin(history, budget, 10, target, { room, from, data: i }));
      expect(answers.map((a) => a.allowed)).toEqual([true, true, true, false, false]);
      const refused = answers[3]!;
      expect(!refused.allowed && refused.retryAfterMs).toBeGreaterThan(9000);
      expect(sent.map((m) => m.data)).toEqual([0, 1, 2]);
      expect(answers.slice(0, 3).map((a) => a.allowed && a.message.id)).toEqual(sent.map((m) => m.id));
      expect((await history.range(room, undefined, 50)).messages.map((m) => m.data)).toEqual([0, 1, 2]);
      expect(await redis.hgetall(keys(prefix).publishBudget(from.userId))).toEqual({ messages: '3', bytes: '30' });
    });

    it(`refuses a message larger than what is left in bytes, and counts nothing for it (${path})`, async () => {
      const room = 'public:bytes';
      const history = new RoomHistory(redis, prefix, { maxLength: 10, maxBytes: 10_000, ttlSec: 60 });
      const budget = new PublishBudget(path === 'one script' ? redis : other, keys(prefix), limits);
      const target = { emit: () => undefined };
      expect((await publishRoomMessageWithin(history, budget, 90, target, { room, from, data: 'a' })).allowed).toBe(true);
      expect((await publishRoomMessageWithin(history, budget, 20, target, { room, from, data: 'b' })).allowed).toBe(false);
      expect((await publishRoomMessageWithin(history, budget, 10, target, { room, from, data: 'c' })).allowed).toBe(true);
      expect((await history.range(room, undefined, 50)).messages.map((m) => m.data)).toEqual(['a', 'c']);
    });
  }

  it('counts the budget with history off, and hands out local ids', async () => {
    const history = new RoomHistory(redis, prefix, { maxLength: 0, maxBytes: 10_000, ttlSec: 60 });
    const budget = new PublishBudget(redis, keys(prefix), { ...limits, messages: 1 });
    const target = { emit: () => undefined };
    const first = await publishRoomMessageWithin(history, budget, 1, target, { room: 'public:off', from, data: 1 });
    expect(first.allowed && first.message.id).toMatch(/^\d+-\d+$/);
    expect((await publishRoomMessageWithin(history, budget, 1, target, { room: 'public:off', from, data: 2 })).allowed).toBe(false);
    expect(await redis.exists(keys(prefix).history('public:off'))).toBe(0);
  });
});
