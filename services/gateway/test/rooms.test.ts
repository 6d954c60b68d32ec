import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mintRoomToken } from '@switchboard/testkit';
import { startCluster, type Cluster, type TestClient } from '@switchboard/harness';
import type { Ack } from '@switchboard/protocol';

type Emit = (event: string, payload: unknown) => Promise<Ack<unknown>>;
const emit = (c: TestClient, event: string, payload: unknown) => (c.emitWithAck as unknown as Emit)(event, payload);
const code = (a: Ack<unknown>) => (a.ok ? 'ok' : a.error.code);

describe('room policies (SPEC §4)', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2, env: { MAX_ROOMS_PER_SOCKET: '3' } });
  });
  afterAll(() => cluster.stop());

  it('public rooms: any user joins and, once a member, publishes', async () => {
    const c = await cluster.connect('pub-user');
    expect(code(await emit(c, 'room:publish', { room: 'public:p1', data: 1 }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:join', { room: 'public:p1' }))).toBe('ok');
    expect(code(await emit(c, 'room:publish', { room: 'public:p1', data: 1 }))).toBe('ok');
    expect(code(await emit(c, 'room:leave', { room: 'public:p1' }))).toBe('ok');
    expect(code(await emit(c, 'room:publish', { room: 'public:p1', data: 1 }))).toBe('FORBIDDEN');
  });

  it('private rooms: only with a valid room token for this user and this exact room', async () => {
    const c = await cluster.connect('priv-user');
    const room = 'private:deal-42';
    expect(code(await emit(c, 'room:join', { room }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:join', { room, token: await mintRoomToken('someone-else', room) }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:join', { room, token: await mintRoomToken('priv-user', 'private:deal-43') }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:join', { room, token: await mintRoomToken('priv-user', room, -10) }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:join', { room, token: await cluster.token({ sub: 'priv-user' }) }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:join', { room, token: await mintRoomToken('priv-user', room) }))).toBe('ok');
    expect(code(await emit(c, 'room:publish', { room, data: 'secret' }))).toBe('ok');
  });

  it('the rooms claim grants exact names and * prefixes, and nothing else', async () => {
    const c = await cluster.connect({ sub: 'claim-user', rooms: ['team:alpha', 'org:acme:*', 'private:board'] });
    expect(code(await emit(c, 'room:join', { room: 'team:alpha' }))).toBe('ok');
    expect(code(await emit(c, 'room:join', { room: 'org:acme:eng' }))).toBe('ok');
    expect(code(await emit(c, 'room:join', { room: 'private:board' }))).toBe('ok');
    expect(code(await emit(c, 'room:join', { room: 'team:beta' }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:join', { room: 'org:acmex:eng' }))).toBe('FORBIDDEN');
    const plain = await cluster.connect('no-claims');
    expect(code(await emit(plain, 'room:join', { room: 'team:alpha' }))).toBe('FORBIDDEN');
    expect(code(await emit(plain, 'room:publish', { room: 'team:alpha', data: 1 }))).toBe('FORBIDDEN');
  });

  it('user rooms: never joined, left or published to by a client, not even their own', async () => {
    const c = await cluster.connect({ sub: 'uroom', rooms: ['user:*'] });
    expect(code(await emit(c, 'room:join', { room: 'user:uroom' }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:join', { room: 'user:other' }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:publish', { room: 'user:uroom', data: 1 }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:publish', { room: 'user:other', data: 1 }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:typing', { room: 'user:other', typing: true }))).toBe('FORBIDDEN');
    expect(code(await emit(c, 'room:leave', { room: 'user:uroom' }))).toBe('FORBIDDEN');
  });

  it('typing, members and history need membership', async () => {
    const c = await cluster.connect('nosy');
    for (const [event, payload] of [
      ['room:typing', { room: 'public:closed', typing: true }],
      ['room:members', { room: 'public:closed' }],
      ['room:history', { room: 'public:closed' }],
    ] as const) {
      expect({ event, code: code(await emit(c, event, payload)) }).toEqual({ event, code: 'FORBIDDEN' });
    }
  });

  it('limits rooms per socket with LIMIT_EXCEEDED; joining again is idempotent', async () => {
    const c = await cluster.connect('roomy');
    for (const r of ['public:r1', 'public:r2', 'public:r3']) expect(code(await emit(c, 'room:join', { room: r }))).toBe('ok');
    expect(code(await emit(c, 'room:join', { room: 'public:r1' }))).toBe('ok');
    const over = await emit(c, 'room:join', { room: 'public:r4' });
    expect(code(over)).toBe('LIMIT_EXCEEDED');
    await emit(c, 'room:leave', { room: 'public:r3' });
    expect(code(await emit(c, 'room:join', { room: 'public:r4' }))).toBe('ok');
  });
});
