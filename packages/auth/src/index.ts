export { AuthError, type AuthErrorCode } from './auth-error.js';
export { isLoopbackHost, jwksUrlProblem } from './jwks-url.js';
export { NAME_MAX_LENGTH, type AccessClaims } from './claims.js';
export { createVerifier, type TokenVerifier, type VerifierOptions } from './verifier.js';
export { signWebhook, verifyWebhook, WEBHOOK_TOLERANCE_MS, type WebhookVerification } from './webhook-signature.js';
