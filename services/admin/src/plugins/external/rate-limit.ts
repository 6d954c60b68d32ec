import rateLimit from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AdminError } from '../../errors.js';

export interface RateLimitOptions {
  /** Requests per minute per key. */
  max: number;
  /** The bucket of a request: its admin API key, or else its client address. */
  keyGenerator: (request: FastifyRequest) => string | Promise<string>;
}

/**
 * Installs @fastify/rate-limit without applying it anywhere: the `/v1` scope adds
 * `app.rateLimit()` as its first hook, so probes, metrics and docs are never limited.
 * Counters are per admin instance.
 */
export default fp<RateLimitOptions>(
  async (app, opts) => {
    await app.register(rateLimit, {
      global: false,
      max: opts.max,
      timeWindow: 60_000,
      keyGenerator: opts.keyGenerator,
      errorResponseBuilder: (_request, context) =>
        new AdminError('RATE_LIMITED', `Rate limit exceeded, retry in ${context.after}`, { limit: context.max }),
    });
  },
  { name: 'rate-limit' },
);
