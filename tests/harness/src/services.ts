import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawnOwned } from '@switchboard/testkit';

export type ServiceName = 'gateway' | 'dispatcher' | 'admin';

/**
 * The built entry point of a service, `services/<name>/dist/main.js`, for tests that run it as a
 * process (tests in this process run the sources). Throws when it has not been built.
 */
export function serviceMain(name: ServiceName): string {
  // this file sits two levels under the repository root, as src/ or as dist/
  const main = fileURLToPath(new URL(`../../../services/${name}/dist/main.js`, import.meta.url));
  if (!existsSync(main)) throw new Error(`services/${name}/dist/main.js is missing: run "npm run build" first`);
  return main;
}

/** One JSON log line of a service. */
export type LogLine = Record<string, unknown> & { level?: number; msg?: string };

export interface ServiceProcess {
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** The JSON log lines so far. */
  logs(): LogLine[];
  /**
   * Resolves with the first log line (so far or to come) that `match` accepts; rejects after
   * `timeoutMs`, or when the process exits first, with its output.
   */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends `signal` (SIGTERM unless told) unless it has exited, and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs `node services/<name>/dist/main.js` with this process's Node, configured by `env` alone
 * (plus `PATH` and `HOST=127.0.0.1`), and collects what it writes.
 */
export function spawnService(name: ServiceName, env: Record<string, string>): ServiceProcess {
  const child = spawnOwned(process.execPath, [serviceMain(name)], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const output = new EventEmitter();
  const append = (d: Buffer) => {
    out += d.toString();
    output.emit('data');
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const logs = (): LogLine[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as LogLine];
        } catch {
          return []; // a line still being written
        }
      });
  return {
    child,
    exited,
    output: () => out,
    logs,
    waitForLog: (match, timeoutMs = 10_000) =>
      new Promise<LogLine>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          output.off('data', check);
        };
        const check = () => {
          const found = logs().find(match);
          if (found) {
            done();
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no matching log line within ${timeoutMs} ms; output:\n${out.slice(-4000)}`));
        }, timeoutMs);
        output.on('data', check);
        void exited.then(({ code, signal }) => {
          check();
          done();
          reject(new Error(`${name} exited (${signal ?? code}) without a matching log line; output:\n${out.slice(-4000)}`));
        });
        check();
      }),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
