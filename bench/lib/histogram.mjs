// Log-bucketed latency histogram (1 % relative precision), cheap to record into and to ship over IPC.
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);

const bucketOf = (ms) => (ms <= 0.001 ? 0 : Math.ceil(Math.log(ms * 1000) / LOG_GROWTH));
const upperBoundMs = (bucket) => (bucket === 0 ? 0.001 : GROWTH ** bucket / 1000);

export class Histogram {
  constructor() {
    this.counts = new Map();
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = -Infinity;
  }

  record(ms) {
    const bucket = bucketOf(ms);
    this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + 1);
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  merge(other) {
    for (const [bucket, n] of other.counts) this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + n);
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    return this;
  }

  /** Latency (ms) at percentile `p` (0–100); the bucket's upper bound, never above the max seen. */
  percentile(p) {
    if (this.count === 0) return undefined;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (const bucket of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(bucket);
      if (seen >= rank) return Math.min(upperBoundMs(bucket), this.max);
    }
    return this.max;
  }

  get mean() {
    return this.count ? this.sum / this.count : undefined;
  }

  toJSON() {
    return { count: this.count, sum: this.sum, min: this.min, max: this.max, counts: [...this.counts] };
  }

  static fromJSON(json) {
    const h = new Histogram();
    h.counts = new Map(json.counts);
    h.count = json.count;
    h.sum = json.sum;
    h.min = json.count ? json.min : Infinity;
    h.max = json.count ? json.max : -Infinity;
    return h;
  }

  summary() {
    return {
      count: this.count,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
      max: this.count ? this.max : undefined,
      mean: this.mean,
    };
  }
}
