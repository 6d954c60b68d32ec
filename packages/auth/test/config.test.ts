import { exportSPKI, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, isLoopbackHost, jwksUrlProblem } from '../src/index.js';
import { SECRET } from './helpers.js';

describe('createVerifier configuration', () => {
  let rsaPem: string;
  let ecPem: string;

  beforeAll(async () => {
    rsaPem = await exportSPKI((await generateKeyPair('RS256')).publicKey);
    ecPem = await exportSPKI((await generateKeyPair('ES256')).publicKey);
  });

  it('needs a key source', () => {
    expect(() => createVerifier({})).toThrow(/exactly one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL/i);
  });

  it('refuses two key sources', () => {
    expect(() => createVerifier({ secret: SECRET, publicKey: rsaPem })).toThrow(/exactly one/i);
    expect(() => createVerifier({ publicKey: rsaPem, jwksUrl: 'https://keys.example/jwks.json' })).toThrow(
      /exactly one/i,
    );
  });

  it('refuses a secret shorter than 32 bytes', () => {
    expect(() => createVerifier({ secret: 'x'.repeat(31) })).toThrow(/JWT_SECRET must be at least 32 bytes/);
  });

  it('requires longer secrets for HS384 / HS512', () => {
    expect(() => createVerifier({ secret: SECRET, algorithms: ['HS512'] })).toThrow(/at least 64 bytes/);
    expect(() => createVerifier({ secret: 'x'.repeat(64), algorithms: ['HS256', 'HS512'] })).not.toThrow();
  });

  it.each([['none'], ['HS256', 'none'], ['NONE']])('refuses none in the allow-list (%j)', (...algorithms) => {
    expect(() => createVerifier({ secret: SECRET, algorithms })).toThrow(/JWT_ALGORITHMS must not contain "none"/);
  });

  it('refuses an empty allow-list and unknown algorithms', () => {
    expect(() => createVerifier({ secret: SECRET, algorithms: [] })).toThrow(/JWT_ALGORITHMS/);
    expect(() => createVerifier({ secret: SECRET, algorithms: ['HS1024'] })).toThrow(/JWT_ALGORITHMS/);
  });

  it('refuses HS* with a public key or a JWKS', () => {
    expect(() => createVerifier({ publicKey: rsaPem, algorithms: ['HS256'] })).toThrow(/JWT_ALGORITHMS: HS256/);
    expect(() => createVerifier({ publicKey: rsaPem, algorithms: ['RS256', 'HS256'] })).toThrow(/JWT_ALGORITHMS/);
    expect(() => createVerifier({ jwksUrl: 'https://keys.example/jwks.json', algorithms: ['HS256'] })).toThrow(
      /JWT_ALGORITHMS/,
    );
  });

  it('refuses asymmetric algorithms with a secret, and algorithms that do not fit the key', () => {
    expect(() => createVerifier({ secret: SECRET, algorithms: ['RS256'] })).toThrow(/JWT_ALGORITHMS: RS256/);
    expect(() => createVerifier({ publicKey: ecPem, algorithms: ['RS256'] })).toThrow(/JWT_ALGORITHMS: RS256/);
    expect(() => createVerifier({ publicKey: ecPem, algorithms: ['ES384'] })).toThrow(/JWT_ALGORITHMS: ES384/);
  });

  it('refuses a private key, garbage, or a small RSA key as the public key', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const pair = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const smallPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => createVerifier({ publicKey: privatePem })).toThrow(/JWT_PUBLIC_KEY/);
    expect(() => createVerifier({ publicKey: 'not a key' })).toThrow(/JWT_PUBLIC_KEY/);
    expect(() => createVerifier({ publicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----' })).toThrow(
      /JWT_PUBLIC_KEY/,
    );
    expect(() => createVerifier({ publicKey: smallPem })).toThrow(/at least 2048 bits/);
  });

  it('refuses a JWKS URL that is not http(s)', () => {
    expect(() => createVerifier({ jwksUrl: 'file:///etc/jwks.json' })).toThrow(/JWT_JWKS_URL/);
    expect(() => createVerifier({ jwksUrl: 'not a url' })).toThrow(/JWT_JWKS_URL/);
  });

  it('refuses a JWKS URL over plain http except on a loopback host', () => {
    for (const url of ['http://keys.example/jwks.json', 'http://10.0.0.7:8080/jwks', 'http://[::ffff:7f00:1]/jwks', 'http://localhost.example/jwks']) {
      expect(() => createVerifier({ jwksUrl: url }), url).toThrow(
        'JWT_JWKS_URL must be an https:// URL (plain http:// only on a loopback host: localhost, 127.0.0.0/8, ::1)',
      );
    }
    for (const url of ['https://keys.example/jwks.json', 'http://127.0.0.1:8080/jwks', 'http://127.3.2.1/jwks', 'http://[::1]:9/jwks', 'http://LOCALHOST/jwks']) {
      expect(() => createVerifier({ jwksUrl: url }), url).not.toThrow();
    }
  });

  it('recognises loopback hosts as URL gives them, and nothing else', () => {
    const host = (url: string) => new URL(url).hostname;
    expect(isLoopbackHost(host('http://127.1/'))).toBe(true); // URL normalises it to 127.0.0.1
    expect(isLoopbackHost(host('http://[0:0:0:0:0:0:0:1]/'))).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost(host('http://128.0.0.1/'))).toBe(false);
    expect(isLoopbackHost(host('http://127.0.0.1.nip.io/'))).toBe(false);
    expect(isLoopbackHost(host('http://[::2]/'))).toBe(false);
    expect(jwksUrlProblem('ftp://keys.example/jwks')).toBe('must be an http(s) URL');
    expect(jwksUrlProblem('https://keys.example/jwks')).toBeUndefined();
  });

  it('refuses a negative clock tolerance', () => {
    expect(() => createVerifier({ secret: SECRET, clockToleranceSec: -1 })).toThrow(/JWT_CLOCK_TOLERANCE_SEC/);
  });
});
