// Every process the bench starts is registered here and killed on exit, error or Ctrl-C.
import { spawn, fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const children = new Set();
const cleanups = [];
const TAIL_BYTES = 8192;

function register(child, label) {
  child.label = label;
  child.output = '';
  const keep = (chunk) => {
    child.output = (child.output + chunk.toString()).slice(-TAIL_BYTES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Spawns a Node script with piped output (kept as a tail for error messages); `nodeArgs` go before the script. */
export function spawnNode(script, { label, env, cwd, args = [], nodeArgs = [] }) {
  return register(spawn(process.execPath, [...nodeArgs, script, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }), label);
}

/** Forks a Node script with an IPC channel. */
export function forkNode(script, { label, env, cwd, args = [] }) {
  return register(fork(script, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }), label);
}

export const isRunning = (child) => child.exitCode === null && child.signalCode === null;

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopChild(child, graceMs = 4000) {
  if (!isRunning(child)) return;
  await new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Registers an async cleanup step (e.g. stopping Redis); run in reverse order by `cleanup()`. */
export function onCleanup(fn) {
  cleanups.push(fn);
}

let cleaning;
let interrupted = false;
/** True once Ctrl-C / SIGTERM arrived: errors from processes being torn down are expected then. */
export const isInterrupted = () => interrupted;

export function cleanup(timeoutMs = 8000) {
  cleaning ??= (async () => {
    const steps = Promise.allSettled([...children].map((c) => stopChild(c, 3000))).then(async () => {
      for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch(() => {});
    });
    await Promise.race([steps, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    killAllSync();
  })();
  return cleaning;
}

/** Last resort, synchronous: SIGKILL registered children and any other direct child (e.g. redis-server). */
export function killAllSync() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const pid of directChildPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/** Direct children of this process whose command name is `name` (Linux; [] elsewhere). */
export function childPidsNamed(name) {
  return directChildPids().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name;
    } catch {
      return false;
    }
  });
}

/** CPU time (ms) used by the whole machine since boot, all cores summed (Linux); undefined elsewhere. */
export function machineBusyMs() {
  if (process.platform !== 'linux') return undefined;
  try {
    const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    // user nice system idle iowait irq softirq steal …: busy = all but idle and iowait (guest is inside user)
    const n = ticks.slice(0, 8).map(Number);
    return ((n[0] + n[1] + n[2] + n[5] + n[6] + n[7]) * 1000) / 100;
  } catch {
    return undefined;
  }
}

function directChildPids() {
  if (process.platform !== 'linux') return [];
  const pids = [];
  let entries;
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) pids.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/** Installs exit/signal/error handlers so nothing outlives the bench. */
export function installExitHandlers() {
  process.on('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      console.error(`\n${signal}: stopping every process started by the bench…`);
      cleanup().finally(() => process.exit(130));
    });
  }
  const fatal = (err) => {
    if (interrupted) return;
    console.error('bench failed:', err?.stack ?? err);
    cleanup().finally(() => process.exit(1));
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}

/** CPU time (user + system, ms) consumed so far by a process, from /proc; undefined elsewhere. */
export function cpuTimeMs(pid) {
  if (process.platform !== 'linux' || !pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15, in clock ticks (USER_HZ = 100 on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

/** Resident memory (bytes) of a process, from /proc; undefined elsewhere. */
export function rssBytes(pid) {
  if (process.platform !== 'linux' || !pid) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
