// What the numbers were measured on.
import os from 'node:os';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { table } from './markdown.mjs';

const require = createRequire(import.meta.url);

function run(cmd, args) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 5000 }, (err, stdout) => resolve(err ? undefined : stdout.trim()));
  });
}

function packageVersion(name) {
  try {
    let dir = require.resolve(name);
    for (let i = 0; i < 6; i++) {
      dir = dir.slice(0, dir.lastIndexOf('/'));
      try {
        const pkg = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8'));
        if (pkg.name === name) return pkg.version;
      } catch {
        /* keep walking up */
      }
    }
  } catch {
    /* not installed */
  }
  return undefined;
}

function osDescription() {
  try {
    const pretty = readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)"?/m)?.[1];
    if (pretty) return `${pretty} (${os.type()} ${os.release()}, ${os.arch()})`;
  } catch {
    /* not Linux */
  }
  return `${os.type()} ${os.release()} (${os.arch()})`;
}

export async function machineInfo() {
  const cpus = os.cpus();
  const redisVersion = (await run('redis-server', ['--version']))?.match(/v=(\S+)/)?.[1];
  return {
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    os: osDescription(),
    redisServer: redisVersion ?? 'not found',
    loadAverage: os.loadavg().map((n) => +n.toFixed(2)),
    packages: Object.fromEntries(
      ['socket.io', 'socket.io-client', '@socket.io/redis-adapter', 'ioredis'].map((n) => [n, packageVersion(n) ?? '–']),
    ),
  };
}

export function machineTable(m) {
  return table(
    ['Machine', ''],
    [
      ['CPU', `${m.cpuModel} — ${m.cores} cores`],
      ['Memory', `${m.memoryGiB} GiB`],
      ['Node.js', m.node],
      ['OS', m.os],
      ['redis-server', m.redisServer],
      ['Load average at start', m.loadAverage.join(' / ')],
      ['Libraries', Object.entries(m.packages).map(([n, v]) => `${n} ${v}`).join(', ')],
    ],
  );
}
