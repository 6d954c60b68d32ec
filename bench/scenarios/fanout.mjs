// Fan-out of room messages to 1,000 clients spread over 2 pods, Switchboard vs a bare
// Socket.IO + @socket.io/redis-adapter baseline, measured in the same run on the same Redis.
import { now, sleep } from '../lib/clock.mjs';
import { table, int, ms, pct, ratio } from '../lib/markdown.mjs';
import { measurePhase, summarize, waitForQuiet, waitForQuietMachine, Ramp } from '../lib/phases.mjs';
import { serverAvailable, serverScript } from '../lib/pods.mjs';
import { isInterrupted } from '../lib/procs.mjs';
import { startTopology } from '../lib/topology.mjs';

export const name = 'fanout';
export const description =
  'Room fan-out to 1,000 clients over 2 pods: saturation throughput (deliveries/s) and latency at a fixed ' +
  'rate, Switchboard gateway vs a bare Socket.IO + Redis adapter baseline, side by side in one run.';

const DEFAULTS = {
  sides: ['baseline', 'switchboard'],
  gateway: undefined, // default entry point
  receivers: 1000,
  pods: 2,
  workers: 2,
  batchSize: 50,
  connectTimeoutMs: 10_000,
  room: 'public:bench',
  padBytes: 100,
  warmup: { rate: 20, durationMs: 1500, drainMs: 1500 },
  // 20 s per side, as 8 segments of 2.5 s interleaved A B B A A B B A … with the other side: a p99
  // over 1,000 messages (a late message is late for all its 1,000 receivers, so a p99 over 500
  // messages rests on 5 of them and swung from run to run by 1.5x on a shared machine)
  fixed: { rate: 50, durationMs: 20_000, segments: 8, drainMs: 3000 },
  ramp: {
    steps: [20, 40, 60, 80, 100, 120, 150, 200, 250, 300, 400],
    stepMs: 4000,
    drainMs: 2000,
    refine: 2,
    budgetMs: 120_000, // both sides together; also cut so that the whole scenario stays under maxMs
  },
  maxMs: 205_000, // the ramp stops early rather than run the scenario past this
  // Other jobs on the machine distort the figures. Before each phase the bench waits (≤ gateMs, and
  // ≤ gateBudgetMs in all) until processes outside the bench use ≤ quietPct % of a core; a phase
  // during which they used more than retryAbovePct % is measured again (≤ perPhase times, ≤ retries
  // per side). Above warnAbovePct in a kept phase, the report warns and the verdict is UNRELIABLE.
  interference: { quietPct: 15, gateMs: 5000, gateBudgetMs: 30_000, retryAbovePct: 25, perPhase: 2, retries: 6, warnAbovePct: 20 },
  // A step is "sustained" when all three hold.
  criteria: { minDeliveredRatio: 0.9, maxP99Ms: 1000, maxLoss: 0.01 },
  targets: { saturation: 0.9, p99: 1.2 },
};

/**
 * The two sides compared: `reference` first, `subject` second. Each names the kind of server, its label
 * and where its Redis is; the default is the bare baseline vs the Switchboard gateway on the run's Redis.
 * Other scenarios (fanout-sharded, topologies) run the same comparison between other pairs of sides.
 */
const defaultSides = (ctx, cfg) => ({
  reference: 'baseline',
  subject: 'switchboard',
  specs: {
    baseline: { label: 'baseline', kind: 'baseline', redisUrl: ctx.redisUrl },
    switchboard: { label: 'Switchboard', kind: 'switchboard', script: cfg.gateway, redisUrl: ctx.redisUrl },
  },
});

/**
 * Options: --quick --sides=baseline,switchboard --receivers=N --fixed-rate=N --steps=a,b,c --step-ms=N
 * --gateway=<entry point relative to the repository root, default services/gateway/dist/main.js>
 */
