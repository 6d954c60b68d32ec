import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures (SPEC §7a): `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, the
 * timestamp in ms since the epoch, fresh for every attempt. Signing the timestamp with the body
 * lets a receiver refuse a request replayed later.
 */

/** How old a request's timestamp may be (either way, for clock skew) by default: 5 minutes. */
export const WEBHOOK_TOLERANCE_MS = 5 * 60_000;

/** The `X-Switchboard-Signature` value for a body sent at `timestamp`. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export type WebhookVerification =
  | { ok: true; timestamp: number }
  | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'mismatch' };

/**
 * Checks a request's `X-Switchboard-Timestamp` and `X-Switchboard-Signature` against its raw body
 * (the bytes received, before any JSON parsing). Constant-time on the signature.
 */
export function verifyWebhook(
  secret: string,
  request: { timestamp: string | undefined; signature: string | undefined; body: string | Buffer },
  options: { toleranceMs?: number; now?: number } = {},
): WebhookVerification {
  const { timestamp, signature } = request;
  if (!timestamp || !signature) return { ok: false, reason: 'missing' };
  if (!/^\d{1,16}$/.test(timestamp) || !/^sha256=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: 'malformed' };
  const ts = Number(timestamp);
  const now = options.now ?? Date.now();
  if (Math.abs(now - ts) > (options.toleranceMs ?? WEBHOOK_TOLERANCE_MS)) return { ok: false, reason: 'stale' };
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(request.body).digest();
  const given = Buffer.from(signature.slice('sha256='.length), 'hex');
  return timingSafeEqual(expected, given) ? { ok: true, timestamp: ts } : { ok: false, reason: 'mismatch' };
}
