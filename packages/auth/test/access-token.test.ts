import { execFileSync } from 'node:child_process';
import { createHmac, KeyObject, sign as cryptoSign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, importPKCS8, type CryptoKey } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier } from '../src/index.js';
import { SECRET, SECRET_KEY, claims, nowSec, sign, unsigned } from './helpers.js';

const hs = createVerifier({ secret: SECRET });

describe('valid access tokens', () => {
  it('accepts HS256 and maps the claims', async () => {
    const exp = nowSec() + 60;
    const token = await sign(
      SECRET_KEY,
      'HS256',
      claims({
        sub: 'alice@example.com',
        name: 'Alice',
        roles: ['admin'],
        rooms: ['public:lobby', 'private:team-*'],
        exp,
        iat: 1,
      }),
    );
    await expect(hs.verifyAccess(token)).resolves.toEqual({
      sub: 'alice@example.com',
      name: 'Alice',
      roles: ['admin'],
      rooms: ['public:lobby', 'private:team-*'],
      exp,
      iat: 1,
    });
  });

  it('defaults roles and rooms to empty lists and omits absent name / iat', async () => {
    const token = await sign(SECRET_KEY, 'HS256', claims({ iat: undefined }));
    const result = await hs.verifyAccess(token);
    expect(result).toEqual({ sub: 'user-1', roles: [], rooms: [], exp: expect.any(Number) });
    expect(result).not.toHaveProperty('name');
    expect(result).not.toHaveProperty('iat');
  });

  it.each([
    ['RS256', 'RS256'],
    ['ES256', 'ES256'],
    ['ES384', 'ES384'],
    ['EdDSA', 'Ed25519'],
  ])('accepts %s with a PEM public key (default algorithms)', async (alg, keyAlg) => {
    const { publicKey, privateKey } = await generateKeyPair(keyAlg);
    const verifier = createVerifier({ publicKey: await exportSPKI(publicKey) });
    const token = await sign(privateKey, alg);
    await expect(verifier.verifyAccess(token)).resolves.toMatchObject({ sub: 'user-1' });
  });

  it('accepts PS256 with an RSA key when allowed', async () => {
    const { publicKey, privateKey } = await generateKeyPair('PS256');
    const verifier = createVerifier({ publicKey: await exportSPKI(publicKey), algorithms: ['PS256'] });
    await expect(verifier.verifyAccess(await sign(privateKey, 'PS256'))).resolves.toMatchObject({ sub: 'user-1' });
  });

  it('accepts a name of exactly 128 characters', async () => {
    const name = 'é'.repeat(128);
    await expect(hs.verifyAccess(await sign(SECRET_KEY, 'HS256', claims({ name })))).resolves.toMatchObject({ name });
  });
});

describe('X.509 certificate (openssl makes the certificate)', () => {
  let dir: string;
  let certificate: string;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'auth-cert-'));
    const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'];
    const out = ['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=test'];
    execFileSync('openssl', [...args, ...out], { stdio: 'ignore' });
    certificate = readFileSync(join(dir, 'cert.pem'), 'utf8');
    privateKey = await importPKCS8(readFileSync(join(dir, 'key.pem'), 'utf8'), 'ES256');
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a token verified with the certificate public key', async () => {
    const verifier = createVerifier({ publicKey: certificate });
    await expect(verifier.verifyAccess(await sign(privateKey, 'ES256'))).resolves.toMatchObject({ sub: 'user-1' });
  });
});

