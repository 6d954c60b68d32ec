// Measurement phases over an established topology (pods + receiver pool + publisher), and the
// saturation ramp that strings phases together.
import { now, sleep } from './clock.mjs';
import { Histogram } from './histogram.mjs';
import { cpuTimeMs, machineBusyMs } from './procs.mjs';

const cpuOf = (pids) => {
  const values = pids.map(cpuTimeMs);
  return values.every(Number.isFinite) ? values.reduce((a, b) => a + b, 0) : undefined;
};

/** CPU counters: the pods, every bench process (pods, receivers, runner, Redis), the whole machine. */
const sampleCpu = ({ podPids, benchPids }) => ({ pods: cpuOf(podPids), bench: cpuOf(benchPids), machine: machineBusyMs() });
const delta = (a, b) => (a === undefined || b === undefined ? undefined : b - a);
const addOpt = (a, b) => (a === undefined || b === undefined ? undefined : a + b);

/**
 * Publishes `rate` msg/s for `durationMs`, then waits (at most `drainMs`) for the deliveries still in
 * flight. Returns the raw counts; `summarize()` turns one or more of them into figures.
 * `deliveriesPerMessage`: how many receivers one message reaches (default: every receiver, one room).
 *
 * env: { pool, publisher, podPids, benchPids }
 */
export async function measurePhase(env, { rate, durationMs, drainMs, deliveriesPerMessage }) {
  const { pool, publisher } = env;
  const minSeq = publisher.nextSeq;
  const { receivers } = await pool.poll();
  const perMessage = deliveriesPerMessage ?? receivers;
  const t0 = now() + 25; // leaves time for the workers to take the phase start
  await pool.startPhase({ minSeq, t0, windowEnd: t0 + durationMs, ...(deliveriesPerMessage ? { perSeq: deliveriesPerMessage } : {}) });
  const cpu0 = sampleCpu(env);

  const pub = await publisher.run({ rate, durationMs, t0 });
  await waitForDeliveries(pool, pub.sent * perMessage, drainMs);

  const cpu1 = sampleCpu(env);
  const elapsedMs = now() - t0;
  const r = await pool.report();
  const benchCpuMs = delta(cpu0.bench, cpu1.bench);
  const machineCpuMs = delta(cpu0.machine, cpu1.machine);
  return {
    rate,
    durationMs,
    elapsedMs,
    receivers: r.receivers,
    sent: pub.sent,
    acked: pub.acked,
    nacks: pub.nacks,
    publisherMaxLagMs: pub.maxLagMs,
    perPod: pub.perPod,
    expected: pub.sent * (deliveriesPerMessage ?? r.receivers),
    deliveries: r.deliveries,
    inWindow: r.inWindow,
    dups: r.dups,
    late: r.late,
    disconnects: r.disconnects,
    hist: r.hist,
    workerHists: r.perWorker.map((w) => Histogram.fromJSON(w.histJSON)),
    podCpuMs: delta(cpu0.pods, cpu1.pods),
    receiverCpuMs: r.cpuMs,
    otherCpuMs: benchCpuMs === undefined || machineCpuMs === undefined ? undefined : Math.max(0, machineCpuMs - benchCpuMs),
  };
}

/** Figures for one phase, or for several phases of the same rate taken as one (e.g. interleaved segments). */
export function summarize(raws, criteria) {
  const sum = (key) => raws.reduce((s, r) => s + r[key], 0);
  const sumOpt = (key) => raws.reduce((s, r) => addOpt(s, r[key]), 0);
  const hist = raws.reduce((h, r) => h.merge(r.hist), new Histogram());
  const workerHists = raws[0].workerHists.map((_, i) => raws.reduce((h, r) => h.merge(r.workerHists[i] ?? new Histogram()), new Histogram()));
  const durationS = sum('durationMs') / 1000;
  const elapsedMs = sum('elapsedMs');
  const expected = sum('expected');
  const unique = sum('deliveries') - sum('dups');
  const offeredPerSec = expected / durationS;
  const deliveredPerSec = sum('inWindow') / durationS;
  const nacks = {};
  for (const r of raws) for (const [code, n] of Object.entries(r.nacks)) nacks[code] = (nacks[code] ?? 0) + n;
  const podCpuMs = sumOpt('podCpuMs');
  const otherCpuMs = sumOpt('otherCpuMs');
  const s = {
    rate: raws[0].rate,
    segments: raws.length,
    durationMs: sum('durationMs'),
    receivers: Math.min(...raws.map((r) => r.receivers)),
    sent: sum('sent'),
    acked: sum('acked'),
    nacks,
    expected,
    deliveries: sum('deliveries'),
    missing: Math.max(0, expected - unique),
    dups: sum('dups'),
    late: sum('late'),
    disconnects: sum('disconnects'),
    loss: expected ? Math.max(0, expected - unique) / expected : 0,
    offeredPerSec,
    deliveredPerSec,
    deliveredRatio: offeredPerSec ? deliveredPerSec / offeredPerSec : 0,
    latency: hist.summary(),
    perWorker: workerHists.map((h) => h.summary()),
    publisherMaxLagMs: Math.max(...raws.map((r) => r.publisherMaxLagMs)),
    podCpuPct: podCpuMs === undefined ? undefined : (podCpuMs / elapsedMs) * 100,
    podCpuMsPer1kDeliveries: podCpuMs === undefined || !unique ? undefined : podCpuMs / (unique / 1000),
    receiverCpuPct: (sum('receiverCpuMs') / elapsedMs) * 100,
    // CPU used by processes that are not part of the bench (other jobs on the machine): interference.
    otherCpuPct: otherCpuMs === undefined ? undefined : (otherCpuMs / elapsedMs) * 100,
  };
  if (criteria) {
    s.sustained =
      s.deliveredRatio >= criteria.minDeliveredRatio && (s.latency.p99 ?? Infinity) <= criteria.maxP99Ms && s.loss <= criteria.maxLoss;
  }
  return s;
}

