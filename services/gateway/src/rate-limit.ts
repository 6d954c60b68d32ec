/**
 * A token bucket: `burst` tokens, refilled at `ratePerSec`. Synchronous and allocation-free,
 * because it runs on every client event.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    now = performance.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now = performance.now()): boolean {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSec) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until the next token, as of the last `take` (at least 1 when empty). */
  retryAfterMs(): number {
    return this.tokens >= 1 ? 0 : Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSec));
  }
}

/** Token buckets by key (client address), forgetting keys idle for a minute. */
export class KeyedBuckets {
  private readonly buckets = new Map<string, { bucket: TokenBucket; seen: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
  ) {
    this.timer = setInterval(() => this.sweep(), 60_000);
    this.timer.unref();
  }

  take(key: string): boolean {
    const now = performance.now();
    let entry = this.buckets.get(key);
    if (!entry) {
      entry = { bucket: new TokenBucket(this.ratePerSec, this.burst, now), seen: now };
      this.buckets.set(key, entry);
    }
    entry.seen = now;
    return entry.bucket.take(now);
  }

  private sweep(): void {
    const cutoff = performance.now() - 60_000;
    for (const [key, entry] of this.buckets) if (entry.seen < cutoff) this.buckets.delete(key);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
