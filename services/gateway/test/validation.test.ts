import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually, waitFor } from '@switchboard/testkit';
import { startCluster, type Cluster, type TestClient } from '@switchboard/harness';
import { CLIENT_EVENTS, type Ack } from '@switchboard/protocol';

type Emit = (event: string, ...args: unknown[]) => Promise<Ack<unknown>>;
const emit = (c: TestClient, event: string, ...args: unknown[]) => (c.emitWithAck as unknown as Emit)(event, ...args);
const code = (a: Ack<unknown>) => (a.ok ? 'ok' : a.error.code);

describe('malformed payloads', () => {
  let cluster: Cluster;
  let c: TestClient;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 1, env: { MAX_PAYLOAD_BYTES: '1024', RATE_LIMIT_PER_SEC: '10000', RATE_LIMIT_BURST: '10000' } });
    c = await cluster.connect('fuzzy');
    await c.emitWithAck('room:join', { room: 'public:v' });
  });
  afterAll(() => cluster.stop());

  const notObjects = [null, 42, 'str', true, [], [1, 2]];

  it('answers INVALID_PAYLOAD to non-object payloads on every event', async () => {
    for (const event of CLIENT_EVENTS) {
      for (const payload of notObjects) {
        const ack = await emit(c, event, payload);
        expect({ event, payload, code: code(ack) }).toEqual({ event, payload, code: 'INVALID_PAYLOAD' });
      }
    }
  });

  it('answers INVALID_PAYLOAD to wrong types, missing fields, bad names and huge arrays', async () => {
    const huge = Array.from({ length: 5000 }, (_, i) => `u${i}`);
    const cases: [string, unknown][] = [
      ['room:join', {}],
      ['room:join', { room: 7 }],
      ['room:join', { room: 'no-kind' }],
      ['room:join', { room: 'public:has space' }],
      ['room:join', { room: `public:${'x'.repeat(300)}` }],
      ['room:join', { room: 'public:v', since: { $gt: 0 } }],
      ['room:join', { room: 'public:v', token: 5 }],
      ['room:join', { room: 'public:v', admin: true }],
      ['room:leave', { room: ['public:v'] }],
      ['room:publish', { room: 'public:v' }],
      ['room:publish', { room: 'public:v', data: 1, type: 'bad type!' }],
      ['room:typing', { room: 'public:v', typing: 'yes' }],
      ['room:members', { room: 'public:v', limit: 10_000 }],
      ['room:history', { room: 'public:v', limit: -1 }],
      ['presence:set', { status: 'invisible' }],
      ['presence:set', { status: 'away', text: 'x'.repeat(1000) }],
      ['presence:watch', { userIds: huge }],
      ['presence:watch', { userIds: ['ok', 'not ok'] }],
      ['presence:unwatch', { userIds: 'alice' }],
      ['notification:list', { limit: 'ten' }],
      ['notification:read', { ids: huge }],
      ['notification:read', { all: 'yes' }],
      ['auth:refresh', {}],
      ['session:ping', { extra: 1 }],
    ];
    for (const [event, payload] of cases) {
      const ack = await emit(c, event, payload);
      expect({ event, code: code(ack) }).toEqual({ event, code: 'INVALID_PAYLOAD' });
      if (!ack.ok) expect(ack.error.message).toMatch(/^\//);
    }
  });

  it('answers PAYLOAD_TOO_LARGE to oversize data and keeps the socket', async () => {
    const ack = await emit(c, 'room:publish', { room: 'public:v', data: { blob: 'x'.repeat(2000) } });
    expect(code(ack)).toBe('PAYLOAD_TOO_LARGE');
    expect(code(await emit(c, 'room:publish', { room: 'public:v', data: { blob: 'x'.repeat(500) } }))).toBe('ok');
  });

  it('answers unknown events, and events without a callback through session:error', async () => {
    expect(await emit(c, 'admin:drop-tables', {})).toEqual({ ok: false, error: { code: 'INVALID_PAYLOAD', message: 'Unknown event' } });
    const err = waitFor(c, 'session:error');
    (c.emit as unknown as (e: string, p: unknown) => void)('room:join', { room: 'bad' });
    expect(await err).toMatchObject({ code: 'INVALID_PAYLOAD', event: 'room:join' });
  });

  it('is still healthy afterwards: the same socket works and the pod is ready', async () => {
    expect(c.connected).toBe(true);
    const pong = await c.emitWithAck('session:ping', {});
    expect(pong.ok).toBe(true);
    const res = await fetch(`${cluster.gateways[0]!.url}/readyz`);
    expect(res.status).toBe(200);
  });
});

describe('per-socket rate limit', () => {
  it('answers RATE_LIMITED past the burst and recovers', async () => {
    const cluster = await startCluster({ redis: inject('redis'), gateways: 1, env: { RATE_LIMIT_PER_SEC: '5', RATE_LIMIT_BURST: '10' } });
    try {
      const c = await cluster.connect('spammer');
      const acks = await Promise.all(Array.from({ length: 30 }, () => c.emitWithAck('session:ping', {})));
      const codes = acks.map(code);
      expect(codes.filter((x) => x === 'ok').length).toBeGreaterThanOrEqual(10);
      expect(codes.filter((x) => x === 'ok').length).toBeLessThan(15);
      expect(codes).toContain('RATE_LIMITED');
      // each refusal says when the socket is served again: at 5/s, within a token's 200 ms
      for (const ack of acks) {
        if (ack.ok) continue;
        const { retryAfterMs } = ack.error.details as { retryAfterMs: number };
        expect(retryAfterMs).toBeGreaterThan(0);
        expect(retryAfterMs).toBeLessThanOrEqual(200);
      }
      const other = await cluster.connect('polite');
      expect(code(await other.emitWithAck('session:ping', {}))).toBe('ok');
      // the bucket refills: the same socket is served again
      await eventually(async () => (await c.emitWithAck('session:ping', {})).ok, { timeoutMs: 5000, intervalMs: 100 });
    } finally {
      await cluster.stop();
    }
  });
});
