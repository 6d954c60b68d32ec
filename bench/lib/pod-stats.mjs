// What a server process costs, read from outside it: resident set (after a full GC when the process
// was started with gc-signal.mjs preloaded), CPU while something runs, and Redis commands.
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sleep } from './clock.mjs';
import { cpuTimeMs } from './procs.mjs';

/** Node options that make `collect(pid)` run a full GC in the process (see gc-signal.mjs). */
export const GC_NODE_ARGS = ['--expose-gc', '--import', pathToFileURL(fileURLToPath(new URL('./gc-signal.mjs', import.meta.url))).href];

/** Resident set of a process, in bytes (Linux /proc). */
export function rssBytes(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return m ? Number(m[1]) * 1024 : undefined;
}

/**
 * Asks a process started with GC_NODE_ARGS for a full GC, waits `settleMs`, and returns what the
 * process said of its memory then (`process.memoryUsage()`), when `child` (its ChildProcess with
 * the output kept by procs.mjs) is given.
 */
export async function collect(pid, settleMs = 1000, child = undefined) {
  process.kill(pid, 'SIGWINCH');
  await sleep(settleMs);
  const lines = child?.output?.match(/^bench-memory (\{.*\})$/gm);
  return lines ? JSON.parse(lines.at(-1).slice('bench-memory '.length)) : undefined;
}

/** Waits (≤ maxMs) until the processes together use less than `pct` % of a core over 250 ms windows. */
export async function waitIdle(pids, { pct = 10, maxMs = 8000 } = {}) {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const a = pids.reduce((s, p) => s + (cpuTimeMs(p) ?? 0), 0);
    await sleep(250);
    const b = pids.reduce((s, p) => s + (cpuTimeMs(p) ?? 0), 0);
    if (((b - a) / 250) * 100 < pct) return true;
  }
  return false;
}

/** `INFO commandstats` as { command: calls } (commands run by scripts are counted too). */
export async function commandCalls(redis) {
  const text = await redis.info('commandstats');
  const out = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
}

/** The difference of two commandCalls() readings, per `per` units, largest first. */
export function commandDelta(before, after, per) {
  const rows = [];
  for (const [cmd, calls] of Object.entries(after)) {
    const d = calls - (before[cmd] ?? 0);
    if (d > 0) rows.push([cmd, d / per]);
  }
  return rows.sort((a, b) => b[1] - a[1]);
}
