import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { keys } from '@switchboard/store';
import { deleteKeys, randomKeyPrefix } from '@switchboard/testkit';
import {
  cursorBefore,
  formatDuration,
  isUserIdPrefix,
  notificationJob,
  parseJson,
  podState,
  USER_ID_ALPHABET,
  type NotificationForm,
} from '../console/assets/lib.js';

describe('console helpers', () => {
  it('the alphabet is every user id character, in byte order', () => {
    expect([...USER_ID_ALPHABET].sort().join('')).toBe(USER_ID_ALPHABET);
    for (const c of USER_ID_ALPHABET) expect(isUserIdPrefix(c)).toBe(true);
    expect(isUserIdPrefix('')).toBe(true);
    expect(isUserIdPrefix('a b')).toBe(false);
    expect(isUserIdPrefix('ä')).toBe(false);
    expect(isUserIdPrefix('x'.repeat(129))).toBe(false);
  });

  it('cursorBefore: the greatest user id sorting before the prefix', () => {
    expect(cursorBefore('')).toBeUndefined();
    expect(cursorBefore('-')).toBeUndefined();
    expect(cursorBefore('a-')).toBe('a');
    expect(cursorBefore('b')).toBe(`a${'z'.repeat(127)}`);
    expect(cursorBefore('al0')).toBe(`al.${'z'.repeat(125)}`);
    expect(cursorBefore('x'.repeat(128))).toBe(`${'x'.repeat(127)}w`);
    expect(() => cursorBefore('a b')).toThrow(RangeError);
  });

  describe('cursorBefore against Redis: a page from the cursor starts at the first id with the prefix', () => {
    const prefix = randomKeyPrefix();
    let redis: Redis;
    const ids = ['-', '--', '-a', '.', '0', '9z', ':x', '@a', 'A', 'Z', '_', 'a', 'a-', 'a-b', 'a.', 'al', 'alh' + 'z'.repeat(125), 'ali', 'alice', 'alice@example.com', 'alicf', 'b', 'z'.repeat(128)];
    beforeAll(async () => {
      redis = new Redis(inject('redisUrl'));
      await redis.zadd(keys(prefix).online, ...ids.flatMap((id) => [0, id]));
    });
    afterAll(async () => {
      await deleteKeys(redis, prefix);
      await redis.quit();
    });

    it('for every prefix of every id', async () => {
      const prefixes = new Set(ids.flatMap((id) => [...id].map((_, i) => id.slice(0, i + 1))));
      for (const p of prefixes) {
        const cursor = cursorBefore(p);
        const page = await redis.zrangebylex(keys(prefix).online, cursor === undefined ? '-' : `(${cursor}`, '+');
        const expected = ids.filter((id) => id.startsWith(p));
        expect(page.slice(0, expected.length), p).toEqual(expected);
        expect(page[expected.length]?.startsWith(p) ?? false, p).toBe(false);
      }
    });
  });

  it('podState: live within an interval, late within two, then silent', () => {
    expect(podState(0, 1000)).toBe('live');
    expect(podState(1000, 1000)).toBe('live');
    expect(podState(1001, 1000)).toBe('late');
    expect(podState(2000, 1000)).toBe('late');
    expect(podState(2001, 1000)).toBe('silent');
  });

  it('formatDuration', () => {
    expect(formatDuration(-5)).toBe('0 ms');
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(12_400)).toBe('12 s');
    expect(formatDuration(185_000)).toBe('3 min 5 s');
    expect(formatDuration(7_800_000)).toBe('2 h 10 min');
    expect(formatDuration(4 * 86_400_000 + 3 * 3_600_000)).toBe('4 d 3 h');
  });

  it('parseJson explains what is wrong', () => {
    expect(parseJson('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
    const bad = parseJson('{a:1}');
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.message).toMatch(/^not valid JSON: /);
  });

  it('notificationJob builds the job of each target, or says what to fix', () => {
    const form: NotificationForm = { target: 'user', to: ' ann ', type: ' ops.note ', title: '', body: '', data: '', id: '', persist: true };
    expect(notificationJob(form)).toEqual({ ok: true, job: { to: { userId: 'ann' }, type: 'ops.note', persist: true } });
    expect(notificationJob({ ...form, target: 'users', to: 'ann, bob  ann\ncid', persist: false })).toEqual({
      ok: true,
      job: { to: { userIds: ['ann', 'bob', 'cid'] }, type: 'ops.note', persist: false },
    });
    expect(notificationJob({ ...form, target: 'room', to: 'public:lobby', title: ' Hi ', body: 'Body', data: '{"n": 1}', id: 'n-1' })).toEqual({
      ok: true,
      job: { to: { room: 'public:lobby' }, type: 'ops.note', title: 'Hi', body: 'Body', data: { n: 1 }, id: 'n-1' },
    });
    expect(notificationJob({ ...form, target: 'broadcast', to: 'ignored' })).toEqual({ ok: true, job: { to: { broadcast: true }, type: 'ops.note' } });

    expect(notificationJob({ ...form, to: ' ' })).toEqual({ ok: false, message: 'Enter the user id' });
    expect(notificationJob({ ...form, target: 'users', to: ' , ' })).toEqual({ ok: false, message: 'Enter at least one user id' });
    expect(notificationJob({ ...form, target: 'room', to: '' })).toEqual({ ok: false, message: 'Enter the room name' });
    expect(notificationJob({ ...form, data: '[1]' })).toEqual({ ok: false, message: 'Data must be a JSON object, like {"orderId": 42}' });
    const bad = notificationJob({ ...form, data: '{' });
    expect(bad.ok === false && bad.message).toMatch(/^Data is not valid JSON: /);
  });
});
