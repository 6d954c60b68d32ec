export { AuthError, type AuthErrorCode } from './auth-error.js';
export { isLoopbackHost, jwksUrlProblem } from './jwks-url.js';
export { NAME_MAX_LENGTH, type AccessClaims } from './claims.js';
export { createVerifier, type TokenVerifier, type VerifierOptions } from './verifier.js';
