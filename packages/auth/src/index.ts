export { AuthError, type AuthErrorCode } from './auth-error.js';
export { NAME_MAX_LENGTH, type AccessClaims } from './claims.js';
export { createVerifier, type TokenVerifier, type VerifierOptions } from './verifier.js';
