import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '@switchboard/observability';
import { NOTIFICATIONS_QUEUE } from '@switchboard/protocol';
import { closeRedis, createRedisClient, isCluster, keys, queuePrefix, type RedisClient } from '@switchboard/store';
import { freePort, mintToken, randomKeyPrefix, waitFor } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';
import { schemas } from '../src/index.js';
import { API_KEY, assertShape, SECOND_KEY, startAdmin, type Answer, type ErrorAnswer, type TestAdmin } from './helpers.js';

interface SessionView {
  principal: string;
  expiresAt: number;
  csrfToken: string;
  heartbeatIntervalMs: number;
}

/** A browser's view of the console: its session cookie, and the headers its page sends. */
interface Browser {
  cookie: string;
  csrf: string;
  setCookie: string;
  session: SessionView;
}

const COOKIE = /^sb_console=([A-Za-z0-9_-]{43});/;

async function signIn(admin: TestAdmin, credential: string): Promise<Browser> {
  const res = await admin.call<SessionView>('POST', '/console/session', {
    auth: null,
    body: { credential },
    headers: { origin: admin.url },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const id = COOKIE.exec(setCookie)?.[1];
  expect(id, setCookie).toBeDefined();
  return { cookie: `sb_console=${id}`, csrf: res.body.csrfToken, setCookie, session: res.body };
}

/** A call made by the console page: cookie, this origin, and the CSRF token unless told otherwise. */
function asPage(admin: TestAdmin, b: Browser, method: string, path: string, options: { body?: unknown; headers?: Record<string, string> } = {}) {
  return admin.call<unknown>(method, path, {
    auth: null,
    ...(options.body !== undefined ? { body: options.body } : {}),
    headers: { cookie: b.cookie, origin: admin.url, 'x-csrf-token': b.csrf, ...options.headers },
  });
}

const quiet = { warn: () => {} };

function logSink() {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { lines, raw, logger: createLogger({ service: 'admin', level: 'info', destination }) };
}

describe('operator console: page and sign-in', () => {
  let cluster: Cluster;
  let admin: TestAdmin;
  const logs = logSink();

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 1 });
    admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, logger: logs.logger });
  });
  /** The Redis key of the session a cookie names: the SHA-256 of its id, never the id. */
  const sessionKey = (id: string) => keys(cluster.keyPrefix).consoleSession(createHash('sha256').update(id).digest('hex'));
  afterAll(async () => {
    await admin?.close();
    await cluster?.stop();
  });

  it('serves the page and its assets from this origin, under a CSP without inline code, never framed', async () => {
    for (const path of ['/console', '/console/']) {
      const page = await admin.call<string>('GET', path, { auth: null });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      const csp = page.headers.get('content-security-policy') ?? '';
      for (const directive of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]) {
        expect(csp).toContain(directive);
      }
      expect(csp).not.toContain('unsafe-inline');
      expect(page.headers.get('x-frame-options')).toBe('DENY');
      // no inline script or style: every <script> has a src, no style attributes or elements
      expect(page.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(page.body).not.toMatch(/\sstyle=|<style/);
      for (const asset of page.body.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)) {
        const res = await admin.call<string>('GET', asset[1]!, { auth: null });
        expect(res.status, asset[1]).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/^(text\/css|text\/javascript|application\/javascript)/);
      }
    }
    for (const module of ['api.js', 'lib.js', 'console.js']) {
      expect((await admin.call('GET', `/console/assets/${module}`, { auth: null })).status).toBe(200);
    }
    const missing = await admin.call<ErrorAnswer>('GET', '/console/assets/nope.js', { auth: null });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');
  });

  it('signs in with an API key: an opaque HttpOnly SameSite=Strict cookie, a session in Redis under the key prefix', async () => {
    const b = await signIn(admin, SECOND_KEY);
    assertShape(schemas.ConsoleSessionResponse, b.session);
    expect(b.session.principal).toBe('api-key#1');
    expect(b.session.heartbeatIntervalMs).toBe(5000);
    const attributes = b.setCookie.split(';').map((a) => a.trim().toLowerCase());
    expect(attributes).toEqual(expect.arrayContaining(['path=/', 'httponly', 'samesite=strict']));
    expect(attributes).not.toContain('secure'); // plain HTTP here
    const maxAge = Number(attributes.find((a) => a.startsWith('max-age='))?.slice(8));
    expect(maxAge).toBeGreaterThan(8 * 3600 - 10);
    expect(maxAge).toBeLessThanOrEqual(8 * 3600);
    expect(b.setCookie).not.toContain(SECOND_KEY);

    const id = b.cookie.split('=')[1]!;
    const stored = sessionKey(id);
    expect(stored).toMatch(new RegExp(`^${cluster.keyPrefix}:console:session:[0-9a-f]{64}$`));
    expect(stored).not.toContain(id);
    const value = (await cluster.redis.get(stored))!;
    expect(value).not.toContain(SECOND_KEY);
    expect(value).not.toContain(id);
    const ttl = await cluster.redis.pttl(stored);
    expect(ttl).toBeGreaterThan(8 * 3600_000 - 60_000);

    const again = await admin.call<SessionView>('GET', '/console/session', { auth: null, headers: { cookie: b.cookie } });
    expect(again.status).toBe(200);
    expect(again.headers.get('cache-control')).toBe('no-store');
    expect(again.body).toEqual(b.session);
    // the /v1 API accepts the cookie, in the same budget as the API key it was signed in with
    const stats = await admin.call('GET', '/v1/stats', { auth: null, headers: { cookie: b.cookie } });
    expect(stats.status).toBe(200);
    assertShape(schemas.StatsResponse, stats.body);
  });

  it('signs in with an admin access token for no longer than the token lives', async () => {
    const token = await mintToken({ sub: 'ops-ann', roles: ['admin'], expiresIn: 120 });
    const b = await signIn(admin, token);
    expect(b.session.principal).toBe('token:ops-ann');
    expect(b.session.expiresAt).toBeLessThanOrEqual(Date.now() + 120_000);
    expect(b.session.expiresAt).toBeGreaterThan(Date.now() + 100_000);
    expect(Number(/Max-Age=(\d+)/i.exec(b.setCookie)?.[1])).toBeLessThanOrEqual(120);
  });

  const expectError = (res: Answer<unknown>, status: number, code: string, message?: string) => {
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    assertShape(schemas.ErrorResponse, res.body);
    expect((res.body as ErrorAnswer).error.code).toBe(code);
    if (message) expect((res.body as ErrorAnswer).error.message).toBe(message);
    expect(res.headers.get('set-cookie')).toBeNull();
  };
  /** Its own admin: sign-in attempts are limited per address and instance. */
  async function withAdmin(run: (a: TestAdmin, log: ReturnType<typeof logSink>) => Promise<void>) {
    const log = logSink();
    const a = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, logger: log.logger });
    try {
      await run(a, log);
    } finally {
      await a.close();
    }
  }
  const post = (a: TestAdmin, body: unknown, headers: Record<string, string> = { origin: a.url }) =>
    a.call('POST', '/console/session', { auth: null, body, headers });

  it('refuses bad credentials with the API’s errors, and never logs a credential or a session id', async () => {
    await withAdmin(async (a, log) => {
      const wrongKey = 'not-the-key-0123456789abcdef';
      expectError(await post(a, { credential: wrongKey }), 401, 'UNAUTHORIZED', 'Invalid credentials');
      const userToken = await mintToken({ sub: 'alice', roles: ['user'] });
      expectError(await post(a, { credential: userToken }), 403, 'FORBIDDEN', 'The "admin" role is required');
      const expired = await mintToken({ sub: 'root', roles: ['admin'], expiresIn: -60 });
      expectError(await post(a, { credential: expired }), 401, 'UNAUTHORIZED', 'Access token expired');
      expectError(await post(a, {}), 400, 'INVALID_PAYLOAD');
      expectError(await post(a, { credential: '' }), 400, 'INVALID_PAYLOAD');
      expectError(await post(a, { credential: API_KEY, extra: 1 }), 400, 'INVALID_PAYLOAD');

      const b = await signIn(a, API_KEY);
      const id = b.cookie.split('=')[1]!;
      await a.call('GET', '/v1/stats', { auth: null, headers: { cookie: b.cookie } });
      expect(log.lines.filter((l) => l.msg === 'admin authentication failed').map((l) => l.reason)).toEqual(['AUTH_INVALID', 'AUTH_EXPIRED']);
      expect(log.lines.find((l) => l.msg === 'admin authorization failed')).toMatchObject({ reason: 'not admin', sub: 'alice' });
      expect(log.lines.find((l) => l.msg === 'admin signed in to the console')).toMatchObject({ principal: 'api-key#0' });
      for (const secret of [API_KEY, SECOND_KEY, wrongKey, userToken, expired, id, b.csrf]) {
        expect(log.raw.filter((l) => l.includes(secret))).toEqual([]);
      }
    });
  });

  it('refuses sign-ins from another origin or without one: a cross-site form cannot sign a browser in', async () => {
    await withAdmin(async (a) => {
      const body = { credential: API_KEY };
      expectError(await post(a, body, { origin: 'http://evil.example' }), 403, 'FORBIDDEN', 'Cross-site request refused: the Origin is not this console');
      expectError(await post(a, body, {}), 403, 'FORBIDDEN', 'Cross-site request refused: no Origin header');
      expectError(await post(a, body, { origin: 'null' }), 403, 'FORBIDDEN', 'Cross-site request refused: invalid Origin header');
      // another port of the same host is another origin (and the same site, which SameSite does not cover)
      expectError(await post(a, body, { origin: a.url.replace(/:\d+$/, ':1') }), 403, 'FORBIDDEN');
    });
  });

  it('answers 401 for a session that is unknown, malformed or signed out', async () => {
    for (const cookie of ['sb_console=' + 'A'.repeat(43), 'sb_console=short', 'sb_console=']) {
      const session = await admin.call<ErrorAnswer>('GET', '/console/session', { auth: null, headers: { cookie } });
      expect(session.status).toBe(401);
      expect(session.body.error).toMatchObject({ code: 'UNAUTHORIZED', message: 'Not signed in' });
      const stats = await admin.call<ErrorAnswer>('GET', '/v1/stats', { auth: null, headers: { cookie } });
      expect(stats.status).toBe(401);
      expect(stats.body.error.message).toBe('Console session expired or signed out: sign in again');
    }
    // no cookie at all: the API's usual answer
    const none = await admin.call<ErrorAnswer>('GET', '/v1/stats', { auth: null });
    expect(none.body.error.message).toBe('Bearer credentials required');
  });

  it('drops a stored session that is unreadable, of another shape, or past its end, and answers 401', async () => {
    const id = 'C'.repeat(43);
    const key = sessionKey(id);
    const cookie = `sb_console=${id}`;
    const past = { v: 1, principal: { kind: 'token', sub: 'ops' }, csrf: 'x', expiresAt: Date.now() - 1000 };
    for (const stored of ['not json', JSON.stringify({ v: 2, principal: { kind: 'root' } }), JSON.stringify(past)]) {
      await cluster.redis.set(key, stored, 'EX', 60);
      const res = await admin.call<ErrorAnswer>('GET', '/v1/stats', { auth: null, headers: { cookie } });
      expect(res.status, stored).toBe(401);
      expect(await cluster.redis.exists(key)).toBe(0);
    }
    // the same record, still valid, is a session
    await cluster.redis.set(key, JSON.stringify({ ...past, expiresAt: Date.now() + 60_000 }), 'EX', 60);
    expect((await admin.call<SessionView>('GET', '/console/session', { auth: null, headers: { cookie } })).body.principal).toBe('token:ops');
  });

  it('refuses a session for a token that expired within the clock tolerance', async () => {
    // jose accepts it (5 s tolerance), but it has no time left to give a session
    const token = await mintToken({ sub: 'late', roles: ['admin'], expiresIn: -2 });
    const res = await admin.call<ErrorAnswer>('POST', '/console/session', { auth: null, body: { credential: token }, headers: { origin: admin.url } });
    expect(res.status).toBe(401);
    expect(res.body.error).toEqual({ code: 'UNAUTHORIZED', message: 'Access token expired' });
    expect(res.headers.get('set-cookie')).toBeNull();
    // the verifier took it: the refusal is the session's
    expect(logs.lines.filter((l) => l.reason === 'AUTH_EXPIRED')).toEqual([]);
  });

  it('signs out: the session is gone from Redis, the cookie is cleared and no longer works', async () => {
    const b = await signIn(admin, API_KEY);
    const stored = sessionKey(b.cookie.split('=')[1]!);
    expect(await cluster.redis.exists(stored)).toBe(1);
    // signing out needs the CSRF token too
    const forged = await asPage(admin, b, 'DELETE', '/console/session', { headers: { 'x-csrf-token': 'guess' } });
    expect(forged.status).toBe(403);
    expect((await admin.call('GET', '/console/session', { auth: null, headers: { cookie: b.cookie } })).status).toBe(200);

    const out = await asPage(admin, b, 'DELETE', '/console/session');
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^sb_console=;.*(Max-Age=0|Expires=Thu, 01 Jan 1970)/i);
    expect(await cluster.redis.exists(stored)).toBe(0);
    expect((await admin.call('GET', '/console/session', { auth: null, headers: { cookie: b.cookie } })).status).toBe(401);
    expect((await admin.call('GET', '/v1/stats', { auth: null, headers: { cookie: b.cookie } })).status).toBe(401);
    expect(logs.lines.find((l) => l.msg === 'admin signed out of the console')).toMatchObject({ principal: 'api-key#0' });
    // signing out again only clears the cookie
    expect((await asPage(admin, b, 'DELETE', '/console/session')).status).toBe(204);
  });

  it('signing in again ends the browser’s previous session', async () => {
    const first = await signIn(admin, API_KEY);
    const second = await admin.call<SessionView>('POST', '/console/session', {
      auth: null,
      body: { credential: API_KEY },
      headers: { origin: admin.url, cookie: first.cookie },
    });
    expect(second.status).toBe(201);
    expect((await admin.call('GET', '/console/session', { auth: null, headers: { cookie: first.cookie } })).status).toBe(401);
  });
});