/** Polls the receivers until `expected` deliveries arrived, nothing moved for 1 s, or `maxMs` passed. */
async function waitForDeliveries(pool, expected, maxMs) {
  const deadline = now() + maxMs;
  let last = -1;
  let lastChange = now();
  for (;;) {
    const { deliveries } = await pool.poll();
    if (deliveries >= expected || now() >= deadline) return;
    if (deliveries !== last) {
      last = deliveries;
      lastChange = now();
    } else if (now() - lastChange > 1000) return;
    await sleep(50);
  }
}

/** After an overloaded phase: waits until the receivers stop receiving (backlog flushed), at most `maxMs`. */
export async function waitForQuiet(pool, { quietMs = 500, maxMs = 8000 } = {}) {
  const deadline = now() + maxMs;
  let last = -1;
  let lastChange = now();
  while (now() < deadline) {
    const { total } = await pool.poll();
    if (total !== last) {
      last = total;
      lastChange = now();
    } else if (now() - lastChange >= quietMs) return true;
    await sleep(100);
  }
  return false;
}

/**
 * Waits until processes outside the bench use at most `thresholdPct` % of a core over a `windowMs`
 * window, for at most `maxMs`. Returns the time waited, or undefined where CPU accounting is unavailable.
 */
export async function waitForQuietMachine(benchPids, { thresholdPct, windowMs = 250, maxMs = 5000 }) {
  const started = now();
  for (;;) {
    const a = sampleCpu({ podPids: [], benchPids });
    const t = now();
    await sleep(windowMs);
    const b = sampleCpu({ podPids: [], benchPids });
    const bench = delta(a.bench, b.bench);
    const machine = delta(a.machine, b.machine);
    if (bench === undefined || machine === undefined) return undefined;
    const otherPct = (Math.max(0, machine - bench) / (now() - t)) * 100;
    if (otherPct <= thresholdPct || now() - started >= maxMs) return now() - started;
  }
}

/**
 * One side's saturation search: walks up `steps` until a step is not sustained, then bisects between
 * the last sustained and the first unsustained rate `refine` times. Bounded by the step list and the
 * refinement count; the caller bounds it in time.
 */
export class Ramp {
  constructor({ steps, refine }) {
    this.steps = steps;
    this.refineLeft = refine;
    this.mode = steps.length ? 'up' : 'done'; // 'up' → 'refine' → 'done'
    this.index = 0;
    this.lo = 0; // highest sustained rate
    this.hi = undefined; // lowest unsustained rate
    this.results = [];
    this.notes = [];
  }

  /** The next rate to try, or undefined when done. */
  nextRate() {
    if (this.mode === 'up') return this.steps[this.index];
    if (this.mode !== 'refine' || this.refineLeft <= 0) return undefined;
    const mid = Math.round((this.lo + this.hi) / 2);
    return mid > this.lo && mid < this.hi ? mid : undefined;
  }

  record(summary) {
    this.results.push(summary);
    if (summary.sustained) this.lo = Math.max(this.lo, summary.rate);
    else this.hi = Math.min(this.hi ?? Infinity, summary.rate);
    if (this.mode === 'refine') this.refineLeft--;
    else if (!summary.sustained) this.mode = 'refine';
    else if (++this.index >= this.steps.length) {
      this.mode = 'done';
      this.notes.push(`still sustained at the highest step (${this.steps.at(-1)} msg/s): saturation is above it`);
    }
  }

  /** Ends the search early (time budget), with a note for the report. */
  stop(note) {
    this.mode = 'done';
    this.notes.push(note);
  }

  get saturated() {
    return this.hi !== undefined;
  }

  get best() {
    return this.results.filter((p) => p.sustained).reduce((a, p) => (!a || p.deliveredPerSec > a.deliveredPerSec ? p : a), undefined);
  }

  get peak() {
    return this.results.reduce((a, p) => (!a || p.deliveredPerSec > a.deliveredPerSec ? p : a), undefined);
  }

  toJSON() {
    return { steps: this.results, best: this.best, peak: this.peak, saturated: this.saturated, notes: this.notes };
  }
}
