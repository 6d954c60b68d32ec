import { SignJWT, base64url, type CryptoKey, type JWTHeaderParameters, type JWTPayload } from 'jose';

/** 32 bytes: the shortest secret HS256 accepts. */
export const SECRET = 'x'.repeat(32);
export const SECRET_KEY = new TextEncoder().encode(SECRET);

export const nowSec = (): number => Math.floor(Date.now() / 1000);

/** A valid claim set for `user-1`, expiring in 5 minutes; `undefined` values drop a claim. */
export function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  return { sub: 'user-1', iat: nowSec(), exp: nowSec() + 300, ...overrides };
}

/** Signs `payload` as is: no claim is added. */
export function sign(
  key: CryptoKey | Uint8Array,
  alg: string,
  payload: JWTPayload = claims(),
  header: Omit<JWTHeaderParameters, 'alg'> = {},
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ ...header, alg }).sign(key);
}

/** An unsigned token (`alg: none`), built by hand since jose refuses to make one. */
export function unsigned(payload: JWTPayload = claims()): string {
  const part = (value: object): string => base64url.encode(JSON.stringify(value));
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(payload)}.`;
}