export function configure(options = {}, { short = false } = {}) {
  const cfg = structuredClone(DEFAULTS);
  const num = (key) => (options[key] === undefined ? undefined : Number(options[key]));
  if (short && !options.quick && !options.full) {
    // the comparisons other scenarios run with this one's phases: the same steps, shorter
    Object.assign(cfg.fixed, { durationMs: 6000, segments: 2, drainMs: 2000 });
    Object.assign(cfg.ramp, { stepMs: 3000, drainMs: 1500, refine: 1, budgetMs: 60_000 });
    // two sides to set up and re-measurements on a busy machine must leave the ramp its budget
    cfg.maxMs = 160_000;
    cfg.interference.perPhase = 1;
  }
  if (options.quick) {
    Object.assign(cfg.fixed, { durationMs: 4000, segments: 2, drainMs: 2000 });
    Object.assign(cfg.ramp, { stepMs: 2500, drainMs: 1500, refine: 1, budgetMs: 40_000 });
  }
  if (typeof options.gateway === 'string') cfg.gateway = options.gateway;
  if (options.sides) cfg.sides = String(options.sides).split(',').filter(Boolean);
  if (num('receivers')) cfg.receivers = num('receivers');
  if (num('fixed-rate')) cfg.fixed.rate = num('fixed-rate');
  if (num('step-ms')) cfg.ramp.stepMs = num('step-ms');
  if (options.steps) cfg.ramp.steps = String(options.steps).split(',').map(Number).filter((n) => n > 0);
  if (!(cfg.receivers > 0) || cfg.receivers % cfg.workers !== 0) throw new Error(`--receivers must be a positive multiple of ${cfg.workers}`);
  return cfg;
}

export async function run(ctx) {
  const cfg = configure(ctx.options);
  return compare(ctx, cfg, defaultSides(ctx, cfg));
}

/**
 * The whole comparison between two sides (see defaultSides), with the fanout scenario's phases.
 * `text`: { name, title, what } for the report.
 */
