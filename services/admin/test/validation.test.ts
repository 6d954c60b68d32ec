import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '@switchboard/observability';
import { startCluster, type Cluster } from '@switchboard/harness';
import { keys } from '@switchboard/store';
import { schemas } from '../src/index.js';
import { assertShape, startAdmin, type CallOptions, type ErrorAnswer, type TestAdmin } from './helpers.js';

interface Detail {
  in: string;
  path: string;
  message: string;
}

describe('input validation and error format', () => {
  let cluster: Cluster;
  let admin: TestAdmin;
  const lines: string[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    admin = await startAdmin({
      redis: cluster.redisEnv,
      keyPrefix: cluster.keyPrefix,
      logger: createLogger({ service: 'admin', level: 'warn', destination }),
    });
  });
  afterAll(async () => {
    await admin?.close();
    await cluster?.stop();
  });

  async function invalid(method: string, path: string, options: CallOptions, where: string, at?: string) {
    const res = await admin.call<ErrorAnswer>(method, path, options);
    expect(res.status, `${method} ${path} ${JSON.stringify(options.body ?? '')}`).toBe(400);
    assertShape(schemas.ErrorResponse, res.body);
    expect(res.body.error.code).toBe('INVALID_PAYLOAD');
    const details = res.body.error.details as Detail[];
    expect(details.length).toBeGreaterThan(0);
    expect(details[0]!.in).toBe(where);
    if (at !== undefined) expect(details.map((d) => d.path)).toContain(at);
    expect(res.body.error.message.startsWith(where)).toBe(true);
    return res.body.error;
  }

  it('refuses bad user ids', async () => {
    for (const id of ['bad%20id', 'a'.repeat(129), 'semi%3Bcolon', '%C3%A9t%C3%A9']) {
      await invalid('GET', `/v1/users/${id}`, {}, 'params', '/userId');
      await invalid('POST', `/v1/users/${id}/disconnect`, {}, 'params', '/userId');
    }
  });

  it('refuses bad room names', async () => {
    for (const room of ['nocolon', 'public%3A', '%3Aid', 'public%3Ab%20c', `public%3A${'x'.repeat(194)}`, 'public%3Aa%23b']) {
      await invalid('GET', `/v1/rooms/${room}`, {}, 'params', '/room');
      await invalid('POST', `/v1/rooms/${room}/messages`, { body: { data: 1 } }, 'params', '/room');
    }
  });

  it('refuses bad cursors, limits, prefixes and unknown query parameters', async () => {
    for (const q of ['cursor=bad%20cursor', `cursor=${'a'.repeat(129)}`]) await invalid('GET', `/v1/users?${q}`, {}, 'querystring', '/cursor');
    for (const q of ['cursor=nocolon', 'cursor=a%20b%3Ac']) await invalid('GET', `/v1/rooms?${q}`, {}, 'querystring', '/cursor');
    await invalid('GET', '/v1/rooms?prefix=has%20space', {}, 'querystring', '/prefix');
    await invalid('GET', '/v1/rooms/public%3Aa?cursor=a%20b', {}, 'querystring', '/cursor');
    for (const limit of ['0', '-1', '1001', 'abc', '1.5', '1e2', '0x10', '', '5&limit=6']) {
      await invalid('GET', `/v1/users?limit=${limit}`, {}, 'querystring', '/limit');
      await invalid('GET', `/v1/rooms?limit=${limit}`, {}, 'querystring', '/limit');
      await invalid('GET', `/v1/rooms/public%3Aa?limit=${limit}`, {}, 'querystring', '/limit');
    }
    for (const limit of ['0', '101']) await invalid('GET', `/v1/queues/notifications?limit=${limit}`, {}, 'querystring', '/limit');
    await invalid('GET', '/v1/users?limt=5', {}, 'querystring');
  });

  it('refuses invalid messages', async () => {
    const path = '/v1/rooms/public%3Aa/messages';
    await invalid('POST', path, { body: {} }, 'body', '/data');
    await invalid('POST', path, { body: { type: 'bad type!', data: 1 } }, 'body', '/type');
    await invalid('POST', path, { body: { data: 1, extra: true } }, 'body');
    await invalid('POST', path, { body: [1, 2] }, 'body');
    // not JSON at all
    const broken = await admin.call<ErrorAnswer>('POST', path, { rawBody: '{"data":', headers: { 'content-type': 'application/json' } });
    expect(broken.status).toBe(400);
    expect(broken.body.error.code).toBe('INVALID_PAYLOAD');
    const noBody = await admin.call<ErrorAnswer>('POST', path, { rawBody: '', headers: { 'content-type': 'application/json' } });
    expect(noBody.status).toBe(400);
    expect(noBody.body.error.code).toBe('INVALID_PAYLOAD');
    for (const type of ['text/plain', 'application/xml', 'application/x-www-form-urlencoded']) {
      const other = await admin.call<ErrorAnswer>('POST', path, { rawBody: 'data=1', headers: { 'content-type': type } });
      expect(other.status, type).toBe(415);
      assertShape(schemas.ErrorResponse, other.body);
      expect(other.body.error.code).toBe('INVALID_PAYLOAD');
    }
  });

  it('refuses invalid notification jobs, saying what is wrong', async () => {
    const cases: [unknown, string | undefined][] = [
      [{ type: 't' }, '/to'],
      [{ to: { userId: 'u' } }, '/type'],
      [{ to: { nobody: true }, type: 't' }, '/to'],
      [{ to: { userId: 'bad id' }, type: 't' }, '/to'],
      [{ to: { room: 'nocolon' }, type: 't' }, '/to'],
      [{ to: { broadcast: false }, type: 't' }, '/to'],
      [{ to: { userIds: [] }, type: 't' }, '/to'],
      [{ to: { userIds: Array.from({ length: 1001 }, (_, i) => `u${i}`) }, type: 't' }, '/to'],
      [{ id: '12345', to: { userId: 'u' }, type: 't' }, '/id'],
      [{ to: { userId: 'u' }, type: 't', data: 'not an object' }, '/data'],
      [{ to: { userId: 'u' }, type: 't', persist: 'yes' }, '/persist'],
      [{ to: { userId: 'u' }, type: 't', title: 'x'.repeat(201) }, '/title'],
      [{ to: { userId: 'u' }, type: 't', surprise: 1 }, undefined],
    ];
    for (const [body, at] of cases) await invalid('POST', '/v1/notifications', { body }, 'body', at);
    expect((await admin.call('GET', '/v1/queues/notifications')).body).toMatchObject({ counts: { waiting: 0 } });
  });

  it('refuses bad job ids', async () => {
    for (const id of ['a%3Ab', 'with%20space', 'x'.repeat(129)]) {
      await invalid('POST', `/v1/queues/notifications/jobs/${id}/retry`, {}, 'params', '/id');
    }
  });

  it('answers unknown routes with 404 in the error format', async () => {
    for (const [method, path] of [
      ['GET', '/v1/nothing'],
      ['DELETE', '/v1/users/alice'],
      ['GET', '/v2/stats'],
      ['GET', '/'],
    ] as const) {
      const res = await admin.call<ErrorAnswer>(method, path);
      expect(res.status, path).toBe(404);
      assertShape(schemas.ErrorResponse, res.body);
      expect(res.body.error).toEqual({ code: 'NOT_FOUND', message: `Route ${method} ${path} not found` });
    }
  });

  it('hides the cause of a server failure from the caller and logs it', async () => {
    // A registry key of the wrong type makes Redis refuse the read: an unexpected failure.
    const key = keys(cluster.keyPrefix).online;
    await cluster.redis.set(key, 'not a sorted set');
    try {
      const res = await admin.call<ErrorAnswer>('GET', '/v1/users');
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: { code: 'INTERNAL', message: 'Internal server error' } });
      expect(JSON.stringify(res.body)).not.toMatch(/WRONGTYPE/);
      const logged = lines.map((l) => JSON.parse(l) as { msg: string; err?: { message: string } }).find((l) => l.msg === 'request failed');
      expect(logged?.err?.message).toMatch(/WRONGTYPE/);
    } finally {
      await cluster.redis.del(key);
    }
  });
});