describe('operator console: the /v1 API with the session cookie', () => {
  let cluster: Cluster;
  let admin: TestAdmin;
  const logs = logSink();

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
    admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, logger: logs.logger });
  });
  afterAll(async () => {
    await admin?.close();
    await cluster?.stop();
  });

  it('refuses state-changing calls that are cross-site or lack the CSRF token, and accepts the page’s own', async () => {
    const b = await signIn(admin, API_KEY);
    const client = await cluster.connect({ sub: 'csrf-target', gateway: 1 });
    const publish = { body: { data: { text: 'hi' } } };
    const path = '/v1/rooms/public%3Acsrf/messages';
    const refusals: [Record<string, string>, string][] = [
      [{ origin: 'http://evil.example' }, 'Cross-site request refused: the Origin is not this console'],
      [{ origin: '' }, 'Cross-site request refused: no Origin header'],
      [{ origin: 'not a url' }, 'Cross-site request refused: invalid Origin header'],
      [{ 'x-csrf-token': '' }, 'Cross-site request refused: missing or wrong x-csrf-token header'],
      [{ 'x-csrf-token': `${b.csrf.slice(0, -1)}x` }, 'Cross-site request refused: missing or wrong x-csrf-token header'],
    ];
    for (const [headers, message] of refusals) {
      const without = Object.fromEntries(Object.entries({ cookie: b.cookie, origin: admin.url, 'x-csrf-token': b.csrf, ...headers }).filter(([, v]) => v !== ''));
      const res = await admin.call<ErrorAnswer>('POST', path, { auth: null, ...publish, headers: without });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.body.error).toEqual({ code: 'FORBIDDEN', message });
      const disconnect = await admin.call('POST', '/v1/users/csrf-target/disconnect', { auth: null, headers: without });
      expect(disconnect.status).toBe(403);
    }
    expect(client.connected).toBe(true);
    expect(logs.lines.filter((l) => l.msg === 'admin request refused' && l.reason === 'csrf').length).toBe(refusals.length * 2);

    const ok = await asPage(admin, b, 'POST', path, publish);
    expect(ok.status).toBe(202);
    assertShape(schemas.PublishResponse, ok.body);
    // reads need no token
    expect((await admin.call('GET', '/v1/users/csrf-target', { auth: null, headers: { cookie: b.cookie } })).status).toBe(200);

    // audit logs name the principal of the session, as for Bearer calls
    const gone = waitFor(client, 'disconnect');
    const res = await asPage(admin, b, 'POST', '/v1/users/csrf-target/disconnect');
    expect(res.status).toBe(202);
    expect(await gone).toBe('io server disconnect');
    expect(logs.lines.find((l) => l.msg === 'admin disconnected a user')).toMatchObject({ principal: 'api-key#0', userId: 'csrf-target' });
    expect(logs.lines.find((l) => l.msg === 'admin published a message')).toMatchObject({ principal: 'api-key#0', room: 'public:csrf' });
  });

  it('a Bearer credential wins over the cookie, and needs no CSRF token', async () => {
    const b = await signIn(admin, API_KEY);
    const bearer = await admin.call('POST', '/v1/rooms/public%3Abearer/messages', {
      auth: SECOND_KEY,
      body: { data: 1 },
      headers: { cookie: b.cookie, origin: 'http://evil.example' },
    });
    expect(bearer.status).toBe(202);
    const wrong = await admin.call('GET', '/v1/stats', { auth: 'wrong-0123456789abcdef', headers: { cookie: b.cookie } });
    expect(wrong.status).toBe(401);
  });

  it('ends the sessions of an API key removed from ADMIN_API_KEYS', async () => {
    const b = await signIn(admin, SECOND_KEY);
    const reordered = await startAdmin({
      redis: cluster.redisEnv,
      keyPrefix: cluster.keyPrefix,
      env: { ADMIN_API_KEYS: `${SECOND_KEY},${API_KEY}` },
    });
    const rotated = await startAdmin({
      redis: cluster.redisEnv,
      keyPrefix: cluster.keyPrefix,
      env: { ADMIN_API_KEYS: `${API_KEY},admin-new-key-0123456789abcdef` },
    });
    try {
      // the same key at another position is another key#n: the session does not follow it
      expect((await reordered.call('GET', '/console/session', { auth: null, headers: { cookie: b.cookie } })).status).toBe(401);
      expect((await rotated.call('GET', '/v1/stats', { auth: null, headers: { cookie: b.cookie } })).status).toBe(401);
      // and a session refused once is deleted everywhere
      expect((await admin.call('GET', '/console/session', { auth: null, headers: { cookie: b.cookie } })).status).toBe(401);
    } finally {
      await reordered.close();
      await rotated.close();
    }
  });

  it('rate-limits sign-in attempts per client address', async () => {
    const limited = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 11; i++) {
        const res = await limited.call<ErrorAnswer>('POST', '/console/session', {
          auth: null,
          body: { credential: `guess-${i}-0123456789abcdef` },
          headers: { origin: limited.url },
        });
        statuses.push(res.status);
        if (res.status === 429) {
          expect(res.body.error.code).toBe('RATE_LIMITED');
          expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        }
      }
      expect(statuses).toEqual([...Array(10).fill(401), 429]);
      // even the right key, until the window passes
      const right = await limited.call('POST', '/console/session', { auth: null, body: { credential: API_KEY }, headers: { origin: limited.url } });
      expect(right.status).toBe(429);
      // the API's own budget is apart
      expect((await limited.call('GET', '/v1/stats')).status).toBe(200);
    } finally {
      await limited.close();
    }
  });

  it('counts cookie calls against the budget of the API key the session was made with', async () => {
    const limited = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, env: { ADMIN_RATE_LIMIT_PER_MIN: '3' } });
    try {
      const b = await signIn(limited, SECOND_KEY);
      expect((await limited.call('GET', '/v1/stats', { auth: SECOND_KEY })).status).toBe(200);
      expect((await limited.call('GET', '/v1/stats', { auth: null, headers: { cookie: b.cookie } })).status).toBe(200);
      expect((await limited.call('GET', '/console/session', { auth: null, headers: { cookie: b.cookie } })).status).toBe(200);
      const over = await limited.call<ErrorAnswer>('GET', '/v1/stats', { auth: null, headers: { cookie: b.cookie } });
      expect(over.status).toBe(429);
      expect(over.body.error.code).toBe('RATE_LIMITED');
      expect((await limited.call('GET', '/v1/stats', { auth: SECOND_KEY })).status).toBe(429);
      // the other key's budget is untouched
      expect((await limited.call('GET', '/v1/stats', { auth: API_KEY })).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});

