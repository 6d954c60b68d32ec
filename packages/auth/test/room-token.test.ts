import { describe, expect, it } from 'vitest';
import { createVerifier } from '../src/index.js';
import { SECRET, SECRET_KEY, claims, nowSec, sign, unsigned } from './helpers.js';

const ISSUER = 'https://app.example';
const verifier = createVerifier({ secret: SECRET, issuer: ISSUER });
const expected = { userId: 'user-1', room: 'private:team-42' };
const roomToken = (overrides: object = {}): Promise<string> =>
  sign(SECRET_KEY, 'HS256', claims({ iss: ISSUER, room: 'private:team-42', exp: nowSec() + 30, ...overrides }));

describe('verifyRoomToken', () => {
  it('accepts a token for this user and room', async () => {
    await expect(verifier.verifyRoomToken(await roomToken(), expected)).resolves.toBeUndefined();
  });

  it.each([
    ['wrong room', { room: 'private:team-43' }],
    ['room prefix instead of the exact room', { room: 'private:team-*' }],
    ['wrong sub', { sub: 'user-2' }],
    ['missing room claim', { room: undefined }],
    ['non-string room claim', { room: ['private:team-42'] }],
    ['missing exp', { exp: undefined }],
    ['wrong issuer', { iss: 'https://evil.example' }],
  ])('refuses %s', async (_, overrides) => {
    await expect(verifier.verifyRoomToken(await roomToken(overrides), expected)).rejects.toMatchObject({
      code: 'AUTH_INVALID',
      message: 'Room token invalid',
    });
  });

  it('reports an expired token as AUTH_EXPIRED', async () => {
    await expect(verifier.verifyRoomToken(await roomToken({ exp: nowSec() - 60 }), expected)).rejects.toMatchObject({
      code: 'AUTH_EXPIRED',
    });
  });

  it('refuses a missing, unsigned or foreign-key token', async () => {
    await expect(verifier.verifyRoomToken(undefined, expected)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    const payload = claims({ iss: ISSUER, room: expected.room });
    await expect(verifier.verifyRoomToken(unsigned(payload), expected)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
    const foreign = await sign(new TextEncoder().encode('z'.repeat(32)), 'HS256', payload);
    await expect(verifier.verifyRoomToken(foreign, expected)).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });

  it('is not accepted as an access token', async () => {
    await expect(verifier.verifyAccess(await roomToken())).rejects.toMatchObject({ code: 'AUTH_INVALID' });
  });
});
