import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook, WEBHOOK_TOLERANCE_MS } from '../src/index.js';

const secret = 'a-webhook-secret-of-at-least-32-bytes!!';
const body = JSON.stringify({ events: [{ id: 'e1', type: 'user.online', ts: 1, seq: 1, cause: 'connect', data: { userId: 'ann' } }] });
const now = 1_800_000_000_000;

describe('webhook signatures', () => {
  it('signs "<timestamp>.<body>" with HMAC-SHA256, as a receiver with only node:crypto computes it', () => {
    const expected = createHmac('sha256', secret).update(`${now}.${body}`).digest('hex');
    expect(signWebhook(secret, now, body)).toBe(`sha256=${expected}`);
  });

  it('accepts what it signed, from a string or the raw bytes', () => {
    const signature = signWebhook(secret, now, body);
    expect(verifyWebhook(secret, { timestamp: String(now), signature, body }, { now })).toEqual({ ok: true, timestamp: now });
    expect(verifyWebhook(secret, { timestamp: String(now), signature, body: Buffer.from(body) }, { now: now + 1000 }).ok).toBe(true);
  });

  it('refuses a tampered body, another secret, a moved timestamp, an old or future timestamp, and missing or malformed headers', () => {
    const signature = signWebhook(secret, now, body);
    const at = String(now);
    expect(verifyWebhook(secret, { timestamp: at, signature, body: body.replace('ann', 'bob') }, { now })).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifyWebhook(`${secret}x`, { timestamp: at, signature, body }, { now })).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifyWebhook(secret, { timestamp: String(now + 1), signature, body }, { now })).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifyWebhook(secret, { timestamp: at, signature, body }, { now: now + WEBHOOK_TOLERANCE_MS + 1 })).toEqual({ ok: false, reason: 'stale' });
    expect(verifyWebhook(secret, { timestamp: at, signature, body }, { now: now - WEBHOOK_TOLERANCE_MS - 1 })).toEqual({ ok: false, reason: 'stale' });
    expect(verifyWebhook(secret, { timestamp: at, signature, body }, { now: now + 2000, toleranceMs: 1000 })).toEqual({ ok: false, reason: 'stale' });
    expect(verifyWebhook(secret, { timestamp: undefined, signature, body }, { now })).toEqual({ ok: false, reason: 'missing' });
    expect(verifyWebhook(secret, { timestamp: at, signature: undefined, body }, { now })).toEqual({ ok: false, reason: 'missing' });
    expect(verifyWebhook(secret, { timestamp: `${at}.5`, signature, body }, { now })).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyWebhook(secret, { timestamp: at, signature: signature.replace('sha256=', 'sha1='), body }, { now })).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyWebhook(secret, { timestamp: at, signature: signature.slice(0, -2), body }, { now })).toEqual({ ok: false, reason: 'malformed' });
  });
});