describe('rejected access tokens', () => {
  it.each([undefined, null, ''])('requires a token (%j)', async (token) => {
    const error = await hs.verifyAccess(token).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect(error).toMatchObject({ name: 'AuthError', code: 'AUTH_REQUIRED', message: 'Access token required' });
  });

  it.each(['abc', 'a.b.c', Buffer.from('just some random bytes here').toString('base64'), 'eyJhbGciOiJIUzI1NiJ9..'])(
    'refuses malformed token %j',
    async (token) => {
      await expect(hs.verifyAccess(token)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    },
  );

  it('refuses a non-string token and an oversized one', async () => {
    await expect(hs.verifyAccess(42 as unknown as string)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    const huge = await sign(SECRET_KEY, 'HS256', claims({ pad: 'x'.repeat(20_000) }));
    await expect(hs.verifyAccess(huge)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('refuses a bad signature without echoing the token', async () => {
    const token = await sign(new TextEncoder().encode('y'.repeat(32)), 'HS256');
    const error = await hs.verifyAccess(token).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'AUTH_INVALID', message: 'Access token invalid' });
    expect(String((error as Error).message)).not.toContain(token);
  });

  it('refuses a tampered payload', async () => {
    const [header, , signature] = (await sign(SECRET_KEY, 'HS256')).split('.');
    const payload = Buffer.from(JSON.stringify(claims({ sub: 'admin' }))).toString('base64url');
    const forged = `${header}.${payload}.${signature}`;
    await expect(hs.verifyAccess(forged)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('refuses alg none', async () => {
    await expect(hs.verifyAccess(unsigned())).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('refuses an algorithm outside the allow-list', async () => {
    const token = await sign(new TextEncoder().encode(SECRET.repeat(2)), 'HS512');
    await expect(createVerifier({ secret: SECRET.repeat(2) }).verifyAccess(token)).rejects.toMatchObject({
      code: 'AUTH_INVALID',
    });
  });

  it('refuses HS256 signed with the RSA public key PEM (algorithm confusion)', async () => {
    const { publicKey } = await generateKeyPair('RS256');
    const pem = await exportSPKI(publicKey);
    const verifier = createVerifier({ publicKey: pem });
    const token = await sign(new TextEncoder().encode(pem), 'HS256');
    await expect(verifier.verifyAccess(token)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('refuses a token signed by another key of the same type', async () => {
    const [mine, theirs] = await Promise.all([generateKeyPair('ES256'), generateKeyPair('ES256')]);
    const verifier = createVerifier({ publicKey: await exportSPKI(mine.publicKey) });
    await expect(verifier.verifyAccess(await sign(theirs.privateKey, 'ES256'))).rejects.toMatchObject({
      code: 'AUTH_INVALID',
    });
  });

  it('reports an expired token as AUTH_EXPIRED', async () => {
    const token = await sign(SECRET_KEY, 'HS256', claims({ exp: nowSec() - 60 }));
    await expect(hs.verifyAccess(token)).rejects.toMatchObject({
      code: 'AUTH_EXPIRED',
      message: 'Access token expired',
    });
  });

  it('refuses a token not yet valid beyond the clock tolerance', async () => {
    const token = await sign(SECRET_KEY, 'HS256', claims({ nbf: nowSec() + 60 }));
    await expect(hs.verifyAccess(token)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('accepts nbf and exp within the clock tolerance', async () => {
    const verifier = createVerifier({ secret: SECRET, clockToleranceSec: 30 });
    const early = await sign(SECRET_KEY, 'HS256', claims({ nbf: nowSec() + 10 }));
    const late = await sign(SECRET_KEY, 'HS256', claims({ exp: nowSec() - 10 }));
    await expect(verifier.verifyAccess(early)).resolves.toMatchObject({ sub: 'user-1' });
    await expect(verifier.verifyAccess(late)).resolves.toMatchObject({ sub: 'user-1' });
    const tooLate = await sign(SECRET_KEY, 'HS256', claims({ exp: nowSec() - 40 }));
    await expect(verifier.verifyAccess(tooLate)).rejects.toMatchObject({ code: 'AUTH_EXPIRED' });
  });

  describe('issuer and audience', () => {
    const verifier = createVerifier({ secret: SECRET, issuer: 'https://app.example', audience: 'switchboard' });
    const token = (overrides: object): Promise<string> =>
      sign(SECRET_KEY, 'HS256', claims({ iss: 'https://app.example', aud: 'switchboard', ...overrides }));

    it('accepts matching iss and aud (also aud as an array)', async () => {
      await expect(verifier.verifyAccess(await token({}))).resolves.toMatchObject({ sub: 'user-1' });
      await expect(verifier.verifyAccess(await token({ aud: ['other', 'switchboard'] }))).resolves.toBeDefined();
    });

    it.each([
      ['wrong issuer', { iss: 'https://evil.example' }],
      ['missing issuer', { iss: undefined }],
      ['wrong audience', { aud: 'other' }],
      ['missing audience', { aud: undefined }],
    ])('refuses %s', async (_, overrides) => {
      await expect(verifier.verifyAccess(await token(overrides))).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    });
  });

  it.each([
    ['missing exp', { exp: undefined }],
    ['non-numeric exp', { exp: 'soon' }],
    ['missing sub', { sub: undefined }],
    ['empty sub', { sub: '' }],
    ['129-char sub', { sub: 'u'.repeat(129) }],
    ['sub with a space', { sub: 'user 1' }],
    ['sub with a slash', { sub: 'user/1' }],
    ['numeric sub', { sub: 42 }],
    ['non-array roles', { roles: 'admin' }],
    ['roles with a number', { roles: ['admin', 1] }],
    ['non-array rooms', { rooms: 'public:lobby' }],
    ['malformed room', { rooms: ['no-colon'] }],
    ['non-string name', { name: 7 }],
    ['129-char name', { name: 'n'.repeat(129) }],
    ['a room claim (room token used as access token)', { room: 'public:lobby' }],
  ])('refuses %s', async (_, overrides) => {
    const token = await sign(SECRET_KEY, 'HS256', claims(overrides));
    await expect(hs.verifyAccess(token)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('accepts a 128-char sub with every allowed character class', async () => {
    const sub = `Az09._:@-${'u'.repeat(119)}`;
    await expect(hs.verifyAccess(await sign(SECRET_KEY, 'HS256', claims({ sub })))).resolves.toMatchObject({ sub });
  });
});


// HS* tokens are verified with fast-jwt, public keys with jose: both must give the same answers.
describe('the same answers for a shared secret and a public key', () => {
  let es: { verifier: ReturnType<typeof createVerifier>; key: CryptoKey };
  const issuer = 'https://app.example';
  const audience = 'switchboard';
  const hsStrict = createVerifier({ secret: SECRET, issuer, audience });
  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    es = { verifier: createVerifier({ publicKey: await exportSPKI(pair.publicKey), issuer, audience }), key: pair.privateKey };
  });
  const both = () => [
    { name: 'HS256 (secret)', verifier: hsStrict, sign: (p: object) => sign(SECRET_KEY, 'HS256', claims({ iss: issuer, aud: audience, ...p })) },
    { name: 'ES256 (public key)', verifier: es.verifier, sign: (p: object) => sign(es.key, 'ES256', claims({ iss: issuer, aud: audience, ...p })) },
  ];

  it('an expired token whose signature is wrong is invalid, not expired: the signature comes first', async () => {
    for (const side of both()) {
      const [header, payload] = (await side.sign({ exp: nowSec() - 60 })).split('.');
      const forged = `${header}.${payload}.${'A'.repeat(side.name.startsWith('HS') ? 43 : 86)}`;
      await expect(side.verifier.verifyAccess(forged), side.name).rejects.toMatchObject({ code: 'AUTH_INVALID' });
      await expect(side.verifier.verifyAccess(await side.sign({ exp: nowSec() - 60 })), side.name).rejects.toMatchObject({ code: 'AUTH_EXPIRED' });
    }
  });

  it.each([
    ['a non-numeric iat', { iat: 'yesterday' }],
    ['a non-numeric nbf', { nbf: 'later' }],
    ['an audience list without ours', { aud: ['a', 'b'] }],
    ['an issuer that only starts like ours', { iss: `${issuer}.evil` }],
    ['a non-string issuer', { iss: 7 }],
  ])('refuses %s', async (_, payload) => {
    for (const side of both()) {
      await expect(side.verifier.verifyAccess(await side.sign(payload)), side.name).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    }
  });

  it('refuses a crit header no one understands (signed by hand: jose will not sign one)', async () => {
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const payload = part(claims({ iss: issuer, aud: audience }));
    const header = (alg: string) => part({ alg, crit: ['x-ext'], 'x-ext': true });
    const hsInput = `${header('HS256')}.${payload}`;
    const hsToken = `${hsInput}.${createHmac('sha256', SECRET_KEY).update(hsInput).digest('base64url')}`;
    const esInput = `${header('ES256')}.${payload}`;
    const esSignature = cryptoSign('sha256', Buffer.from(esInput), { key: KeyObject.from(es.key), dsaEncoding: 'ieee-p1363' });
    const esToken = `${esInput}.${esSignature.toString('base64url')}`;
    await expect(hsStrict.verifyAccess(hsToken)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    await expect(es.verifier.verifyAccess(esToken)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    // the same tokens without crit pass: it is the crit header that is refused
    const plain = (alg: string) => part({ alg });
    const hsPlain = `${plain('HS256')}.${payload}`;
    await expect(hsStrict.verifyAccess(`${hsPlain}.${createHmac('sha256', SECRET_KEY).update(hsPlain).digest('base64url')}`)).resolves.toBeDefined();
  });

  it('accepts the same valid token shapes', async () => {
    for (const side of both()) {
      await expect(side.verifier.verifyAccess(await side.sign({ aud: ['other', audience], nbf: nowSec() - 1 })), side.name).resolves.toMatchObject({ sub: 'user-1' });
    }
  });

  it('HS384 and HS512 with a secret long enough, when allowed', async () => {
    const long = 'k'.repeat(64);
    const verifier = createVerifier({ secret: long, algorithms: ['HS384', 'HS512'] });
    for (const alg of ['HS384', 'HS512']) {
      await expect(verifier.verifyAccess(await sign(new TextEncoder().encode(long), alg)), alg).resolves.toMatchObject({ sub: 'user-1' });
    }
    await expect(verifier.verifyAccess(await sign(new TextEncoder().encode(long), 'HS256'))).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });
});
