import { createHash, timingSafeEqual } from 'node:crypto';

const sha256 = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * Finds which admin API key a credential is, in time independent of the credential and of
 * which key (if any) it matches: both sides are hashed to the same length, and every key is
 * compared, without an early exit.
 */
export function createApiKeyMatcher(keys: readonly string[]): (credential: string) => number {
  const digests = keys.map(sha256);
  return (credential) => {
    const candidate = sha256(credential);
    let found = -1;
    for (let i = 0; i < digests.length; i++) {
      const equal = timingSafeEqual(candidate, digests[i]!);
      if (equal && found === -1) found = i;
    }
    return found;
  };
}

const BEARER = /^Bearer +([^\s]+) *$/i;

/** The credential of an `Authorization: Bearer <credential>` header, if the header is one. */
export function bearerCredential(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  return BEARER.exec(header)?.[1];
}