describe('operator console: Bull Board under the console', () => {
  let cluster: Cluster;
  let admin: TestAdmin;
  let queue: Queue;
  let connection: RedisClient | undefined;
  const logs = logSink();

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 1 });
    admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, logger: logs.logger });
    connection = createRedisClient(cluster.redisConfig, 'test-queue', quiet);
    queue = new Queue(NOTIFICATIONS_QUEUE, { connection, prefix: queuePrefix(cluster.keyPrefix, isCluster(connection)) });
    queue.on('error', () => {});
  });
  afterAll(async () => {
    await queue?.close();
    if (connection) await closeRedis(connection);
    await admin?.close();
    await cluster?.stop();
  });

  it('sends anyone without a session to the sign-in, and answers 401 to its API', async () => {
    for (const path of ['/console/queues', '/console/queues/', '/console/queues/queue/notifications']) {
      const res = await fetch(`${admin.url}${path}`, { redirect: 'manual' });
      expect(res.status, path).toBe(303);
      expect(res.headers.get('location')).toBe('/console');
    }
    const api = await admin.call<ErrorAnswer>('GET', '/console/queues/api/queues', { auth: null });
    expect(api.status).toBe(401);
    assertShape(schemas.ErrorResponse, api.body);
    // an API key is not a session: the queue UI is the console's
    expect((await admin.call('GET', '/console/queues/api/queues')).status).toBe(401);
  });

  it('shows the notifications queue with job data summarised, and retries a failed job from this origin only', async () => {
    const b = await signIn(admin, API_KEY);
    const page = await fetch(`${admin.url}/console/queues/`, { headers: { cookie: b.cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<base href="/console/queues/"');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/style-src[^;]*https:/);

    const job = await queue.add('bad', { to: { nobody: true }, type: 'orders.shipped', data: { secret: 'keep-me-private' } }, { attempts: 1 });
    // no dispatcher here: fail the job by hand, as a worker would
    const workerConnection = createRedisClient(cluster.redisConfig, 'test-worker', quiet, { maxRetriesPerRequest: null });
    const worker = new Worker(
      NOTIFICATIONS_QUEUE,
      async () => {
        throw new Error('delivery failed: test');
      },
      { connection: workerConnection, prefix: queuePrefix(cluster.keyPrefix, isCluster(workerConnection)) },
    );
    worker.on('error', () => {});
    try {
      await expect.poll(async () => (await job.getState()), { timeout: 10_000 }).toBe('failed');
    } finally {
      await worker.close();
      await closeRedis(workerConnection);
    }

    const list = await fetch(`${admin.url}/console/queues/api/queues?activeQueue=notifications&status=failed&page=1&jobsPerPage=10`, {
      headers: { cookie: b.cookie },
    });
    expect(list.status).toBe(200);
    const body = await list.text();
    expect(body).toContain(job.id!);
    expect(body).toContain('delivery failed: test');
    expect(body).toContain('orders.shipped');
    expect(body).not.toContain('keep-me-private');

    const retryPath = `/console/queues/api/queues/notifications/${job.id}/retry`;
    const crossSite = await fetch(`${admin.url}${retryPath}`, { method: 'PUT', headers: { cookie: b.cookie, origin: 'http://evil.example' } });
    expect(crossSite.status).toBe(403);
    expect(await job.getState()).toBe('failed');
    const noOrigin = await fetch(`${admin.url}${retryPath}`, { method: 'PUT', headers: { cookie: b.cookie } });
    expect(noOrigin.status).toBe(403);

    const retried = await fetch(`${admin.url}${retryPath}`, { method: 'PUT', headers: { cookie: b.cookie, origin: admin.url } });
    expect(retried.status).toBe(204);
    expect(await job.getState()).toBe('waiting');
    expect(logs.lines.find((l) => l.msg === 'admin changed the queue from the queue UI')).toMatchObject({
      principal: 'api-key#0',
      action: 'PUT /api/queues/:queueName/:jobId/retry',
    });
  });

  it('refuses the actions the console does not offer', async () => {
    const b = await signIn(admin, API_KEY);
    const job = await queue.add('keep', { to: { userId: 'someone' }, type: 'kept' }, { delay: 60_000 });
    const headers = { cookie: b.cookie, origin: admin.url, 'content-type': 'application/json' };
    const calls: [string, string, unknown][] = [
      ['POST', '/console/queues/api/queues/notifications/add', { name: 'x', data: { to: { broadcast: true }, type: 'x' } }],
      ['PATCH', `/console/queues/api/queues/notifications/${job.id}/update-data`, { jobData: { to: { broadcast: true }, type: 'x' } }],
      ['PUT', '/console/queues/api/queues/notifications/obliterate', {}],
    ];
    for (const [method, path, body] of calls) {
      const res = await fetch(`${admin.url}${path}`, { method, headers, body: JSON.stringify(body) });
      expect(res.status, path).toBe(403);
      expect(await res.json()).toEqual({ error: { code: 'FORBIDDEN', message: 'This action is not offered by the console' } });
    }
    expect((await job.getState())).toBe('delayed');
    expect((await queue.getJob(job.id!))?.data).toEqual({ to: { userId: 'someone' }, type: 'kept' });
    expect(await queue.count()).toBeGreaterThan(0);
  });

  it('keeps the queue UI out of the OpenAPI document', async () => {
    const doc = await admin.call<{ paths: Record<string, unknown> }>('GET', '/openapi.json', { auth: null });
    expect(Object.keys(doc.body.paths).filter((p) => p.startsWith('/console/'))).toEqual(['/console/session']);
  });
});

describe('operator console without Redis', () => {
  it('answers 503 to sign-ins and cookie calls, and the page still loads', async () => {
    const port = await freePort();
    const admin = await startAdmin({ redis: `redis://127.0.0.1:${port}`, keyPrefix: randomKeyPrefix() });
    try {
      const page = await admin.call('GET', '/console', { auth: null });
      expect(page.status).toBe(200);
      const signIn = await admin.call<ErrorAnswer>('POST', '/console/session', {
        auth: null,
        body: { credential: API_KEY },
        headers: { origin: admin.url },
      });
      expect(signIn.status).toBe(503);
      expect(signIn.body.error).toEqual({ code: 'UNAVAILABLE', message: 'Redis is unavailable, retry later' });
      expect(signIn.headers.get('set-cookie')).toBeNull();
      const cookie = `sb_console=${'B'.repeat(43)}`;
      const stats = await admin.call<ErrorAnswer>('GET', '/v1/stats', { auth: null, headers: { cookie } });
      expect(stats.status).toBe(503);
      const session = await admin.call<ErrorAnswer>('GET', '/console/session', { auth: null, headers: { cookie } });
      expect(session.status).toBe(503);
      // Bull Board's routes answer in the API's format too
      const board = await admin.call<ErrorAnswer>('GET', '/console/queues/api/queues', { auth: null, headers: { cookie } });
      expect(board.status).toBe(503);
      expect(board.body.error).toEqual({ code: 'UNAVAILABLE', message: 'Redis is unavailable, retry later' });
    } finally {
      await admin.close();
    }
  });
});