export async function compare(ctx, cfg, pair, text = { name, title: 'Room fan-out: Switchboard vs bare Socket.IO + Redis adapter' }) {
  const started = now();
  const unknownSides = cfg.sides.filter((side) => !(side in pair.specs));
  if (unknownSides.length || !cfg.sides.length) throw new Error(`--sides must name ${Object.keys(pair.specs).join(' and/or ')}`);
  const SIDE_LABEL = Object.fromEntries(Object.entries(pair.specs).map(([k, v]) => [k, v.label]));
  const sides = {};
  const topologies = {};
  const live = [];
  const label = (side) => SIDE_LABEL[side];
  /** A side that broke is reported as such, torn down at once, and the other side carries on. */
  const fail = async (side, err) => {
    if (isInterrupted()) throw err;
    sides[side] = { status: 'error', reason: err?.message ?? String(err) };
    if (live.includes(side)) live.splice(live.indexOf(side), 1);
    ctx.log(`${label(side)} side FAILED: ${sides[side].reason}`);
    await topologies[side]?.close();
  };
  const retriesLeft = Object.fromEntries(cfg.sides.map((side) => [side, cfg.interference.retries]));
  const retried = Object.fromEntries(cfg.sides.map((side) => [side, []]));
  let gateLeftMs = cfg.interference.gateBudgetMs;
  const quietMachine = async (env) => {
    if (gateLeftMs <= 0) return;
    const maxMs = Math.min(cfg.interference.gateMs, gateLeftMs);
    gateLeftMs -= (await waitForQuietMachine(env.benchPids, { thresholdPct: cfg.interference.quietPct, maxMs })) ?? 0;
  };
  /**
   * measurePhase on a quiet machine; measured again (up to `perPhase` more times, `retries` per side)
   * while other processes disturbed it.
   */
  const measure = async (side, spec, what) => {
    const env = topologies[side].env;
    for (let attempt = 0; ; attempt++) {
      await quietMachine(env);
      const raw = await measurePhase(env, spec);
      const otherPct = raw.otherCpuMs === undefined ? 0 : (raw.otherCpuMs / raw.elapsedMs) * 100;
      if (otherPct <= cfg.interference.retryAbovePct || retriesLeft[side] <= 0 || attempt >= cfg.interference.perPhase) return raw;
      retriesLeft[side]--;
      retried[side].push(`${what} measured again: other processes used ${Math.round(otherPct)} % of a core during it`);
      ctx.log(`  ${label(side).padEnd(11)} ${what}: disturbed (other processes ${Math.round(otherPct)} % of a core), measuring again`);
      await waitForQuiet(env.pool);
    }
  };
  // ABBA ordering: round 0 runs A then B, round 1 B then A, … so slow drifts hit both sides alike.
  const order = (round) => (round % 2 === 0 ? [...live] : [...live].reverse());

  try {
    // 1. Both topologies up (fresh processes, fresh key prefix each, same Redis).
    for (const side of cfg.sides) {
      const spec = pair.specs[side];
      const script = spec.script;
      if (!serverAvailable(spec.kind, script)) {
        sides[side] = { status: 'missing', reason: `${serverScript(spec.kind, script)} does not exist (build the gateway: npm run build)` };
        ctx.log(`${label(side)} side NOT RUN: ${sides[side].reason}`);
        continue;
      }
      ctx.log(`${label(side)}: starting ${cfg.pods} pods and ${cfg.receivers} receivers…`);
      try {
        const redis = typeof spec.redis === 'function' ? await spec.redis() : { redisUrl: spec.redisUrl, redisEnv: spec.redisEnv };
        topologies[side] = await startTopology({
          ...cfg,
          kind: spec.kind,
          script,
          ...redis,
          podEnv: spec.podEnv,
          label: spec.prefix,
          log: (l) => ctx.log(`  ${l}`),
        });
        sides[side] = { status: 'ok' };
        live.push(side);
      } catch (err) {
        sides[side] = { status: 'error', reason: err?.message ?? String(err) };
        ctx.log(`${label(side)} side FAILED: ${sides[side].reason}`);
      }
    }
    const allBenchPids = [...new Set(Object.values(topologies).flatMap((t) => t.env.benchPids))];
    for (const t of Object.values(topologies)) t.env.benchPids = allBenchPids;

    // 2. Warm-up, and a sanity check that messages flow at all.
    for (const side of [...live]) {
      try {
        const warm = summarize([await measurePhase(topologies[side].env, cfg.warmup)]); // also warms the JIT
        if (warm.deliveries === 0) {
          throw new Error(`warm-up: no room:message reached any receiver (publish acks ${warm.acked} ok, refused ${JSON.stringify(warm.nacks)})`);
        }
      } catch (err) {
        await fail(side, err);
      }
    }

    // 3. Fixed rate, in interleaved segments.
    const segments = Object.fromEntries(live.map((side) => [side, []]));
    const segmentMs = cfg.fixed.durationMs / cfg.fixed.segments;
    ctx.log(`fixed ${cfg.fixed.rate} msg/s: ${cfg.fixed.segments} × ${segmentMs / 1000} s per side, interleaved`);
    for (let round = 0; round < cfg.fixed.segments; round++) {
      for (const side of order(round)) {
        try {
          segments[side].push(await measure(side, { ...cfg.fixed, durationMs: segmentMs }, `fixed segment ${round + 1}`));
        } catch (err) {
          await fail(side, err);
        }
      }
    }
    for (const side of live) {
      const fixed = summarize(segments[side]);
      sides[side].fixed = fixed;
      ctx.log(`  ${label(side).padEnd(11)} p50 ${ms(fixed.latency.p50)}, p99 ${ms(fixed.latency.p99)}, max ${ms(fixed.latency.max)}, loss ${pct(fixed.loss)}`);
    }

    // 4. Saturation ramps, one step per side in turn.
    ctx.log('saturation ramp:');
    // The sides take turns in the same order every round (not ABBA as above): with ABBA one side
    // runs two steps back to back at every other rate, always the same side at a given rate, so at
    // the rate where the machine saturates one side always started straight after its own previous
    // step and the other after a rest. Taking turns, each side's step follows one of the other
    // side's; a side left alone (the other one done) rests as long before its next step.
    const ramps = Object.fromEntries(live.map((side) => [side, new Ramp(cfg.ramp)]));
    const rampStarted = now();
    const stepCostMs = cfg.ramp.stepMs + cfg.ramp.drainMs;
    const lastStepEnd = {};
    for (let round = 0; round < 100; round++) {
      const pending = live.filter((side) => ramps[side].nextRate() !== undefined);
      if (!pending.length) break;
      for (const side of pending) {
        const rate = ramps[side].nextRate();
        const rest = pending.length === 1 && lastStepEnd[side] !== undefined ? Math.max(0, lastStepEnd[side] + stepCostMs - now()) : 0;
        if (now() + rest - rampStarted + stepCostMs > cfg.ramp.budgetMs || now() + rest - started + stepCostMs > cfg.maxMs) {
          ramps[side].stop(`ramp stopped by its time budget before ${rate} msg/s`);
          continue;
        }
        if (rest > 0) await sleep(rest);
        try {
          const { env } = topologies[side];
          const spec = { rate, durationMs: cfg.ramp.stepMs, drainMs: cfg.ramp.drainMs };
          const step = summarize([await measure(side, spec, `${rate} msg/s step`)], cfg.criteria);
          ramps[side].record(step);
          ctx.log(
            `  ${label(side).padEnd(11)} ${String(rate).padStart(4)} msg/s: delivered ${int(step.deliveredPerSec)}/s of ${int(step.offeredPerSec)}/s, ` +
              `p99 ${ms(step.latency.p99)}, loss ${pct(step.loss, 2)}, other CPU ${cpuCell(step.otherCpuPct)} → ${step.sustained ? 'sustained' : 'NOT sustained'}`,
          );
          // An overloaded side drains its backlog before anything else is measured.
          if (!step.sustained && !(await waitForQuiet(env.pool))) ramps[side].notes.push(`backlog still draining 8 s after the ${rate} msg/s step`);
          lastStepEnd[side] = now();
        } catch (err) {
          await fail(side, err);
        }
      }
    }
    for (const side of live) sides[side].ramp = ramps[side].toJSON();
    for (const side of live) {
      const t = topologies[side];
      Object.assign(sides[side], { keyPrefix: t.keyPrefix, pods: t.pods, connect: t.connect, retried: retried[side] });
    }
  } finally {
    for (const t of Object.values(topologies)) await t.close();
  }
  return report(cfg, sides, pair, text);
}

