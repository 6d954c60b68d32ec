import { describe, expect, expectTypeOf, it } from 'vitest';
import type { Socket as ClientSocket } from 'socket.io-client';
import {
  assertNotificationJob,
  claimGrants,
  clientEventValidators,
  isRoomName,
  isUserId,
  roomKind,
  SwitchboardError,
  type Ack,
  type ClientToServerEvents,
  type NotificationJob,
  type RoomJoinResult,
  type RoomMessage,
  type ServerToClientEvents,
} from '../src/index.js';

describe('room names and user ids', () => {
  it('accepts the grammar and rejects the rest', () => {
    expect(isRoomName('public:lobby')).toBe(true);
    expect(isRoomName('private:team/a.b@c:d-e_f')).toBe(true);
    expect(isRoomName('lobby')).toBe(false);
    expect(isRoomName(':x')).toBe(false);
    expect(isRoomName('public:')).toBe(false);
    expect(isRoomName('public:a b')).toBe(false);
    expect(isRoomName('#presence:alice')).toBe(false);
    expect(isRoomName(`public:${'a'.repeat(193)}`)).toBe(true);
    expect(isRoomName(`public:${'a'.repeat(194)}`)).toBe(false);
    expect(isRoomName(42)).toBe(false);
    expect(isUserId('alice@example.com')).toBe(true);
    expect(isUserId('')).toBe(false);
    expect(isUserId('a'.repeat(129))).toBe(false);
    expect(isUserId('a/b')).toBe(false);
  });

  it('knows room kinds', () => {
    expect(roomKind('user:alice')).toBe('user');
    expect(roomKind('public:x')).toBe('public');
    expect(roomKind('private:x')).toBe('private');
    expect(roomKind('team:x')).toBe('other');
  });

  it('grants rooms by exact name or by a non-empty prefix', () => {
    expect(claimGrants(['team:a'], 'team:a')).toBe(true);
    expect(claimGrants(['team:a'], 'team:ab')).toBe(false);
    expect(claimGrants(['team:*'], 'team:ab')).toBe(true);
    expect(claimGrants(['team:*'], 'teams:ab')).toBe(false);
    expect(claimGrants(['*'], 'team:ab')).toBe(false);
  });
});

describe('payload validation', () => {
  const v = clientEventValidators();

  it('accepts valid payloads', () => {
    expect(v['room:join']({ room: 'public:a' })).toBe(true);
    expect(v['room:join']({ room: 'public:a', since: '1700000000000-0', token: 't' })).toBe(true);
    expect(v['room:publish']({ room: 'public:a', data: { text: 'hi' } })).toBe(true);
    expect(v['room:publish']({ room: 'public:a', type: 'chat', data: null })).toBe(true);
    expect(v['notification:read']({ all: true })).toBe(true);
    expect(v['notification:read']({ ids: ['n1'] })).toBe(true);
    expect(v['session:ping']({})).toBe(true);
  });

  it('rejects malformed payloads with INVALID_PAYLOAD naming the field', () => {
    const bad: [keyof typeof v, unknown][] = [
      ['room:join', null],
      ['room:join', 'public:a'],
      ['room:join', { room: 42 }],
      ['room:join', { room: 'nokind' }],
      ['room:join', { room: 'public:a', extra: 1 }],
      ['room:join', { room: 'public:a', since: 'yesterday' }],
      ['room:publish', { room: 'public:a' }],
      ['room:typing', { room: 'public:a', typing: 'yes' }],
      ['presence:set', { status: 'asleep' }],
      ['presence:watch', { userIds: [] }],
      ['presence:watch', { userIds: Array.from({ length: 101 }, (_, i) => `u${i}`) }],
      ['notification:read', { all: false }],
      ['notification:read', { ids: [] }],
      ['room:members', { room: 'public:a', limit: 0 }],
      ['auth:refresh', { token: '' }],
    ];
    for (const [event, payload] of bad) {
      expect(v[event](payload), `${event} ${JSON.stringify(payload)}`).toBe(false);
      let caught: unknown;
      try {
        v[event].assert(payload);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(SwitchboardError);
      expect((caught as SwitchboardError).code).toBe('INVALID_PAYLOAD');
    }
  });

  it('validates notification jobs, data size included', () => {
    const job: NotificationJob = { to: { userId: 'alice' }, type: 'mention', title: 'Hi' };
    expect(() => assertNotificationJob(job)).not.toThrow();
    expect(() => assertNotificationJob({ to: { userIds: [] }, type: 'x' })).toThrow(SwitchboardError);
    expect(() => assertNotificationJob({ to: { broadcast: false }, type: 'x' })).toThrow(/to/);
    expect(() => assertNotificationJob({ to: { userId: 'a' } })).toThrow(/type/);
    try {
      assertNotificationJob({ to: { userId: 'a' }, type: 'x', data: { blob: 'x'.repeat(17_000) } });
      expect.unreachable();
    } catch (err) {
      expect((err as SwitchboardError).code).toBe('PAYLOAD_TOO_LARGE');
    }
  });
});

describe('event types', () => {
  it('types the client socket from the shared maps', () => {
    type C = ClientSocket<ServerToClientEvents, ClientToServerEvents>;
    const join = (s: C) => s.emitWithAck('room:join', { room: 'public:a' });
    expectTypeOf(join).returns.resolves.toEqualTypeOf<Ack<RoomJoinResult>>();
    expectTypeOf<Parameters<ServerToClientEvents['room:message']>[0]>().toEqualTypeOf<RoomMessage>();
    expectTypeOf<Parameters<Parameters<ClientToServerEvents['room:join']>[1]>[0]>().toEqualTypeOf<
      Ack<RoomJoinResult>
    >();
    // @ts-expect-error room is required
    expectTypeOf<Parameters<ClientToServerEvents['room:join']>[0]>().toEqualTypeOf<{ since?: string }>();
    const narrow = (a: Ack<{ id: string }>) => (a.ok ? a.data.id : a.error.code);
    expectTypeOf(narrow).returns.toEqualTypeOf<string>();
  });
});
