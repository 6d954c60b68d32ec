import { createPublicKey, type KeyObject } from 'node:crypto';
import { minSecretBytes, resolveAlgorithms, type PublicKeyKind } from './algorithms.js';
import { jwksUrlProblem } from './jwks-url.js';

/** Verification key material, resolved and checked once when a verifier is created. */
export type KeyMaterial =
  | { kind: 'secret'; algorithms: string[]; key: Uint8Array }
  | { kind: PublicKeyKind; algorithms: string[]; key: KeyObject }
  | { kind: 'jwks'; algorithms: string[]; url: URL };

export interface KeySource {
  secret?: string;
  publicKey?: string;
  jwksUrl?: string;
  algorithms?: string[];
}

const PUBLIC_PEM = /-----BEGIN (?:PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----/;
const MIN_RSA_BITS = 2048;
const CURVES = new Map<string | undefined, PublicKeyKind>([
  ['prime256v1', 'ec-p256'],
  ['secp384r1', 'ec-p384'],
  ['secp521r1', 'ec-p521'],
]);

/**
 * Checks the key options and resolves the algorithm allow-list.
 * @throws Error unless exactly one of secret / publicKey / jwksUrl is given and it is usable.
 */
export function loadKeyMaterial(source: KeySource): KeyMaterial {
  const given = [source.secret, source.publicKey, source.jwksUrl].filter((v) => v !== undefined);
  if (given.length !== 1) {
    throw new Error('Exactly one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL must be set');
  }
  if (source.secret !== undefined) {
    const algorithms = resolveAlgorithms('secret', source.algorithms);
    const key = new TextEncoder().encode(source.secret);
    const min = minSecretBytes(algorithms);
    if (key.byteLength < min) {
      throw new Error(`JWT_SECRET must be at least ${min} bytes (${algorithms.join('/')} needs a ${min * 8}-bit key)`);
    }
    return { kind: 'secret', algorithms, key };
  }
  if (source.publicKey !== undefined) {
    const key = parsePublicKey(source.publicKey);
    const kind = publicKeyKind(key);
    return { kind, algorithms: resolveAlgorithms(kind, source.algorithms), key };
  }
  const url = parseJwksUrl(source.jwksUrl ?? '');
  return { kind: 'jwks', algorithms: resolveAlgorithms('jwks', source.algorithms), url };
}

function parsePublicKey(pem: string): KeyObject {
  if (!PUBLIC_PEM.test(pem)) {
    throw new Error('JWT_PUBLIC_KEY must be a PEM public key (SPKI) or X.509 certificate');
  }
  try {
    return createPublicKey(pem);
  } catch (cause) {
    throw new Error('JWT_PUBLIC_KEY is not a valid PEM public key or certificate', { cause });
  }
}

function publicKeyKind(key: KeyObject): PublicKeyKind {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
      if ((details.modulusLength ?? 0) < MIN_RSA_BITS) {
        throw new Error(`JWT_PUBLIC_KEY: RSA keys must have at least ${MIN_RSA_BITS} bits`);
      }
      return 'rsa';
    case 'ec': {
      const kind = CURVES.get(details.namedCurve);
      if (kind === undefined) {
        throw new Error(`JWT_PUBLIC_KEY: unsupported EC curve ${details.namedCurve ?? 'unknown'}`);
      }
      return kind;
    }
    case 'ed25519':
      return 'ed25519';
    default:
      throw new Error(`JWT_PUBLIC_KEY: unsupported key type ${key.asymmetricKeyType ?? 'unknown'}`);
  }
}

function parseJwksUrl(value: string): URL {
  const problem = jwksUrlProblem(value);
  if (problem !== undefined) throw new Error(`JWT_JWKS_URL ${problem}`);
  return new URL(value);
}