// ——— report ———

function report(cfg, sides, pair, text) {
  const SIDE_LABEL = Object.fromEntries(Object.entries(pair.specs).map(([k, v]) => [k, v.label]));
  const [refLabel, subLabel] = [SIDE_LABEL[pair.reference], SIDE_LABEL[pair.subject]];
  const base = sides[pair.reference];
  const sb = sides[pair.subject];
  const ok = (s) => s?.status === 'ok';
  const cell = (s, fn) => (ok(s) ? fn(s) : s?.status === 'missing' ? 'not run' : s?.status === 'error' ? 'error' : '–');
  const both = ok(base) && ok(sb);
  const r = (fn) => (both && fn(base) && fn(sb) ? fn(sb) / fn(base) : undefined);

  const bestOf = (s) => s.ramp.best?.deliveredPerSec;
  const p99Of = (s) => s.fixed.latency.p99;
  const satRatio = r(bestOf);
  const p99Ratio = r(p99Of);
  const verdict = (value, pass) => (value === undefined ? 'NOT RUN' : pass(value) ? 'PASS' : 'FAIL');
  const satVerdict = verdict(satRatio, (v) => v >= cfg.targets.saturation);
  const p99Verdict = cfg.targets.p99 === undefined ? 'n/a' : verdict(p99Ratio, (v) => v <= cfg.targets.p99);
  const fr = cfg.fixed.rate;

  const rows = [
    [
      '**Saturation: best sustained deliveries/s**',
      cell(base, (s) => int(bestOf(s))),
      cell(sb, (s) => int(bestOf(s))),
      ratio(satRatio),
      `≥ ${cfg.targets.saturation}×`,
      `**${satVerdict}**`,
    ],
    ['… at offered rate', cell(base, (s) => rateCell(s.ramp)), cell(sb, (s) => rateCell(s.ramp)), '', '', ''],
    [
      'Peak delivered deliveries/s (any step)',
      cell(base, (s) => int(s.ramp.peak?.deliveredPerSec)),
      cell(sb, (s) => int(s.ramp.peak?.deliveredPerSec)),
      ratio(r((s) => s.ramp.peak?.deliveredPerSec)),
      '',
      '',
    ],
    [
      `**Fixed ${fr} msg/s: p99 latency**`,
      cell(base, (s) => ms(p99Of(s))),
      cell(sb, (s) => ms(p99Of(s))),
      ratio(p99Ratio),
      cfg.targets.p99 === undefined ? 'for information' : `≤ ${cfg.targets.p99}×`,
      cfg.targets.p99 === undefined ? '' : `**${p99Verdict}**`,
    ],
    [`Fixed ${fr} msg/s: p50 latency`, cell(base, (s) => ms(s.fixed.latency.p50)), cell(sb, (s) => ms(s.fixed.latency.p50)), ratio(r((s) => s.fixed.latency.p50)), '', ''],
    [`Fixed ${fr} msg/s: max latency`, cell(base, (s) => ms(s.fixed.latency.max)), cell(sb, (s) => ms(s.fixed.latency.max)), ratio(r((s) => s.fixed.latency.max)), '', ''],
    [
      `Fixed ${fr} msg/s: p50 / p99, receivers on pod A (publisher's pod)`,
      cell(base, (s) => workerLatency(s, 0)),
      cell(sb, (s) => workerLatency(s, 0)),
      '',
      '',
      '',
    ],
    [
      `Fixed ${fr} msg/s: p50 / p99, receivers on pod B (via Redis)`,
      cell(base, (s) => workerLatency(s, 1)),
      cell(sb, (s) => workerLatency(s, 1)),
      '',
      '',
      '',
    ],
    [`Fixed ${fr} msg/s: loss`, cell(base, (s) => lossCell(s.fixed)), cell(sb, (s) => lossCell(s.fixed)), '', '0 %', ''],
    [
      `Fixed ${fr} msg/s: delivered deliveries/s`,
      cell(base, (s) => int(s.fixed.deliveredPerSec)),
      cell(sb, (s) => int(s.fixed.deliveredPerSec)),
      '',
      '',
      '',
    ],
    [
      `Fixed ${fr} msg/s: pods CPU (sum of ${cfg.pods}, % of a core)`,
      cell(base, (s) => cpuCell(s.fixed.podCpuPct)),
      cell(sb, (s) => cpuCell(s.fixed.podCpuPct)),
      ratio(r((s) => s.fixed.podCpuPct)),
      '',
      '',
    ],
    [
      `Fixed ${fr} msg/s: pods CPU per 1,000 deliveries`,
      cell(base, (s) => ms(s.fixed.podCpuMsPer1kDeliveries)),
      cell(sb, (s) => ms(s.fixed.podCpuMsPer1kDeliveries)),
      ratio(r((s) => s.fixed.podCpuMsPer1kDeliveries)),
      '',
      '',
    ],
    [
      'Other processes\' CPU during the side (interference, avg / max phase)',
      cell(base, (s) => interferenceCell(s)),
      cell(sb, (s) => interferenceCell(s)),
      '',
      '≈ 0 %',
      '',
    ],
    [
      'Pods resident memory per connected receiver (RSS growth while they joined, all pods)',
      cell(base, (s) => (Number.isFinite(s.connect.podRssPerClient) ? `${int(s.connect.podRssPerClient / 1024)} KiB` : '–')),
      cell(sb, (s) => (Number.isFinite(s.connect.podRssPerClient) ? `${int(s.connect.podRssPerClient / 1024)} KiB` : '–')),
      '',
      '',
      '',
    ],
    [
      'Receivers joined (connect + join time)',
      cell(base, (s) => `${int(s.connect.joined)} (${(s.connect.ms / 1000).toFixed(1)} s)`),
      cell(sb, (s) => `${int(s.connect.joined)} (${(s.connect.ms / 1000).toFixed(1)} s)`),
      '',
      '',
      '',
    ],
  ];

  const disturbed = Object.values(sides).some((s) => ok(s) && interference(s).max > cfg.interference.warnAbovePct);
  const overall = both ? (satVerdict === 'PASS' && (p99Verdict === 'PASS' || p99Verdict === 'n/a') ? 'PASS' : 'FAIL') : 'INCOMPLETE';
  const perPod = cfg.receivers / cfg.pods;
  const lines = [
    `**Workload:** ${int(cfg.receivers)} receivers (unique users, ${int(perPod)} per pod on ${cfg.pods} pods, ` +
      `${cfg.workers} receiver processes) in \`${cfg.room}\`; 1 publisher on pod A (not counted as a receiver); ` +
      `payload \`{ t, seq, pad }\` with a ${cfg.padBytes} B pad; websocket transport; ${pair.redisText ?? 'one Redis'}, a fresh key prefix per side; ` +
      `both sides up at once and measured in turn (A B B A…). ` +
      `Fixed phase: ${fr} msg/s for ${cfg.fixed.durationMs / 1000} s per side (${cfg.fixed.segments} interleaved segments). ` +
      `Ramp: ${cfg.ramp.stepMs / 1000} s steps; a step is sustained when delivered ≥ ${cfg.criteria.minDeliveredRatio * 100} % of offered ` +
      `within the step, p99 ≤ ${cfg.criteria.maxP99Ms} ms and loss ≤ ${cfg.criteria.maxLoss * 100} %.`,
    '',
  ];
  for (const [side, s] of Object.entries(sides)) {
    if (ok(s) && interference(s).max > cfg.interference.warnAbovePct) {
      lines.push(
        `> **Warning:** other processes on this machine used up to ${Math.round(interference(s).max)} % of a core while the ` +
          `${SIDE_LABEL[side]} side ran: its figures are disturbed; rerun on a quiet machine.`,
        '',
      );
    }
    if (s.status === 'missing') lines.push(`> **${SIDE_LABEL[side]} side not run:** ${s.reason}.`, '');
    if (s.status === 'error') lines.push(`> **${SIDE_LABEL[side]} side failed:** ${oneLine(s.reason)}`, '');
  }
  lines.push(table(['Metric', refLabel, subLabel, `${subLabel} / ${refLabel}`, 'target', 'result'], rows), '');
  lines.push(
    `**Verdict: ${overall}${disturbed ? ' — UNRELIABLE, disturbed by other processes' : ''}** (targets: ${subLabel} ≥ ${cfg.targets.saturation}× ${refLabel}'s saturation deliveries/s` +
      (cfg.targets.p99 === undefined ? ')' : ` and ≤ ${cfg.targets.p99}× its p99 at ${fr} msg/s)`),
    '',
  );
  if (both && !base.ramp.saturated) {
    lines.push(`> ${refLabel} did not saturate within the ramp: the saturation ratio is an upper bound.`, '');
  } else if (both && !sb.ramp.saturated) {
    lines.push(`> ${subLabel} did not saturate within the ramp: the saturation ratio is a lower bound.`, '');
  }

  for (const [side, s] of Object.entries(sides)) {
    if (!ok(s)) continue;
    lines.push(`Saturation ramp — ${SIDE_LABEL[side]}:`, '', rampTable(s.ramp, cfg.interference.warnAbovePct), '');
    for (const note of [...s.ramp.notes, ...s.retried]) lines.push(`- ${note}`);
    const nacks = Object.entries(s.fixed.nacks);
    if (nacks.length) lines.push(`- fixed phase: publish refused: ${nacks.map(([c, n]) => `${c} × ${n}`).join(', ')}`);
    const lag = Math.max(s.fixed.publisherMaxLagMs, ...s.ramp.steps.map((p) => p.publisherMaxLagMs));
    if (lag > 50) lines.push(`- the publisher's scheduler ran up to ${Math.round(lag)} ms late (catching up at once, the offered rate is kept)`);
    if (s.ramp.notes.length || s.retried.length || nacks.length || lag > 50) lines.push('');
  }

  return {
    name: text.name,
    title: text.title,
    verdict: overall,
    reliable: !disturbed,
    markdown: lines.join('\n').trimEnd(),
    data: { config: cfg, pair: { reference: pair.reference, subject: pair.subject }, sides, ratios: { saturation: satRatio, p99: p99Ratio }, verdicts: { saturation: satVerdict, p99: p99Verdict } },
  };
}

