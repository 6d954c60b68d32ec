import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Every process the test kit starts goes through {@link spawnOwned}, so that none outlives the
 * test process that started it, however that one ends:
 *
 * - on Linux it runs under `setpriv --pdeathsig KILL` (util-linux): the kernel kills the child
 *   when its parent dies, also when the parent is killed (Vitest stops its workers with
 *   SIGTERM, then SIGKILL) or crashes; `setpriv` execs the command, so the pid is the command's;
 * - everywhere, the children still running when the parent exits normally are killed on `exit`.
 */
const owned = new Set<ChildProcess>();
let exitHook = false;
let setpriv: string | null | undefined;

/** `setpriv`, if it is there and knows `--pdeathsig` (util-linux 2.33+); probed once. */
function setprivBinary(): string | null {
  if (setpriv !== undefined) return setpriv;
  setpriv = null;
  if (process.platform !== 'linux') return setpriv;
  for (const candidate of ['/usr/bin/setpriv', '/bin/setpriv']) {
    const probe = spawnSync(candidate, ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 5000 });
    if (probe.status === 0) {
      setpriv = candidate;
      break;
    }
  }
  return setpriv;
}

/** Whether children of this process die with it even when it is killed (see {@link spawnOwned}). */
export function childrenDieWithParent(): boolean {
  return setprivBinary() !== null;
}

/**
 * `spawn`, for a process that must not outlive this one (see above). Use it for every server,
 * service or client process a test starts.
 */
export function spawnOwned(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const guard = setprivBinary();
  const child = guard ? spawn(guard, ['--pdeathsig', 'KILL', '--', command, ...args], options) : spawn(command, args, options);
  owned.add(child);
  const forget = () => owned.delete(child);
  child.once('exit', forget);
  child.once('error', forget);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of owned) c.kill('SIGKILL');
    });
  }
  return child;
}

/**
 * Sends `signal` to `child` unless it has exited, and resolves once it has; SIGKILL after
 * `graceMs`.
 */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill(signal);
  });
}

/** Whether `pid` names a process that is still running (a zombie waiting to be reaped is not). */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (process.platform !== 'linux') return true;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // "pid (comm) state …": the state follows the last ')'
  return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
}
