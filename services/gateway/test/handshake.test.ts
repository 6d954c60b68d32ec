import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { io as ioClient } from 'socket.io-client';
import { collect, eventually, mintToken, TEST_JWT_SECRET, waitFor } from '@switchboard/testkit';
import { InboxStore, keys, ReadModel } from '@switchboard/store';
import { startCluster, type Cluster } from '@switchboard/harness';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('handshake with an HS256 secret', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'),
      gateways: 1,
      env: { ALLOW_QUERY_TOKEN: 'true', TOKEN_COOKIE: 'sb_at', CORS_ORIGINS: 'https://app.example' },
    });
  });
  afterAll(() => cluster.stop());

  it('accepts the token from auth, Authorization header, cookie and (opted-in) query', async () => {
    const token = await cluster.token({ sub: 'src-user' });
    const viaAuth = await cluster.connect({ sub: 'src-user', token });
    expect(viaAuth.session.userId).toBe('src-user');
    const viaHeader = await cluster.connect({ sub: 'x', token: null, options: { extraHeaders: { authorization: `Bearer ${token}` } } });
    expect(viaHeader.session.userId).toBe('src-user');
    const viaCookie = await cluster.connect({ sub: 'x', token: null, options: { extraHeaders: { cookie: `other=1; sb_at=${token}` } } });
    expect(viaCookie.session.userId).toBe('src-user');
    const viaQuery = await cluster.connect({ sub: 'x', token: null, options: { query: { token } } });
    expect(viaQuery.session.userId).toBe('src-user');
    // polling too, not only websocket
    const polling = await cluster.connect({ sub: 'src-user', options: { transports: ['polling'] } });
    expect(polling.session.userId).toBe('src-user');
  });

  it('says in session:ready how many notifications the user has unread, on every device', async () => {
    const inbox = new InboxStore(cluster.redis, keys(cluster.keyPrefix));
    const note = (id: string) => ({ id, type: 'test', ts: Date.now() });
    await inbox.add(['unread-user'], note('n-1'));
    await inbox.add(['unread-user'], note('n-2'));
    const first = await cluster.connect({ sub: 'unread-user' });
    expect(first.session.unread).toBe(2);
    await inbox.markRead('unread-user', ['n-1']);
    const second = await cluster.connect({ sub: 'unread-user' });
    expect(second.session.unread).toBe(1);
    const other = await cluster.connect({ sub: 'unread-none' });
    expect(other.session.unread).toBe(0);
  });

  it('prefers auth.token over the header: a bad auth token is refused even with a good header', async () => {
    const good = await cluster.token({ sub: 'pref' });
    const r = await cluster.refused({ sub: 'pref', token: 'not-a-jwt', options: { extraHeaders: { authorization: `Bearer ${good}` } } });
    expect(r.message).toBe('AUTH_INVALID');
  });

  it('gives each bad token its own connect_error code', async () => {
    const secret = new TextEncoder().encode(TEST_JWT_SECRET);
    const now = Math.floor(Date.now() / 1000);
    const wrongKey = new TextEncoder().encode('another-secret-that-is-long-enough-000');
    const cases: [string, string | null, string][] = [
      ['missing', null, 'AUTH_REQUIRED'],
      ['malformed', 'abc.def', 'AUTH_INVALID'],
      ['garbage', 'x'.repeat(50), 'AUTH_INVALID'],
      ['bad signature', await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('u').setExpirationTime(now + 60).sign(wrongKey), 'AUTH_INVALID'],
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'u', exp: now + 60 })}.`, 'AUTH_INVALID'],
      ['expired', await mintToken({ sub: 'u', expiresIn: -60 }), 'AUTH_EXPIRED'],
      ['not yet valid', await mintToken({ sub: 'u', notBefore: 600 }), 'AUTH_INVALID'],
      ['no exp', await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('u').sign(secret), 'AUTH_INVALID'],
      ['bad sub', await mintToken({ sub: 'a b' }), 'AUTH_INVALID'],
    ];
    for (const [what, token, code] of cases) {
      const r = await cluster.refused({ sub: 'u', token });
      expect({ what, message: r.message, data: r.data }).toEqual({ what, message: code, data: { code, message: expect.any(String) } });
      if (token) expect(r.data?.message).not.toContain(token);
    }
  });

  it('refuses a forbidden browser origin over websocket and over polling, and admits allowed ones', async () => {
    const token = await cluster.token({ sub: 'origin-user' });
    for (const transports of [['websocket'], ['polling']]) {
      const r = await cluster.refused({ sub: 'o', token, options: { transports, extraHeaders: { origin: 'https://evil.example' } } });
      expect(r).toEqual({ message: 'ORIGIN_FORBIDDEN', data: { code: 'ORIGIN_FORBIDDEN', message: expect.any(String) } });
      const ok = await cluster.connect({ sub: 'o', token, options: { transports, extraHeaders: { origin: 'https://app.example' } } });
      expect(ok.session.userId).toBe('origin-user');
    }
  });

  it('refuses a guest when guests are off', async () => {
    expect((await cluster.refused({ sub: 'g', token: null })).message).toBe('AUTH_REQUIRED');
  });

  it('limits connections per user', async () => {
    const small = await startCluster({ redis: inject('redis'), gateways: 2, env: { MAX_CONNECTIONS_PER_USER: '2' } });
    try {
      await small.connect({ sub: 'many', gateway: 0 });
      await small.connect({ sub: 'many', gateway: 1 });
      const r = await small.refused({ sub: 'many', gateway: 0 });
      expect(r.message).toBe('CONNECTION_LIMIT');
      expect((await small.connect({ sub: 'other-user', gateway: 0 })).session.userId).toBe('other-user');
    } finally {
      await small.stop();
    }
  });

  it('decides the connections-per-user limit in the handshake, also for concurrent handshakes on several pods', async () => {
    const small = await startCluster({ redis: inject('redis'), gateways: 2, env: { MAX_CONNECTIONS_PER_USER: '3' } });
    try {
      const token = await small.token({ sub: 'racer' });
      const outcomes = await Promise.all(
        Array.from({ length: 10 }, (_, i) => {
          const s = small.socket({ sub: 'racer', token, gateway: i % 2 });
          return new Promise<{ ready: boolean; error?: string; kicked: boolean }>((resolve) => {
            let ready = false;
            s.on('session:error', () => resolve({ ready, kicked: true }));
            s.once('connect_error', (e) => resolve({ ready, error: e.message, kicked: false }));
            s.once('session:ready', () => {
              ready = true;
              // a socket over the limit would be kicked after its session started: give it the chance
              void s.emitWithAck('session:ping', {}).then(() => resolve({ ready, kicked: false }));
            });
          });
        }),
      );
      expect(outcomes.filter((o) => o.ready && !o.kicked)).toHaveLength(3);
      expect(outcomes.filter((o) => o.error === 'CONNECTION_LIMIT')).toHaveLength(7);
      expect(outcomes.filter((o) => o.kicked)).toEqual([]);
      expect(await new ReadModel(small.redis, small.keyPrefix).userSocketCount('racer')).toBe(3);
    } finally {
      await small.stop();
    }
  });

  it('limits handshakes per client address', async () => {
    const strict = await startCluster({ redis: inject('redis'), gateways: 1, env: { HANDSHAKE_RATE_PER_SEC: '2' } });
    try {
      const codes: string[] = [];
      for (let i = 0; i < 8; i++) {
        const s = strict.socket({ sub: 'r', token: await strict.token({ sub: `r${i}` }) });
        codes.push(
          await new Promise<string>((resolve) => {
            s.once('session:ready', () => resolve('ok'));
            s.once('connect_error', (e) => resolve(e.message));
          }),
        );
      }
      expect(codes).toContain('RATE_LIMITED');
      expect(codes[0]).toBe('ok');
    } finally {
      await strict.stop();
    }
  });
});

describe('token lifetime on a live socket', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 1, env: { TOKEN_EXPIRY_WARNING_SEC: '2' } });
  });
  afterAll(() => cluster.stop());

  it('warns before exp, then reports AUTH_EXPIRED and disconnects', async () => {
    const c = await cluster.connect({ sub: 'short', expiresIn: 3 });
    const expiring = await waitFor(c, 'session:expiring', 5000);
    expect(expiring.exp).toBeGreaterThan(Date.now() / 1000 - 1);
    const error = waitFor(c, 'session:error', 5000);
    const disconnected = waitFor(c, 'disconnect', 5000);
    expect((await error).code).toBe('AUTH_EXPIRED');
    expect(await disconnected).toBe('io server disconnect');
    expect(c.connected).toBe(false);
  });

  it('keeps the socket when auth:refresh brings a new token for the same user, and refuses another user', async () => {
    const c = await cluster.connect({ sub: 'refresher', expiresIn: 3 });
    const errors = collect(c, 'session:error');
    await waitFor(c, 'session:expiring', 5000);
    const other = await c.emitWithAck('auth:refresh', { token: await cluster.token({ sub: 'someone-else' }) });
    expect(other.ok === false && other.error.code).toBe('FORBIDDEN');
    const bad = await c.emitWithAck('auth:refresh', { token: 'nope' });
    expect(bad.ok === false && bad.error.code).toBe('FORBIDDEN');
    const fresh = await cluster.token({ sub: 'refresher', expiresIn: 3600 });
    const ack = await c.emitWithAck('auth:refresh', { token: fresh });
    if (!ack.ok) throw new Error(ack.error.message);
    expect(ack.data.exp).toBeGreaterThan(Date.now() / 1000 + 3000);
    // well past the old exp, the socket still answers
    const oldExpMs = (c.session.serverTime + 3000);
    await eventually(async () => Date.now() > oldExpMs + 1500 && (await c.emitWithAck('session:ping', {})).ok, { timeoutMs: 8000, intervalMs: 200 });
    expect(c.connected).toBe(true);
    expect(errors).toEqual([]);
  });
});

describe('guests (ALLOW_GUESTS=true)', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2, env: { ALLOW_GUESTS: 'true' } });
  });
  afterAll(() => cluster.stop());

  it('lets a token-less client join a public room and receive, but not publish, type, watch or read an inbox', async () => {
    const guest = await cluster.connect({ sub: 'ignored', token: null, gateway: 1 });
    expect(guest.session.userId).toMatch(/^guest:[A-Za-z0-9_-]+$/);
    const member = await cluster.connect({ sub: 'host', gateway: 0 });
    await member.emitWithAck('room:join', { room: 'public:lobby' });
    expect((await guest.emitWithAck('room:join', { room: 'public:lobby' })).ok).toBe(true);
    expect((await guest.emitWithAck('room:join', { room: 'private:vip' })).ok).toBe(false);
    const got = waitFor(guest, 'room:message');
    await member.emitWithAck('room:publish', { room: 'public:lobby', data: 'welcome' });
    expect((await got).data).toBe('welcome');
    const history = await guest.emitWithAck('room:history', { room: 'public:lobby' });
    expect(history.ok && history.data.messages.map((m) => m.data)).toEqual(['welcome']);
    for (const [event, payload] of [
      ['room:publish', { room: 'public:lobby', data: 'x' }],
      ['room:typing', { room: 'public:lobby', typing: true }],
      ['presence:watch', { userIds: ['host'] }],
      ['presence:set', { status: 'away' }],
      ['notification:list', {}],
    ] as const) {
      const ack = await (guest.emitWithAck as (e: string, p: unknown) => Promise<{ ok: boolean; error?: { code: string } }>)(event, payload);
      expect({ event, code: ack.error?.code }).toEqual({ event, code: 'FORBIDDEN' });
    }
  });

  it('leaves nothing of a guest in Redis after its last disconnect', async () => {
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    const guests = await Promise.all([0, 1, 0].map((gateway) => cluster.connect({ sub: 'ignored', token: null, gateway })));
    const ids = guests.map((g) => g.session.userId);
    for (const g of guests) expect((await g.emitWithAck('room:join', { room: 'public:guests' })).ok).toBe(true);
    expect(await model.user(ids[0]!)).toMatchObject({ online: true });
    for (const g of guests) g.close();
    await eventually(async () => (await model.roomMemberCount('public:guests')) === 0 && (await model.onlineUsers(undefined, 1000)).items.every((u) => !ids.includes(u)));
    const left: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await cluster.redis.scan(cursor, 'MATCH', `${cluster.keyPrefix}:*`, 'COUNT', 1000);
      left.push(...found.filter((k) => ids.some((id) => k.includes(id))));
      cursor = next;
    } while (cursor !== '0');
    expect(left).toEqual([]);
    expect(await model.user(ids[0]!)).toBeUndefined();
  });

  it('still refuses a bad token instead of downgrading it to a guest', async () => {
    expect((await cluster.refused({ sub: 'x', token: 'bad.token.here' })).message).toBe('AUTH_INVALID');
    expect((await cluster.refused({ sub: 'x', expiresIn: -10 })).message).toBe('AUTH_EXPIRED');
  });
});

describe('handshake with a public key: algorithm confusion', () => {
  let cluster: Cluster;
  let privateKey: CryptoKey;
  let pem: string;
  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    privateKey = pair.privateKey;
    pem = await exportSPKI(pair.publicKey);
    cluster = await startCluster({ redis: inject('redis'), gateways: 1, env: { JWT_SECRET: '', JWT_PUBLIC_KEY: pem } });
  });
  afterAll(() => cluster.stop());

  it('accepts RS256 and refuses an HS256 token signed with the public key as secret', async () => {
    const now = Math.floor(Date.now() / 1000);
    const good = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('rsa-user').setExpirationTime(now + 60).sign(privateKey);
    expect((await cluster.connect({ sub: 'rsa-user', token: good })).session.userId).toBe('rsa-user');
    const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('rsa-user').setExpirationTime(now + 60).sign(new TextEncoder().encode(pem));
    expect((await cluster.refused({ sub: 'x', token: confused })).message).toBe('AUTH_INVALID');
  });
});

describe('handshake with a JWKS URL bound to an issuer', () => {
  let cluster: Cluster;
  let jwks: Server;
  let ours: CryptoKey;
  let theirs: CryptoKey;
  beforeAll(async () => {
    const a = await generateKeyPair('ES256', { extractable: true });
    const b = await generateKeyPair('ES256', { extractable: true });
    ours = a.privateKey;
    theirs = b.privateKey;
    const keys = { keys: [{ ...(await exportJWK(a.publicKey)), kid: 'ours', alg: 'ES256', use: 'sig' }] };
    jwks = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(keys));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    cluster = await startCluster({ redis: inject('redis'),
      gateways: 1,
      env: { JWT_SECRET: '', JWT_JWKS_URL: url, JWT_ISSUER: 'https://id.ours.example', JWT_AUDIENCE: 'switchboard' },
    });
  });
  afterAll(async () => {
    await cluster.stop();
    await new Promise((r) => jwks.close(r));
  });

  const sign = (key: CryptoKey, kid: string, iss: string, aud = 'switchboard') =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid })
      .setSubject('jwks-user')
      .setIssuer(iss)
      .setAudience(aud)
      .setExpirationTime(Math.floor(Date.now() / 1000) + 60)
      .sign(key);

  it('accepts our issuer and refuses another issuer, a foreign key, wrong iss and wrong aud', async () => {
    expect((await cluster.connect({ sub: 'jwks-user', token: await sign(ours, 'ours', 'https://id.ours.example') })).session.userId).toBe('jwks-user');
    const refusals = [
      await sign(theirs, 'theirs', 'https://id.theirs.example'),
      await sign(theirs, 'ours', 'https://id.ours.example'),
      await sign(ours, 'ours', 'https://id.theirs.example'),
      await sign(ours, 'ours', 'https://id.ours.example', 'another-app'),
    ];
    for (const token of refusals) expect((await cluster.refused({ sub: 'x', token })).message).toBe('AUTH_INVALID');
  });
});

describe('a client socket without reconnection', () => {
  it('gets the typed error data from a real socket.io-client', async () => {
    const cluster = await startCluster({ redis: inject('redis'), gateways: 1 });
    try {
      const s = ioClient(cluster.gateways[0]!.url, { transports: ['websocket'], reconnection: false, auth: { token: 'x' } });
      const err = await new Promise<Error & { data?: unknown }>((resolve) => s.once('connect_error', resolve));
      s.close();
      expect(err.message).toBe('AUTH_INVALID');
      expect(err.data).toEqual({ code: 'AUTH_INVALID', message: 'Access token invalid' });
    } finally {
      await cluster.stop();
    }
  });
});
