#!/usr/bin/env node
// Switchboard benchmark runner.
//
//   node bench/run.mjs                 every scenario in bench/scenarios/
//   node bench/run.mjs fanout          only the named scenario(s)
//   node bench/run.mjs fanout --quick  scenario options are passed as --key or --key=value
//   node bench/run.mjs --list          list scenarios
//
// Starts its own redis-server on a loopback port, prints the machine details and each scenario's
// table, and writes bench/results/latest.md and latest.json. Every process it starts is stopped on
// exit, on error and on Ctrl-C.
import { readdirSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startRedis, startRedisCluster } from '@switchboard/testkit';
import { machineInfo, machineTable } from './lib/machine.mjs';
import { table } from './lib/markdown.mjs';
import { installExitHandlers, onCleanup, cleanup, isInterrupted } from './lib/procs.mjs';

const SCENARIOS_DIR = fileURLToPath(new URL('./scenarios/', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** Result files name files relative to the repository, whatever machine they were produced on. */
const relativePaths = (text) => text.split(ROOT).join('');

function parseArgs(argv) {
  const names = [];
  const options = {};
  for (const arg of argv) {
    const m = arg.match(/^--([^=]+)(?:=(.*))?$/);
    if (m) options[m[1]] = m[2] ?? true;
    else names.push(arg);
  }
  return { names, options };
}

async function loadScenarios() {
  const files = readdirSync(SCENARIOS_DIR).filter((f) => f.endsWith('.mjs')).sort();
  const scenarios = [];
  for (const file of files) {
    const mod = await import(pathToFileURL(SCENARIOS_DIR + file).href);
    if (typeof mod.run !== 'function' || !mod.name) throw new Error(`scenarios/${file} must export name, description and run(ctx)`);
    scenarios.push({ name: mod.name, description: mod.description ?? '', run: mod.run, optIn: mod.optIn === true });
  }
  return scenarios;
}

function writeAtomically(path, text) {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

function isLoopback(url) {
  const host = new URL(url).hostname;
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]' || host === '::1';
}

async function main() {
  installExitHandlers();
  const { names, options } = parseArgs(process.argv.slice(2));
  const all = await loadScenarios();

  if (options.list || options.help) {
    console.log('usage: node bench/run.mjs [scenario …] [--option[=value] …]\n\nscenarios:');
    for (const s of all) console.log(`  ${s.name.padEnd(12)} ${s.optIn ? '(only when named) ' : ''}${s.description}`);
    return 0;
  }
  const unknown = names.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`unknown scenario(s): ${unknown.join(', ')}; available: ${all.map((s) => s.name).join(', ')}`);
    return 2;
  }
  // A scenario that exports `optIn = true` (too heavy for every run) runs only when named.
  const selected = names.length ? all.filter((s) => names.includes(s.name)) : all.filter((s) => !s.optIn);

  const startedAt = new Date();
  const machine = await machineInfo();
  console.log(`# Switchboard benchmark — ${startedAt.toISOString()}\n`);
  console.log(machineTable(machine), '\n');

  const redis = await startRedis({ fresh: true });
  onCleanup(() => redis.stop());
  if (!isLoopback(redis.url)) throw new Error(`refusing to benchmark against a non-loopback Redis (${redis.url})`);
  console.log(`redis-server started for this run at ${redis.url}\n`);

  // A Redis Cluster (3 primaries, 3 replicas, local processes on loopback ports), started the first
  // time a scenario asks for it and shared by the scenarios that follow; stopped at the end.
  let cluster;
  const redisCluster = () =>
    (cluster ??= (async () => {
      const t0 = Date.now();
      const c = await startRedisCluster();
      onCleanup(() => c.stop());
      const nodes = c.env.REDIS_CLUSTER_NODES.split(',');
      if (!nodes.every((n) => isLoopback(`redis://${n}`))) throw new Error(`refusing to benchmark against a non-loopback Redis Cluster (${nodes.join(', ')})`);
      console.log(`Redis Cluster started for this run (${c.processes.length} nodes) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      return c;
    })());

  const results = [];
  for (const scenario of selected) {
    if (isInterrupted()) break;
    console.log(`## ${scenario.name}\n\n${scenario.description}\n`);
    const t0 = Date.now();
    const ctx = {
      redisUrl: redis.url,
      redisCluster,
      options,
      log: (line) => console.log(line),
    };
    try {
      const result = await scenario.run(ctx);
      result.seconds = Math.round((Date.now() - t0) / 100) / 10;
      results.push(result);
      console.log(`\n${result.markdown}\n\n(${result.seconds} s)\n`);
    } catch (err) {
      if (isInterrupted()) break;
      console.error(`scenario ${scenario.name} failed: ${err?.stack ?? err}`);
      results.push({ name: scenario.name, title: scenario.name, verdict: 'ERROR', error: String(err?.message ?? err), markdown: `**Failed:** ${err?.message ?? err}` });
    }
  }

  if (isInterrupted()) return 130;
  const md = [
    `# Switchboard benchmark results`,
    '',
    `Run ${startedAt.toISOString()} with \`${['node bench/run.mjs', ...process.argv.slice(2)].join(' ')}\`.`,
    '',
    machineTable(machine),
    '',
    table(
      ['Scenario', 'Verdict', 'Time'],
      results.map((r) => [r.name, `${r.verdict}${r.reliable === false ? ' (unreliable: disturbed)' : ''}`, r.seconds ? `${r.seconds} s` : '–']),
    ),
    '',
    ...results.flatMap((r) => [`## ${r.title ?? r.name}`, '', r.markdown, '', r.seconds ? `_Scenario time: ${r.seconds} s._` : '', '']),
  ].join('\n');
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeAtomically(`${RESULTS_DIR}latest.md`, relativePaths(`${md.trimEnd()}\n`));
  writeAtomically(
    `${RESULTS_DIR}latest.json`,
    relativePaths(`${JSON.stringify({ startedAt: startedAt.toISOString(), args: process.argv.slice(2), machine, results }, null, 2)}\n`),
  );
  console.log('results written to bench/results/latest.md and bench/results/latest.json');

  const failed =
    results.some((r) => r.verdict === 'ERROR') || (options.strict && results.some((r) => r.verdict !== 'PASS' || r.reliable === false));
  return failed ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  if (!isInterrupted()) console.error('bench failed:', err?.stack ?? err);
} finally {
  await cleanup();
}
process.exit(code);
