import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '@switchboard/observability';
import { mintToken, TEST_JWT_SECRET } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';
import { schemas } from '../src/index.js';
import { API_KEY, assertShape, SECOND_KEY, startAdmin, V1_ROUTES, type ErrorAnswer, type TestAdmin } from './helpers.js';

const REALM = 'Bearer realm="switchboard-admin"';

describe('admin auth', () => {
  let cluster: Cluster;
  let admin: TestAdmin;

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
    admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix });
  });
  afterAll(async () => {
    await admin?.close();
    await cluster?.stop();
  });

  function expectUnauthorized(res: { status: number; headers: Headers; body: unknown }, invalidToken: boolean) {
    expect(res.status).toBe(401);
    assertShape(schemas.ErrorResponse, res.body);
    expect((res.body as ErrorAnswer).error.code).toBe('UNAUTHORIZED');
    expect(res.headers.get('www-authenticate')).toBe(invalidToken ? `${REALM}, error="invalid_token"` : REALM);
  }

  it('answers 401 with WWW-Authenticate on every /v1 route without credentials', async () => {
    for (const [method, path] of V1_ROUTES) {
      const res = await admin.call(method, path, { auth: null, ...(method === 'POST' ? { body: {} } : {}) });
      expectUnauthorized(res, false);
      expect((res.body as ErrorAnswer).error.message).toBe('Bearer credentials required');
    }
    // not a Bearer credential
    expectUnauthorized(await admin.call('GET', '/v1/stats', { auth: null, headers: { authorization: `Basic ${API_KEY}` } }), false);
    expectUnauthorized(await admin.call('GET', '/v1/stats', { auth: null, headers: { authorization: 'Bearer' } }), false);
  });

  it('answers 401 for a wrong API key, however close', async () => {
    for (const key of ['wrong-key-0123456789abcdef', `${API_KEY.slice(0, -1)}x`, `${API_KEY}x`, API_KEY.slice(1), API_KEY.toUpperCase()]) {
      const res = await admin.call('GET', '/v1/stats', { auth: key });
      expectUnauthorized(res, true);
      expect((res.body as ErrorAnswer).error.message).toBe('Invalid credentials');
    }
  });

  it('answers 401 for a bad access token: wrong signature, expired, alg none, malformed', async () => {
    const forged = await mintToken({ sub: 'mallory', roles: ['admin'] }, 'another-secret-that-is-long-enough-000');
    const expired = await mintToken({ sub: 'root', roles: ['admin'], expiresIn: -60 });
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(
      JSON.stringify({ sub: 'root', roles: ['admin'], exp: Math.floor(Date.now() / 1000) + 600 }),
    ).toString('base64url')}.`;
    for (const token of [forged, unsigned, 'not.a.jwt', 'a'.repeat(9000)]) {
      const res = await admin.call('GET', '/v1/stats', { auth: token });
      expectUnauthorized(res, true);
      expect((res.body as ErrorAnswer).error.message).toBe('Invalid credentials');
    }
    const res = await admin.call('GET', '/v1/stats', { auth: expired });
    expectUnauthorized(res, true);
    expect((res.body as ErrorAnswer).error.message).toBe('Access token expired');
  });

  it('answers 403 for a valid access token without the admin role, on every /v1 route', async () => {
    for (const roles of [undefined, [], ['user', 'moderator'], ['Admin']]) {
      const token = await mintToken({ sub: 'alice', ...(roles ? { roles } : {}) });
      for (const [method, path] of V1_ROUTES) {
        const res = await admin.call<ErrorAnswer>(method, path, { auth: token, ...(method === 'POST' ? { body: {} } : {}) });
        expect(res.status, `${method} ${path}`).toBe(403);
        assertShape(schemas.ErrorResponse, res.body);
        expect(res.body.error).toEqual({ code: 'FORBIDDEN', message: 'The "admin" role is required' });
      }
    }
  });

  it('accepts every configured API key and an access token with the admin role', async () => {
    const token = await mintToken({ sub: 'root', roles: ['user', 'admin'] });
    for (const auth of [API_KEY, SECOND_KEY, token]) {
      const res = await admin.call('GET', '/v1/stats', { auth });
      expect(res.status).toBe(200);
      assertShape(schemas.StatsResponse, res.body);
    }
    // the scheme is case-insensitive
    const lower = await admin.call('GET', '/v1/stats', { auth: null, headers: { authorization: `bearer ${API_KEY}` } });
    expect(lower.status).toBe(200);
  });

  it('refuses access tokens when no JWT key is configured', async () => {
    const keysOnly = await startAdmin({
      redis: cluster.redisEnv,
      keyPrefix: cluster.keyPrefix,
      env: { JWT_SECRET: '' },
    });
    try {
      expect(keysOnly.config.jwt).toBeUndefined();
      const token = await mintToken({ sub: 'root', roles: ['admin'] });
      expectUnauthorized(await keysOnly.call('GET', '/v1/stats', { auth: token }), true);
      expect((await keysOnly.call('GET', '/v1/stats')).status).toBe(200);
    } finally {
      await keysOnly.close();
    }
  });

  it('sets security headers on API answers and on the docs', async () => {
    for (const path of ['/v1/stats', '/docs', '/healthz']) {
      const res = await admin.call('GET', path);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("object-src 'none'");
      expect(csp).not.toContain('upgrade-insecure-requests');
    }
  });
});

describe('admin auth logging', () => {
  it('never logs an API key or a token; refusals are logged with their reason', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const logger = createLogger({ service: 'admin', level: 'trace', destination });
    const cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
    const admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, logger });
    try {
      const adminToken = await mintToken({ sub: 'root', roles: ['admin'] });
      const userToken = await mintToken({ sub: 'alice', roles: ['user'] });
      const badKey = 'not-a-key-but-secret-looking-0123';
      const badToken = await mintToken({ sub: 'root', roles: ['admin'] }, `${TEST_JWT_SECRET}-other`);
      const secrets = [API_KEY, SECOND_KEY, adminToken, userToken, badKey, badToken];
      for (const auth of secrets) await admin.call('GET', '/v1/users?limit=5', { auth });
      await admin.call('POST', '/v1/users/someone/disconnect', { auth: adminToken });
      // pino redaction covers headers that are logged explicitly
      logger.info({ req: { headers: { authorization: `Bearer ${API_KEY}` } } }, 'explicit request headers');
      admin.app.log.info({ headers: { authorization: `Bearer ${API_KEY}` } }, 'explicit headers');

      expect(lines.some((l) => l.includes('"msg":"incoming request"'))).toBe(true);
      const refusals = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l.msg).startsWith('admin authentication failed'));
      expect(refusals.map((l) => l.reason).sort()).toEqual(['AUTH_INVALID', 'AUTH_INVALID']);
      const forbidden = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'admin authorization failed');
      expect(forbidden).toMatchObject([{ reason: 'not admin', sub: 'alice' }]);
      const audit = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'admin disconnected a user');
      expect(audit).toMatchObject({ principal: 'token:root', userId: 'someone', sockets: 0 });
      expect(lines.find((l) => l.includes('explicit request headers'))).toContain('"authorization":"[redacted]"');
      expect(lines.find((l) => l.includes('explicit headers'))).toContain('"authorization":"[redacted]"');
      for (const secret of secrets) {
        expect(lines.filter((l) => l.includes(secret))).toEqual([]);
        // nor the signature part of a token on its own
        const tail = secret.split('.').pop()!;
        expect(lines.filter((l) => l.includes(tail))).toEqual([]);
      }
    } finally {
      await admin.close();
      await cluster.stop();
    }
  });
});

describe('admin rate limiting', () => {
  it('answers 429 in the error format past the limit, per API key or client address; probes are never limited', async () => {
    const cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
    const admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, env: { ADMIN_RATE_LIMIT_PER_MIN: '3' } });
    try {
      for (let i = 0; i < 3; i++) expect((await admin.call('GET', '/v1/stats')).status).toBe(200);
      const limited = await admin.call<ErrorAnswer>('GET', '/v1/stats');
      expect(limited.status).toBe(429);
      assertShape(schemas.ErrorResponse, limited.body);
      expect(limited.body.error.code).toBe('RATE_LIMITED');
      expect(limited.body.error.message).toMatch(/^Rate limit exceeded, retry in \d+ (seconds?|minutes?)$/);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(limited.headers.get('x-ratelimit-limit')).toBe('3');
      // every route of the scope shares the key's budget
      expect((await admin.call('GET', '/v1/users')).status).toBe(429);

      // another key has its own budget
      for (let i = 0; i < 3; i++) expect((await admin.call('GET', '/v1/rooms', { auth: SECOND_KEY })).status).toBe(200);
      expect((await admin.call('GET', '/v1/rooms', { auth: SECOND_KEY })).status).toBe(429);

      // anything else is limited by client address: guessing credentials is limited too
      const token = await mintToken({ sub: 'root', roles: ['admin'] });
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await admin.call('GET', '/v1/stats', { auth: i % 2 ? token : `guess-${i}-0123456789abcdef` })).status);
      expect(statuses).toEqual([401, 200, 401, 429]);

      for (let i = 0; i < 5; i++) {
        expect((await admin.call('GET', '/healthz', { auth: null })).status).toBe(200);
        expect((await admin.call('GET', '/metrics', { auth: null })).status).toBe(200);
      }
    } finally {
      await admin.close();
      await cluster.stop();
    }
  });
});
