import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createVerifier } from '../src/index.js';
import { claims, sign } from './helpers.js';

const ISSUER_A = 'https://a.example';
const ISSUER_B = 'https://b.example';

interface Signer {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signer(kid: string, alg: string): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

describe('JWKS verification', () => {
  let server: Server;
  let baseUrl: string;
  let deadUrl: string;
  let a: Signer;
  let aEd: Signer;
  let b: Signer;
  const hits = new Map<string, number>();

  beforeAll(async () => {
    [a, aEd, b] = await Promise.all([signer('a-rsa', 'RS256'), signer('a-ed', 'EdDSA'), signer('b-rsa', 'RS256')]);
    const sets: Record<string, JWK[]> = { '/a/jwks.json': [a.jwk, aEd.jwk], '/b/jwks.json': [b.jwk] };
    server = createServer((req, res) => {
      const path = req.url ?? '';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const keys = sets[path];
      if (keys === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    deadUrl = `http://127.0.0.1:${(dead.address() as AddressInfo).port}/jwks.json`;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  beforeEach(() => hits.clear());

  const verifierA = () => createVerifier({ jwksUrl: `${baseUrl}/a/jwks.json`, issuer: ISSUER_A });
  const tokenBy = (s: Signer, alg: string, iss: string, kid = s.kid) =>
    sign(s.privateKey, alg, claims({ iss, roles: ['member'] }), { kid });

  it('accepts RS256 and EdDSA tokens from the issuer key set, fetching it once', async () => {
    const verifier = verifierA();
    await expect(verifier.verifyAccess(await tokenBy(a, 'RS256', ISSUER_A))).resolves.toMatchObject({
      sub: 'user-1',
      roles: ['member'],
    });
    await expect(verifier.verifyAccess(await tokenBy(aEd, 'EdDSA', ISSUER_A))).resolves.toMatchObject({
      sub: 'user-1',
    });
    await expect(verifier.verifyAccess(await tokenBy(a, 'RS256', ISSUER_A))).resolves.toBeDefined();
    expect(hits.get('/a/jwks.json')).toBe(1);
  });

  it('works without a configured issuer', async () => {
    const verifier = createVerifier({ jwksUrl: `${baseUrl}/b/jwks.json` });
    await expect(verifier.verifyAccess(await tokenBy(b, 'RS256', ISSUER_B))).resolves.toMatchObject({ sub: 'user-1' });
  });

  it('refuses a token of another issuer before any key lookup', async () => {
    const verifier = verifierA();
    await expect(verifier.verifyAccess(await tokenBy(b, 'RS256', ISSUER_B))).rejects.toMatchObject({
      code: 'AUTH_INVALID',
    });
    await expect(verifier.verifyAccess(await tokenBy(a, 'RS256', ISSUER_B))).rejects.toMatchObject({
      code: 'AUTH_INVALID',
    });
    expect(hits.size).toBe(0);
  });

  it("refuses a token signed with another key set's key and kid", async () => {
    await expect(verifierA().verifyAccess(await tokenBy(b, 'RS256', ISSUER_A))).rejects.toMatchObject({
      code: 'AUTH_INVALID',
    });
  });

  it('refuses a token with a known kid but signed with another key', async () => {
    await expect(verifierA().verifyAccess(await tokenBy(b, 'RS256', ISSUER_A, a.kid))).rejects.toMatchObject({
      code: 'AUTH_INVALID',
    });
  });

  it('refuses an algorithm outside the allow-list even if the key set has a matching key', async () => {
    const verifier = createVerifier({ jwksUrl: `${baseUrl}/a/jwks.json`, issuer: ISSUER_A, algorithms: ['RS256'] });
    await expect(verifier.verifyAccess(await tokenBy(aEd, 'EdDSA', ISSUER_A))).rejects.toMatchObject({
      code: 'AUTH_INVALID',
    });
  });

  it('reports an expired JWKS-signed token as AUTH_EXPIRED', async () => {
    const token = await sign(a.privateKey, 'RS256', claims({ iss: ISSUER_A, exp: 1 }), { kid: a.kid });
    await expect(verifierA().verifyAccess(token)).rejects.toMatchObject({ code: 'AUTH_EXPIRED' });
  });

  it('maps key set fetch failures to AUTH_INVALID', async () => {
    const token = await tokenBy(a, 'RS256', ISSUER_A);
    const unreachable = createVerifier({ jwksUrl: deadUrl, issuer: ISSUER_A });
    const missing = createVerifier({ jwksUrl: `${baseUrl}/missing.json`, issuer: ISSUER_A });
    await expect(unreachable.verifyAccess(token)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    await expect(missing.verifyAccess(token)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('verifies room tokens against the same key set', async () => {
    const token = await sign(a.privateKey, 'RS256', claims({ iss: ISSUER_A, room: 'public:lobby' }), { kid: a.kid });
    const expected = { userId: 'user-1', room: 'public:lobby' };
    await expect(verifierA().verifyRoomToken(token, expected)).resolves.toBeUndefined();
  });
});