function rateCell(ramp) {
  if (!ramp.best) return 'none sustained';
  return `${ramp.best.rate} msg/s${ramp.saturated ? '' : ' (not saturated)'}`;
}

function workerLatency(s, index) {
  const w = s.fixed.perWorker[index];
  return w ? `${ms(w.p50)} / ${ms(w.p99)}` : '–';
}

const lossCell = (phase) => `${pct(phase.loss)} (${int(phase.missing)} of ${int(phase.expected)})`;

function interference(s) {
  const values = [s.fixed, ...s.ramp.steps].map((p) => p.otherCpuPct).filter(Number.isFinite);
  if (!values.length) return { avg: undefined, max: 0 };
  return { avg: values.reduce((a, b) => a + b, 0) / values.length, max: Math.max(...values) };
}

function interferenceCell(s) {
  const { avg, max } = interference(s);
  return Number.isFinite(avg) ? `${Math.round(avg)} % / ${Math.round(max)} %` : '–';
}

const cpuCell = (v) => (Number.isFinite(v) ? `${Math.round(v)} %` : '–');
const oneLine = (text) => String(text).split('\n').map((l) => l.trim()).filter(Boolean).join(' ⏎ ').slice(0, 600);

function rampTable(ramp, warnPct) {
  const rows = [...ramp.steps]
    .sort((a, b) => a.rate - b.rate)
    .map((p) => [
      p.rate,
      int(p.offeredPerSec),
      int(p.deliveredPerSec),
      pct(p.deliveredRatio, 1),
      ms(p.latency.p50),
      ms(p.latency.p99),
      ms(p.latency.max),
      pct(p.loss, 2),
      cpuCell(p.podCpuPct),
      cpuCell(p.receiverCpuPct),
      cpuCell(p.otherCpuPct),
      `${p.sustained ? 'yes' : '**no**'}${p.otherCpuPct > warnPct ? ' (disturbed)' : ''}`,
    ]);
  return table(
    ['msg/s', 'offered deliv/s', 'delivered deliv/s', 'delivered / offered', 'p50', 'p99', 'max', 'loss', 'pods CPU', 'receivers CPU', 'other CPU', 'sustained'],
    rows,
  );
}
